//go:build cgo && !noopenblas

package cpu

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
char* openblas_get_corename(void);
char* openblas_get_config(void);
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
)

// With cgo the matrix products go through OpenBLAS. It is pinned to one
// thread because the backend already runs one kernel call per core
// (gemmParallel, attention heads); letting OpenBLAS spawn its own threads on
// top would oversubscribe the cores. Build with -tags noopenblas to use the
// pure-Go kernel in a cgo build.
func init() {
	C.openblas_set_num_threads(1)
	blasGemm = cblasGemm
	serialGemm = cblasGemm
}

// BLAS describes the matrix-product kernel in use, for benchmark reports.
// OpenBLAS picks its kernels for the CPU it runs on unless OPENBLAS_CORETYPE
// names them; on AVX-512 CPUs forcing Haswell halves sgemm's speed.
func BLAS() string {
	cfg := strings.Fields(C.GoString(C.openblas_get_config()))
	version := "OpenBLAS"
	if len(cfg) >= 2 {
		version = cfg[0] + " " + cfg[1]
	}
	s := fmt.Sprintf("%s, %s kernels", version, C.GoString(C.openblas_get_corename()))
	if ct := os.Getenv("OPENBLAS_CORETYPE"); ct != "" {
		s += " (OPENBLAS_CORETYPE=" + ct + ")"
	}
	return s
}

// cblasGemm is a gemmFunc on cblas_sgemm; callers have checked the sizes.
func cblasGemm(transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	tb := uint32(C.CblasNoTrans)
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(&a[0]), C.blasint(lda), (*C.float)(&b[0]), C.blasint(ldb),
		C.float(beta), (*C.float)(&c[0]), C.blasint(ldc))
}

// setBLASThreads changes OpenBLAS's own thread count; only benchmarks use
// it, to time cblas_sgemm as a caller with all cores would.
func setBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }
