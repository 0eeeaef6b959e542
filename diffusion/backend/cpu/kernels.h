//go:build cgo

// Vectorised float32 kernels of the CPU backend's non-GEMM hot spots
// (kernels.c); the Go side is kernels_cgo.go, the pure-Go twins are in
// kernels_go.go.
#ifndef LATENTFARM_CPU_KERNELS_H
#define LATENTFARM_CPU_KERNELS_H

void lf_softmax_rows(float *s, long rows, long cols, long ld, long len0, long step, float *sums);
void lf_gelu(const float *x, float *y, long n);
void lf_geglu(const float *x, float *y, long rows, long half);
void lf_affine(const float *x, float *y, long n, float scale, float shift, int silu);
int lf_simd_level(void);

#endif
