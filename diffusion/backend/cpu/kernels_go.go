//go:build !cgo

package cpu

import "fmt"

// Without cgo the elementwise hot spots run as plain Go loops; kernels.c
// holds their vectorised twins for cgo builds.

func simdLevel() string { return "go" }

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
	for i := range rows {
		row := s[i*ld : i*ld+cols]
		n := min(len0+step*i, cols)
		clear(row[n:])
		row = row[:n]
		sums[i] = expSub(row, rowMax(row))
	}
}

// geluTo stores gelu(src) in dst.
func geluTo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = geluf(v)
	}
}

// gegluRows stores h * gelu(g) in dst for each row [h | g] of src, both
// halves half wide.
func gegluRows(dst, src []float32, rows, half int) {
	for r := range rows {
		in := src[r*2*half : (r+1)*2*half]
		out := dst[r*half : (r+1)*half]
		for i := range out {
			out[i] = in[i] * geluf(in[half+i])
		}
	}
}

// affineTo stores src*scale + shift in dst, followed by SiLU when silu.
func affineTo(dst, src []float32, scale, shift float32, silu bool) {
	dst = dst[:len(src)]
	for i, v := range src {
		y := v*scale + shift
		if silu {
			y = siluf(y)
		}
		dst[i] = y
	}
}
