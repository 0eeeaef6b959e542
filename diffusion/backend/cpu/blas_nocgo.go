//go:build !cgo || noopenblas

package cpu

// Without cgo (or with -tags noopenblas) every matrix product runs on the
// pure-Go kernel goGemm and there is no OpenBLAS to configure.
func setBLASThreads(int) {}

// BLAS describes the matrix-product kernel in use, for benchmark reports.
func BLAS() string { return "pure-Go sgemm (no OpenBLAS in this build)" }
