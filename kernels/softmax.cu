// Softmax over the last axis: one block per row, f32 max and sum.
#include "common.cuh"

extern "C" __global__ void softmax(void *dst, i64 dt_dst, const void *src, i64 dt_src, i64 rows, i64 cols) {
	__shared__ float scratch[32];
	i64 r = blockIdx.x;
	if (r >= rows) return;
	i64 base = r * cols;
	float m = -INFINITY;
	for (i64 c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, ld(src, dt_src, base + c));
	m = block_max(m, scratch);
	float s = 0.f;
	for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += expf(ld(src, dt_src, base + c) - m);
	s = block_sum(s, scratch);
	float inv = 1.f / s;
	for (i64 c = threadIdx.x; c < cols; c += blockDim.x) st(dst, dt_dst, base + c, expf(ld(src, dt_src, base + c) - m) * inv);
}
