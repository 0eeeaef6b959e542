// Shared helpers for the latentfarm kernels: dtype-tagged loads and stores,
// grid-stride loops and warp/block reductions. Every kernel computes in f32
// whatever the storage type, and takes its integer arguments as long long
// because gorgonia.org/cu passes each launch argument as 8 bytes.
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>

typedef long long i64;

// Element types; the numbers are those of backend.DType.
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2

__device__ __forceinline__ float ld(const void *p, i64 dt, i64 i) {
	if (dt == DT_F16) return __half2float(((const __half *)p)[i]);
	if (dt == DT_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
	return ((const float *)p)[i];
}

__device__ __forceinline__ void st(void *p, i64 dt, i64 i, float v) {
	if (dt == DT_F16) {
		((__half *)p)[i] = __float2half_rn(v);
	} else if (dt == DT_BF16) {
		((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
	} else {
		((float *)p)[i] = v;
	}
}

#define GRID_STRIDE(i, n) \
	for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

__device__ __forceinline__ float warp_sum(float v) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ float warp_max(float v) {
	for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

// block_sum returns the sum of v over the block to every thread; scratch
// holds 32 floats. Callers may call it repeatedly: it syncs before reuse.
__device__ __forceinline__ float block_sum(float v, float *scratch) {
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	v = warp_sum(v);
	__syncthreads();
	if (lane == 0) scratch[warp] = v;
	__syncthreads();
	int warps = (blockDim.x + 31) >> 5;
	v = lane < warps ? scratch[lane] : 0.f;
	return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float *scratch) {
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0) scratch[warp] = v;
	__syncthreads();
	int warps = (blockDim.x + 31) >> 5;
	v = lane < warps ? scratch[lane] : -INFINITY;
	return warp_max(v);
}
