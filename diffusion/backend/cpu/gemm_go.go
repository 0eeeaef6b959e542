package cpu

import "sync"

// The pure-Go single-threaded SGEMM. Go does not vectorise, and its register
// allocator spills the usual 4x4 outer-product micro-kernel, so the inner
// kernel here is a rank-4 update of two rows of C: two C rows (in L1) take
// eight scalar coefficients of A and four rows of a B panel (in L2); per
// column it does 16 multiply-adds for 4 loads of B and 2 loads and stores of
// C, with no bounds checks and no spills in the loop body.

const (
	goKC = 256 // rows of B in a panel (depth of a block)
	goNC = 512 // columns of B in a panel
)

var packPool = sync.Pool{New: func() any { b := make([]float32, goKC*goNC); return &b }}

// goGemm computes C = alpha·A·op(B) + beta·C for row-major A [m, k] with row
// stride lda, B [k, n] with stride ldb (or [n, k] when transB) and C [m, n]
// with stride ldc.
func goGemm(transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	scaleRows(m, n, beta, c, ldc)
	if k == 0 || alpha == 0 || m == 0 || n == 0 {
		return
	}
	var buf *[]float32
	if transB {
		buf = packPool.Get().(*[]float32)
		defer packPool.Put(buf)
	}
	for jc := 0; jc < n; jc += goNC {
		nb := min(goNC, n-jc)
		for pc := 0; pc < k; pc += goKC {
			kb := min(goKC, k-pc)
			var panel []float32
			ldp := ldb
			if transB {
				panel = (*buf)[:kb*nb]
				ldp = nb
				for j := 0; j < nb; j++ {
					src := b[(jc+j)*ldb+pc:][:kb]
					for p, v := range src {
						panel[p*nb+j] = v
					}
				}
			} else {
				panel = b[pc*ldb+jc:]
			}
			goBlock(m, nb, kb, alpha, a[pc:], lda, panel, ldp, c[jc:], ldc)
		}
	}
}

// scaleRows multiplies the m×n block of c by beta.
func scaleRows(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// goBlock adds alpha·A[:, :kb]·P to C[:, :nb] where P is a kb×nb panel with
// row stride ldp.
func goBlock(m, nb, kb int, alpha float32, a []float32, lda int, p []float32, ldp int, c []float32, ldc int) {
	var av [8]float32
	i := 0
	for ; i+1 < m; i += 2 {
		c0 := c[i*ldc : i*ldc+nb]
		c1 := c[(i+1)*ldc : (i+1)*ldc+nb]
		a0 := a[i*lda : i*lda+kb]
		a1 := a[(i+1)*lda : (i+1)*lda+kb]
		q := 0
		for ; q+3 < kb; q += 4 {
			for r := 0; r < 4; r++ {
				av[r] = alpha * a0[q+r]
				av[4+r] = alpha * a1[q+r]
			}
			rank4x2(c0, c1, p[q*ldp:], p[(q+1)*ldp:], p[(q+2)*ldp:], p[(q+3)*ldp:], &av)
		}
		for ; q < kb; q++ {
			rank1x2(c0, c1, p[q*ldp:], alpha*a0[q], alpha*a1[q])
		}
	}
	if i < m {
		c0 := c[i*ldc : i*ldc+nb]
		a0 := a[i*lda : i*lda+kb]
		q := 0
		for ; q+3 < kb; q += 4 {
			rank4x1(c0, p[q*ldp:], p[(q+1)*ldp:], p[(q+2)*ldp:], p[(q+3)*ldp:],
				alpha*a0[q], alpha*a0[q+1], alpha*a0[q+2], alpha*a0[q+3])
		}
		for ; q < kb; q++ {
			rank1x2(c0, nil, p[q*ldp:], alpha*a0[q], 0)
		}
	}
}

// rank4x2 does c0 += a[0:4]·B and c1 += a[4:8]·B for the four rows of B.
func rank4x2(c0, c1, b0, b1, b2, b3 []float32, a *[8]float32) {
	n := len(c0)
	c1, b0, b1, b2, b3 = c1[:n], b0[:n], b1[:n], b2[:n], b3[:n]
	a00, a01, a02, a03 := a[0], a[1], a[2], a[3]
	a10, a11, a12, a13 := a[4], a[5], a[6], a[7]
	for j := range c0 {
		x0, x1, x2, x3 := b0[j], b1[j], b2[j], b3[j]
		c0[j] += a00*x0 + a01*x1 + a02*x2 + a03*x3
		c1[j] += a10*x0 + a11*x1 + a12*x2 + a13*x3
	}
}

// rank4x1 does c0 += a·B for the four rows of B.
func rank4x1(c0, b0, b1, b2, b3 []float32, a0, a1, a2, a3 float32) {
	n := len(c0)
	b0, b1, b2, b3 = b0[:n], b1[:n], b2[:n], b3[:n]
	for j := range c0 {
		c0[j] += a0*b0[j] + a1*b1[j] + a2*b2[j] + a3*b3[j]
	}
}

// rank1x2 does c0 += a0·b and, when c1 is not nil, c1 += a1·b.
func rank1x2(c0, c1, b []float32, a0, a1 float32) {
	b = b[:len(c0)]
	if c1 == nil {
		for j, x := range b {
			c0[j] += a0 * x
		}
		return
	}
	c1 = c1[:len(c0)]
	for j, x := range b {
		c0[j] += a0 * x
		c1[j] += a1 * x
	}
}
