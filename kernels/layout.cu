// Data movement: nearest 2x upsampling, block copies (Concat and Slice) and
// axis permutation. Embedding gathers are row copies made by the backend.
#include "common.cuh"

// upsample2x: x [planes, h, w] -> [planes, 2h, 2w].
extern "C" __global__ void upsample2x(void *dst, i64 dt_dst, const void *src, i64 dt_src, i64 planes, i64 h, i64 w) {
	i64 w2 = 2 * w, h2 = 2 * h;
	GRID_STRIDE(i, planes * h2 * w2) {
		i64 x = i % w2, t = i / w2;
		i64 y = t % h2, p = t / h2;
		st(dst, dt_dst, i, ld(src, dt_src, (p * h + y / 2) * w + x / 2));
	}
}

// copy_axis views both tensors as [outer, axis, inner] and copies len
// entries of the axis: dst[o, dst_off + a, :] = src[o, src_off + a, :].
extern "C" __global__ void copy_axis(void *dst, i64 dt_dst, i64 dst_axis, i64 dst_off,
                                     const void *src, i64 dt_src, i64 src_axis, i64 src_off,
                                     i64 outer, i64 len, i64 inner) {
	GRID_STRIDE(i, outer * len * inner) {
		i64 in = i % inner, t = i / inner;
		i64 a = t % len, o = t / len;
		st(dst, dt_dst, (o * dst_axis + dst_off + a) * inner + in, ld(src, dt_src, (o * src_axis + src_off + a) * inner + in));
	}
}

// permute6: dst has dims d0..d5 (leading ones padded with 1); s0..s5 are the
// strides in src of the source axis behind each dst axis.
extern "C" __global__ void permute6(void *dst, i64 dt_dst, const void *src, i64 dt_src, i64 n,
                                    i64 d0, i64 d1, i64 d2, i64 d3, i64 d4, i64 d5,
                                    i64 s0, i64 s1, i64 s2, i64 s3, i64 s4, i64 s5) {
	GRID_STRIDE(i, n) {
		i64 t = i, off = 0;
		off += (t % d5) * s5; t /= d5;
		off += (t % d4) * s4; t /= d4;
		off += (t % d3) * s3; t /= d3;
		off += (t % d2) * s2; t /= d2;
		off += (t % d1) * s1; t /= d1;
		off += t * s0;
		(void)d0;
		st(dst, dt_dst, i, ld(src, dt_src, off));
	}
}
