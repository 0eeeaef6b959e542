package cpu

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// gemmFunc computes C = alpha·A·op(B) + beta·C on one thread for row-major
// A [m, k] with row stride lda, B [k, n] with stride ldb (or [n, k] when
// transB) and C [m, n] with stride ldc.
type gemmFunc func(transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

// serialGemm is the single-threaded kernel every matrix product goes
// through: OpenBLAS (pinned to one thread) in cgo builds, goGemm otherwise.
// blasGemm is OpenBLAS's cblas_sgemm, nil when the build has no cgo.
var (
	serialGemm gemmFunc = goGemm
	blasGemm   gemmFunc
)

// checkGemm panics unless the slices hold the matrices their sizes and
// strides describe; the C kernel must never read or write past them.
func checkGemm(transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	ok := m >= 0 && n >= 0 && k >= 0 &&
		fits(len(a), m, k, lda) && fits(len(b), br, bc, ldb) && fits(len(c), m, n, ldc)
	if !ok {
		panic(fmt.Sprintf("cpu: gemm %dx%dx%d (transB %v) on slices of %d, %d, %d with strides %d, %d, %d",
			m, n, k, transB, len(a), len(b), len(c), lda, ldb, ldc))
	}
}

func fits(length, rows, cols, ld int) bool {
	if rows == 0 || cols == 0 {
		return true
	}
	return ld >= cols && (rows-1)*ld+cols <= length
}

// gemmStrided runs serialGemm after checking its arguments.
func gemmStrided(transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	serialGemm(transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemm computes C = alpha·op(A)·op(B) + beta·C for contiguous row-major A
// [m, k], B [k, n] (or [n, k] when transB) and C [m, n], split into
// independent blocks of C that the backend's threads take in turn.
func (c *Backend) gemm(transA, transB bool, m, n, k int, alpha float32, a, b []float32, beta float32, out []float32) {
	if transA {
		panic("cpu: gemm with transposed A is not implemented")
	}
	ldb := n
	if transB {
		ldb = k
	}
	c.gemmParallel(serialGemm, transB, m, n, k, alpha, a, k, b, ldb, beta, out, n)
}

// gemmParallel splits C into row blocks (or column blocks when C is short
// and wide) and runs kernel on each from c.threads goroutines.
func (c *Backend) gemmParallel(kernel gemmFunc, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, out []float32, ldc int) {
	checkGemm(transB, m, n, k, a, lda, b, ldb, out, ldc)
	if m == 0 || n == 0 {
		return
	}
	workers := c.threads
	if workers <= 1 || m*n*k < 1<<18 {
		kernel(transB, m, n, k, alpha, a, lda, b, ldb, beta, out, ldc)
		return
	}
	// Several blocks per worker balance the load when other processes
	// share the cores; blocks of at least 64 rows keep the kernel efficient.
	// Every block packs the whole of the operand it shares with the others
	// (B for row blocks, A for column blocks), so split C along the side
	// that makes the shared operand the smaller one: a 3x3 conv at 64x64
	// (320 x 4096 x 2880) split by rows packed its 2880 x 4096 im2col
	// matrix once per block, 17% of the UNet's sgemm time.
	byRows := m >= n || n < 64*workers
	span := m
	if !byRows {
		span = n
	}
	block := max(64, span/(4*workers))
	block = (block + 15) &^ 15
	nblocks := (span + block - 1) / block
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(workers, nblocks); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= nblocks {
					return
				}
				lo := i * block
				hi := min(lo+block, span)
				if byRows {
					kernel(transB, hi-lo, n, k, alpha, a[lo*lda:], lda, b, ldb, beta, out[lo*ldc:], ldc)
					continue
				}
				bOff := lo
				if transB {
					bOff = lo * ldb
				}
				kernel(transB, m, hi-lo, k, alpha, a, lda, b[bOff:], ldb, beta, out[lo:], ldc)
			}
		}()
	}
	wg.Wait()
}
