//go:build cgo

// Each kernel is compiled three times, for AVX-512, AVX2+FMA and baseline
// x86-64 (or whatever the target is elsewhere), and lf_* calls the best one
// the CPU supports: one binary runs everywhere and uses wide vectors where
// they exist.
#include "kernels.h"

// The kernels raise no floating-point exceptions anyone reads, and telling
// GCC so lets it turn the selects of kernels_body.h into vector blends
// (cgo's flag allowlist has no -fno-trapping-math, hence the pragma).
#pragma GCC optimize("no-trapping-math", "no-math-errno")

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,fma,prefer-vector-width=512")
#define LF(name) name##_avx512
#include "kernels_body.h"
#undef LF
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define LF(name) name##_avx2
#include "kernels_body.h"
#undef LF
#pragma GCC pop_options
#endif

#define LF(name) name##_base
#include "kernels_body.h"
#undef LF

// lf_simd_level is 2 for AVX-512, 1 for AVX2+FMA, 0 otherwise.
int lf_simd_level(void) {
	static int level = -1;
	if (level < 0) {
		int l = 0;
#if defined(__x86_64__)
		__builtin_cpu_init();
		if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) l = 1;
		if (l && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
		    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) l = 2;
#endif
		level = l; // idempotent: racing first calls store the same value
	}
	return level;
}

#if defined(__x86_64__)
#define DISPATCH(name, args)                         \
	switch (lf_simd_level()) {                   \
	case 2: name##_avx512 args; return;          \
	case 1: name##_avx2 args; return;            \
	default: name##_base args; return;           \
	}
#else
#define DISPATCH(name, args) name##_base args;
#endif

void lf_softmax_rows(float *s, long rows, long cols, long ld, long len0, long step, float *sums) {
	DISPATCH(softmax_rows, (s, rows, cols, ld, len0, step, sums))
}

void lf_gelu(const float *x, float *y, long n) { DISPATCH(gelu, (x, y, n)) }

void lf_geglu(const float *x, float *y, long rows, long half) { DISPATCH(geglu, (x, y, rows, half)) }

void lf_affine(const float *x, float *y, long n, float scale, float shift, int silu) {
	DISPATCH(affine, (x, y, n, scale, shift, silu))
}
