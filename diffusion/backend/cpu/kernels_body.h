//go:build cgo

// The kernels, written once and compiled by kernels.c for each instruction
// set with LF(name) naming the variant. Plain loops that GCC vectorises
// (-O3 -fopenmp-simd); every branch is a select, so one loop body serves
// all lanes.

// lexp is exp for float32 with about 2 ulp of error: Cody-Waite reduction
// x = k ln2 + r, |r| <= ln2/2, a degree-7 Taylor polynomial for e^r
// (truncation below 5e-9) and 2^k built in the exponent bits in two halves
// so that every k in [-126, 128] stays a normal number. Below the smallest
// normal result it returns 0, above the largest +Inf; NaN stays NaN.
static inline __attribute__((always_inline)) float LF(lexp)(float x) {
	const float lo = -87.33654f, hi = 88.72283f;
	float xc = x < lo ? lo : x;
	xc = xc > hi ? hi : xc;
	// Round to nearest by adding and removing 1.5*2^23 (|k| <= 128), which
	// every SIMD level vectorises, unlike rintf.
	float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	float r = xc - k * 0.693359375f;  // ln2 high part: k*ln2hi is exact
	r = r - k * -2.12194440e-4f;       // ln2 low part
	float p = 1.0f / 5040;
	p = p * r + 1.0f / 720;
	p = p * r + 1.0f / 120;
	p = p * r + 1.0f / 24;
	p = p * r + 1.0f / 6;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	int ki = (int)k;
	int k1 = ki >> 1;
	union { int i; float f; } s1 = {.i = (k1 + 127) << 23}, s2 = {.i = (ki - k1 + 127) << 23};
	float e = p * s1.f * s2.f;
	e = x < lo ? 0.0f : e;
	e = x > hi ? __builtin_inff() : e;
	return x != x ? x : e;
}

// lgelu is x * Phi(x) with Phi from erfc: Phi(-|x|) = erfc(|x|/sqrt2)/2,
// erfc by the Chebyshev fit of Numerical Recipes (erfcc, fractional error
// below 1.2e-7 everywhere).
static inline __attribute__((always_inline)) float LF(lgelu)(float x) {
	float z = __builtin_fabsf(x) * 0.707106781186547524f;
	float t = 1.0f / (1.0f + 0.5f * z);
	float p = 0.17087277f;
	p = p * t - 0.82215223f;
	p = p * t + 1.48851587f;
	p = p * t - 1.13520398f;
	p = p * t + 0.27886807f;
	p = p * t - 0.18628806f;
	p = p * t + 0.09678418f;
	p = p * t + 0.37409196f;
	p = p * t + 1.00002368f;
	p = p * t - 1.26551223f;
	float tail = 0.5f * t * LF(lexp)(p - z * z); // Phi(-|x|)
	return x * (x < 0 ? tail : 1.0f - tail);
}

static void LF(softmax_rows)(float *s, long rows, long cols, long ld, long len0, long step, float *sums) {
	for (long i = 0; i < rows; i++) {
		float *row = s + i * ld;
		long n = len0 + step * i;
		n = n > cols ? cols : n;
		for (long j = n; j < cols; j++) row[j] = 0;
		float mx = -__builtin_inff();
#pragma omp simd reduction(max : mx)
		for (long j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
		float sum = 0;
#pragma omp simd reduction(+ : sum)
		for (long j = 0; j < n; j++) {
			float e = LF(lexp)(row[j] - mx);
			row[j] = e;
			sum += e;
		}
		sums[i] = sum;
	}
}

static void LF(gelu)(const float *x, float *y, long n) {
#pragma omp simd
	for (long i = 0; i < n; i++) y[i] = LF(lgelu)(x[i]);
}

static void LF(geglu)(const float *x, float *y, long rows, long half) {
	for (long r = 0; r < rows; r++) {
		const float *h = x + r * 2 * half, *g = h + half;
		float *o = y + r * half;
#pragma omp simd
		for (long i = 0; i < half; i++) o[i] = h[i] * LF(lgelu)(g[i]);
	}
}

static void LF(affine)(const float *x, float *y, long n, float scale, float shift, int silu) {
	if (!silu) {
#pragma omp simd
		for (long i = 0; i < n; i++) y[i] = x[i] * scale + shift;
		return;
	}
#pragma omp simd
	for (long i = 0; i < n; i++) {
		float v = x[i] * scale + shift;
		y[i] = v / (1.0f + LF(lexp)(-v));
	}
}
