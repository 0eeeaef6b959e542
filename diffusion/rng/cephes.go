package rng

import "math"

// Float32 log and sincos in the exact operation order of avx_mathfun.h
// (Pommier's sse_mathfun ported to AVX, cephes polynomials), which torch's
// AVX2 normal_fill_16 uses. torch builds that file with -mavx2 -mfma and GCC
// contracts a multiply whose only use is an add into one FMA (the first
// multiply in statement order when an add has two); fma32 marks exactly those
// steps. Every other product is wrapped in float32() so the Go compiler
// cannot fuse it. With this the output equals torch's bit for bit.

// cephes logf constants (cephes/single/logf.c).
const (
	cephesSQRTHF = float32(0.707106781186547524)
	logP0        = float32(7.0376836292e-2)
	logP1        = float32(-1.1514610310e-1)
	logP2        = float32(1.1676998740e-1)
	logP3        = float32(-1.2420140846e-1)
	logP4        = float32(+1.4249322787e-1)
	logP5        = float32(-1.6668057665e-1)
	logP6        = float32(+2.0000714765e-1)
	logP7        = float32(-2.4999993993e-1)
	logP8        = float32(+3.3333331174e-1)
	logQ1        = float32(-2.12194440e-4)
	logQ2        = float32(0.693359375)
)

// cephes sinf/cosf constants (cephes/single/sinf.c).
const (
	minusDP1 = float32(-0.78515625)
	minusDP2 = float32(-2.4187564849853515625e-4)
	minusDP3 = float32(-3.77489497744594108e-8)
	sinP0    = float32(-1.9515295891e-4)
	sinP1    = float32(8.3321608736e-3)
	sinP2    = float32(-1.6666654611e-1)
	cosP0    = float32(2.443315711809948e-005)
	cosP1    = float32(-1.388731625493765e-003)
	cosP2    = float32(4.166664568298827e-002)
	fourOpi  = float32(1.27323954473516)
)

// minNormPos is the smallest normal float32.
var minNormPos = math.Float32frombits(0x00800000)

// cephesLogf is log256_ps for one lane: NaN for x <= 0.
func cephesLogf(x float32) float32 {
	invalid := x <= 0 || x != x
	if !(x >= minNormPos) { // _mm256_max_ps returns its second operand for NaN
		x = minNormPos
	}
	bits := math.Float32bits(x)
	e := float32(int32(bits>>23)-0x7f) + 1
	x = math.Float32frombits(bits&^0x7f800000 | math.Float32bits(0.5))
	var tmp float32
	if x < cephesSQRTHF {
		tmp = x
		e -= 1
	}
	x -= 1
	x += tmp
	z := float32(x * x)

	y := fma32(logP0, x, logP1)
	y = fma32(y, x, logP2)
	y = fma32(y, x, logP3)
	y = fma32(y, x, logP4)
	y = fma32(y, x, logP5)
	y = fma32(y, x, logP6)
	y = fma32(y, x, logP7)
	y = fma32(y, x, logP8)
	y = float32(y * x)
	y = fma32(y, z, float32(e*logQ1))
	y = fma32(-z, 0.5, y)
	x = fma32(e, logQ2, x+y)
	if invalid {
		return float32(math.NaN())
	}
	return x
}

// cephesSincosf is sincos256_ps for one lane.
func cephesSincosf(x float32) (sin, cos float32) {
	signSin := math.Float32bits(x) & 0x80000000
	x = float32(math.Abs(float64(x)))
	j := int32(float32(x * fourOpi)) // truncation, like cvttps
	j = (j + 1) &^ 1
	y := float32(j)
	signSin ^= uint32(j&4) << 29
	sinPoly := j&2 == 0
	signCos := uint32(^(j-2)&4) << 29

	x = fma32(y, minusDP1, x)
	x = fma32(y, minusDP2, x)
	x = fma32(y, minusDP3, x)

	z := float32(x * x)
	c := fma32(cosP0, z, cosP1)
	c = fma32(c, z, cosP2)
	c = float32(c * z)
	c = fma32(c, z, -float32(z*0.5))
	c += 1

	s := fma32(sinP0, z, sinP1)
	s = fma32(s, z, sinP2)
	s = float32(s * z)
	s = fma32(s, x, x)

	// Both polynomials are computed; the mask picks which is the sine.
	var ysin1, ysin2 float32
	if sinPoly {
		ysin2 = s
	} else {
		ysin1 = c
	}
	s -= ysin2
	c -= ysin1
	sin = math.Float32frombits(math.Float32bits(ysin1+ysin2) ^ signSin)
	cos = math.Float32frombits(math.Float32bits(c+s) ^ signCos)
	return sin, cos
}

// fma32 returns a*b+c rounded once to float32, like vfmadd...ps.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact: 48 significant bits at most
	r := p + float64(c)
	// r may be off by its rounding error; only when r sits exactly on a
	// float32 tie does that error decide the float32 result.
	bv := r - p
	err := (p - (r - bv)) + (float64(c) - bv)
	if err != 0 && math.Float64bits(r)&(1<<29-1) == 1<<28 {
		r = math.Nextafter(r, math.Copysign(math.Inf(1), err))
	}
	return float32(r)
}
