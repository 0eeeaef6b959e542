//go:build cgo

package cpu

/*
#cgo CFLAGS: -O3 -fopenmp-simd
#include "kernels.h"
*/
import "C"

import "fmt"

// In cgo builds the elementwise hot spots (softmax's exp in attention,
// GELU, GroupNorm's scale-shift-SiLU) run in kernels.c, vectorised for the
// widest SIMD the CPU has; Go compiles these loops to scalar code.

// simdLevel names the instruction set kernels.c dispatched to.
func simdLevel() string {
	switch C.lf_simd_level() {
	case 2:
		return "avx512"
	case 1:
		return "avx2"
	}
	return "scalar"
}

// softmaxRows replaces the first n_i = min(len0+step*i, cols) entries of
// each row i of s (rows x cols, row stride ld) by exp(v - max of those
// entries), zeroes the rest of the row and stores the row's sum in sums[i].
// step 1 gives the causal mask.
func softmaxRows(s []float32, rows, cols, ld, len0, step int, sums []float32) {
	if rows == 0 || cols == 0 {
		return
	}
	if !fits(len(s), rows, cols, ld) || len(sums) < rows || len0 < 1 || step < 0 {
		panic(fmt.Sprintf("cpu: softmaxRows %dx%d (ld %d, len0 %d, step %d) on %d values, %d sums", rows, cols, ld, len0, step, len(s), len(sums)))
	}
	C.lf_softmax_rows((*C.float)(&s[0]), C.long(rows), C.long(cols), C.long(ld), C.long(len0), C.long(step), (*C.float)(&sums[0]))
}

// geluTo stores gelu(src) in dst.
func geluTo(dst, src []float32) {
	if len(dst) != len(src) {
		panic(fmt.Sprintf("cpu: geluTo: %d values into %d", len(src), len(dst)))
	}
	if len(src) > 0 {
		C.lf_gelu((*C.float)(&src[0]), (*C.float)(&dst[0]), C.long(len(src)))
	}
}

// gegluRows stores h * gelu(g) in dst for each row [h | g] of src, both
// halves half wide.
func gegluRows(dst, src []float32, rows, half int) {
	if len(src) != rows*2*half || len(dst) != rows*half {
		panic(fmt.Sprintf("cpu: gegluRows: %d rows of 2x%d from %d values into %d", rows, half, len(src), len(dst)))
	}
	if len(dst) > 0 {
		C.lf_geglu((*C.float)(&src[0]), (*C.float)(&dst[0]), C.long(rows), C.long(half))
	}
}

// affineTo stores src*scale + shift in dst, followed by SiLU when silu.
func affineTo(dst, src []float32, scale, shift float32, silu bool) {
	if len(dst) != len(src) {
		panic(fmt.Sprintf("cpu: affineTo: %d values into %d", len(src), len(dst)))
	}
	s := C.int(0)
	if silu {
		s = 1
	}
	if len(src) > 0 {
		C.lf_affine((*C.float)(&src[0]), (*C.float)(&dst[0]), C.long(len(src)), C.float(scale), C.float(shift), s)
	}
}
