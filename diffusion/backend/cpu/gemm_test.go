package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// naiveGemm is the float64 definition of C = alpha·A·op(B) + beta·C.
func naiveGemm(transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var bv float32
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(a[i*lda+p]) * float64(bv)
			}
			out[i*n+j] = float64(alpha)*s + float64(beta)*float64(c[i*ldc+j])
		}
	}
	return out
}

func randSlice(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(2*r.Float64() - 1)
	}
	return v
}

// TestGemmKernels_Strided runs every available single-threaded kernel and
// the parallel driver on sub-matrices with row strides larger than their
// widths, across the pure-Go kernel's block edges, with alpha and beta.
func TestGemmKernels_Strided(t *testing.T) {
	kernels := map[string]gemmFunc{"go": goGemm}
	if blasGemm != nil {
		kernels["openblas"] = blasGemm
	}
	c := New()
	kernels["parallel"] = func(transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, out []float32, ldc int) {
		c.gemmParallel(serialGemm, transB, m, n, k, alpha, a, lda, b, ldb, beta, out, ldc)
	}
	r := rand.New(rand.NewPCG(7, 8))
	sizes := [][3]int{{1, 1, 1}, {3, 5, 7}, {2, 3, 4}, {5, 1, 3}, {67, 600, 300}, {130, 70, 513}, {257, 9, 1030}}
	for name, kern := range kernels {
		for _, sz := range sizes {
			for _, transB := range []bool{false, true} {
				m, n, k := sz[0], sz[1], sz[2]
				t.Run(fmt.Sprintf("%s_%dx%dx%d_transB=%v", name, m, n, k, transB), func(t *testing.T) {
					lda, ldb, ldc := k+3, n+5, n+2
					if transB {
						ldb = k + 1
					}
					brows := k
					if transB {
						brows = n
					}
					a := randSlice(r, (m-1)*lda+k)
					b := randSlice(r, brows*ldb)
					cm := randSlice(r, (m-1)*ldc+n)
					want := naiveGemm(transB, m, n, k, 0.75, a, lda, b, ldb, -0.5, cm, ldc)
					kern(transB, m, n, k, 0.75, a, lda, b, ldb, -0.5, cm, ldc)
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							got, w := float64(cm[i*ldc+j]), want[i*n+j]
							if math.Abs(got-w) > 1e-5*(1+math.Sqrt(float64(k))) {
								t.Fatalf("C[%d,%d] = %g, want %g", i, j, got, w)
							}
						}
					}
				})
			}
		}
	}
}

// TestGemm_RejectsShortSlices checks that the bounds check guards the C
// kernel: a B one element short must panic, not read past the slice.
func TestGemm_RejectsShortSlices(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("gemmStrided accepted a B slice that is too short")
		}
	}()
	gemmStrided(false, 2, 3, 4, 1, make([]float32, 8), 4, make([]float32, 11), 3, 0, make([]float32, 6), 3)
}
