//go:build !cgo || noopenblas

package cpu

// Without cgo (or with -tags noopenblas) every matrix product runs on the
// pure-Go kernel goGemm and there is no OpenBLAS to configure.
func setBLASThreads(int) {}
