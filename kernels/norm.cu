// Group norm (optionally fused with SiLU) and layer norm. Statistics are
// two-pass in f32 (mean, then the mean of squared deviations), as the CPU
// reference computes them, so inputs far from zero keep their precision.
#include "common.cuh"

// group_norm: x [N, C, spatial]; one block per (image, group).
extern "C" __global__ void group_norm(void *dst, i64 dt_dst, const void *x, i64 dt_x,
                                      const void *gamma, i64 dt_g, const void *beta, i64 dt_b,
                                      i64 channels, i64 spatial, i64 groups, float eps, i64 silu) {
	__shared__ float scratch[32];
	i64 img = blockIdx.x / groups, g = blockIdx.x - img * groups;
	i64 per = channels / groups;
	i64 count = per * spatial;
	i64 base = (img * channels + g * per) * spatial;
	float s = 0.f;
	for (i64 i = threadIdx.x; i < count; i += blockDim.x) s += ld(x, dt_x, base + i);
	float mean = block_sum(s, scratch) / (float)count;
	float v = 0.f;
	for (i64 i = threadIdx.x; i < count; i += blockDim.x) {
		float d = ld(x, dt_x, base + i) - mean;
		v += d * d;
	}
	float rstd = rsqrtf(block_sum(v, scratch) / (float)count + eps);
	for (i64 i = threadIdx.x; i < count; i += blockDim.x) {
		i64 c = g * per + i / spatial;
		float y = (ld(x, dt_x, base + i) - mean) * rstd * ld(gamma, dt_g, c) + ld(beta, dt_b, c);
		if (silu) y = y / (1.f + expf(-y));
		st(dst, dt_dst, base + i, y);
	}
}

// layer_norm: x [rows, d]; one block per row.
extern "C" __global__ void layer_norm(void *dst, i64 dt_dst, const void *x, i64 dt_x,
                                      const void *gamma, i64 dt_g, const void *beta, i64 dt_b,
                                      i64 rows, i64 d, float eps) {
	__shared__ float scratch[32];
	i64 r = blockIdx.x;
	if (r >= rows) return;
	i64 base = r * d;
	float s = 0.f;
	for (i64 i = threadIdx.x; i < d; i += blockDim.x) s += ld(x, dt_x, base + i);
	float mean = block_sum(s, scratch) / (float)d;
	float v = 0.f;
	for (i64 i = threadIdx.x; i < d; i += blockDim.x) {
		float t = ld(x, dt_x, base + i) - mean;
		v += t * t;
	}
	float rstd = rsqrtf(block_sum(v, scratch) / (float)d + eps);
	for (i64 i = threadIdx.x; i < d; i += blockDim.x)
		st(dst, dt_dst, base + i, (ld(x, dt_x, base + i) - mean) * rstd * ld(gamma, dt_g, i) + ld(beta, dt_b, i));
}
