package cpu

// gemm computes C = alpha·op(A)·op(B) + beta·C for row-major A [m, k] (or
// [k, m] when transA), B [k, n] (or [n, k] when transB) and C [m, n], spread
// over the backend's threads by rows of C.
func (c *Backend) gemm(transA, transB bool, m, n, k int, alpha float32, a, b []float32, beta float32, out []float32) {
	if transA {
		panic("cpu: gemm with transposed A is not implemented")
	}
	if m*n*k < 1<<15 || m < 2 {
		gemmSerial(false, transB, m, n, k, alpha, a, b, beta, out)
		return
	}
	c.parallelFor(m, func(lo, hi int) {
		gemmSerial(false, transB, hi-lo, n, k, alpha, a[lo*k:hi*k], b, beta, out[lo*n:hi*n])
	})
}

// gemmSerial is the single-threaded kernel behind gemm.
func gemmSerial(transA, transB bool, m, n, k int, alpha float32, a, b []float32, beta float32, out []float32) {
	if transA {
		panic("cpu: gemm with transposed A is not implemented")
	}
	for i := 0; i < m; i++ {
		row := out[i*n : (i+1)*n]
		if beta == 0 {
			clear(row)
		} else if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
		ar := a[i*k : (i+1)*k]
		if transB {
			for j := range row {
				br := b[j*k : (j+1)*k]
				var s float32
				for p, av := range ar {
					s += av * br[p]
				}
				row[j] += alpha * s
			}
			continue
		}
		for p, av := range ar {
			if av == 0 {
				continue
			}
			av *= alpha
			br := b[p*n : (p+1)*n]
			for j := range row {
				row[j] += av * br[j]
			}
		}
	}
}
