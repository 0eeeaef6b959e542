// Fused attention in the style of flash attention: softmax(q·kᵀ/sqrt(d))·v
// per head with an online softmax over key tiles, so the Lq x Lk score
// matrix never exists in memory. Scores, softmax and the output accumulator
// are f32 whatever the storage type (SD2.x's attention upcast comes free).
//
// Layout: q [B, Lq, H*d], k and v [B, Lk, H*d], out like q. A block owns
// BR query rows of one (batch, head); TPR threads share a row, each holding
// DPT of its dims (interleaved, so a tile read by 4 neighbours is 4
// consecutive words); key and value tiles of BC rows are staged in shared
// memory as f32 (2*BC*d*4 bytes: 40 KiB at d = 160, under the 48 KiB that
// needs no opt-in). The kernels are named by the largest head dim they take.
#include "common.cuh"

#define TPR 4
#define BR 64
#define BC 32

template <int DPT>
__device__ __forceinline__ void attention_impl(void *out, i64 dt_out, const void *q, i64 dt_q, const void *k, i64 dt_k,
                                               const void *v, i64 dt_v, i64 lq, i64 lk, i64 heads, i64 dh,
                                               float scale, i64 causal) {
	extern __shared__ float smem[];
	float *ks = smem;
	float *vs = smem + BC * dh;
	i64 b = blockIdx.y / heads, h = blockIdx.y - (blockIdx.y / heads) * heads;
	i64 width = heads * dh;
	int row = threadIdx.x / TPR, part = threadIdx.x % TPR;
	i64 q0 = (i64)blockIdx.x * BR;
	i64 qi = q0 + row;
	bool valid = qi < lq;
	float qr[DPT], o[DPT];
#pragma unroll
	for (int j = 0; j < DPT; j++) {
		int c = part + TPR * j;
		qr[j] = (valid && c < dh) ? ld(q, dt_q, (b * lq + qi) * width + h * dh + c) * scale : 0.f;
		o[j] = 0.f;
	}
	float m = -INFINITY, l = 0.f;
	i64 kend = lk;
	if (causal) {
		i64 last = min(q0 + BR - 1, lq - 1);
		kend = min(lk, last + 1);
	}
	for (i64 k0 = 0; k0 < kend; k0 += BC) {
		__syncthreads(); // the previous tile is consumed
		for (i64 t = threadIdx.x; t < BC * dh; t += blockDim.x) {
			i64 j = t / dh, c = t - j * dh, key = k0 + j;
			float kv = 0.f, vv = 0.f;
			if (key < lk) {
				i64 off = (b * lk + key) * width + h * dh + c;
				kv = ld(k, dt_k, off);
				vv = ld(v, dt_v, off);
			}
			ks[t] = kv;
			vs[t] = vv;
		}
		__syncthreads();
		float s[BC];
		float mt = -INFINITY;
#pragma unroll
		for (int j = 0; j < BC; j++) {
			float p = 0.f;
#pragma unroll
			for (int jj = 0; jj < DPT; jj++) {
				int c = part + TPR * jj;
				if (c < dh) p += qr[jj] * ks[j * dh + c];
			}
			p += __shfl_xor_sync(0xffffffffu, p, 1);
			p += __shfl_xor_sync(0xffffffffu, p, 2);
			i64 key = k0 + j;
			s[j] = (key >= lk || (causal && key > qi)) ? -INFINITY : p;
			mt = fmaxf(mt, s[j]);
		}
		float mn = fmaxf(m, mt);
		if (mn == -INFINITY) continue; // every key so far is masked for this row
		float corr = __expf(m - mn);
		l *= corr;
#pragma unroll
		for (int jj = 0; jj < DPT; jj++) o[jj] *= corr;
#pragma unroll
		for (int j = 0; j < BC; j++) {
			float p = __expf(s[j] - mn);
			l += p;
#pragma unroll
			for (int jj = 0; jj < DPT; jj++) {
				int c = part + TPR * jj;
				if (c < dh) o[jj] += p * vs[j * dh + c];
			}
		}
		m = mn;
	}
	if (!valid) return;
	float inv = 1.f / l;
#pragma unroll
	for (int jj = 0; jj < DPT; jj++) {
		int c = part + TPR * jj;
		if (c < dh) st(out, dt_out, (b * lq + qi) * width + h * dh + c, o[jj] * inv);
	}
}

#define ATTENTION(name, dpt)                                                                                      \
	extern "C" __global__ void __launch_bounds__(BR * TPR) name(                                              \
	    void *out, i64 dt_out, const void *q, i64 dt_q, const void *k, i64 dt_k, const void *v, i64 dt_v,   \
	    i64 lq, i64 lk, i64 heads, i64 dh, float scale, i64 causal) {                                         \
		attention_impl<dpt>(out, dt_out, q, dt_q, k, dt_k, v, dt_v, lq, lk, heads, dh, scale, causal); \
	}

ATTENTION(attention_d32, 8)
ATTENTION(attention_d64, 16)
ATTENTION(attention_d128, 32)
ATTENTION(attention_d160, 40)
