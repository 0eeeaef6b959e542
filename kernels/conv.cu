// im2col for Conv2D: the backend multiplies the weights [Cout, C*kh*kw] by
// the column matrix with cuBLAS. Padding is per side (top, left given here;
// bottom and right only change Ho and Wo), as the VAE downsampler needs.
#include "common.cuh"

// im2col: x [N, C, H, W] -> col [N, C*kh*kw, Ho*Wo], zeros where the window
// falls in the padding.
extern "C" __global__ void im2col(void *col, i64 dt_col, const void *x, i64 dt_x,
                                  i64 n, i64 c, i64 h, i64 w, i64 kh, i64 kw,
                                  i64 stride, i64 pad_top, i64 pad_left, i64 ho, i64 wo) {
	i64 plane = ho * wo, rows = c * kh * kw;
	GRID_STRIDE(i, n * rows * plane) {
		i64 p = i % plane;
		i64 t = i / plane;
		i64 row = t % rows;
		i64 img = t / rows;
		i64 ox = p % wo, oy = p / wo;
		i64 kx = row % kw, ky = (row / kw) % kh, ch = row / (kw * kh);
		i64 iy = oy * stride - pad_top + ky, ix = ox * stride - pad_left + kx;
		float v = 0.f;
		if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = ld(x, dt_x, ((img * c + ch) * h + iy) * w + ix);
		st(col, dt_col, i, v);
	}
}
