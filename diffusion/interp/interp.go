// Package interp holds the math of latent-space animation: spherical and
// linear interpolation of noise and prompt embeddings, bit-compatible with
// diffusers' community interpolate_stable_diffusion.py (v0.27.2), and the
// easing curves that space frames between two keys. It is pure arithmetic
// on float32 slices: it must never touch a backend, a model or a random
// generator.
package interp

import (
	"fmt"
	"math"
)

// DotThreshold is slerp's cut-off: when the normalised dot product of the
// two vectors exceeds it in magnitude they are nearly (anti)parallel and
// slerp falls back to linear interpolation (DOT_THRESHOLD in diffusers'
// interpolate_stable_diffusion.py).
const DotThreshold = 0.9995

// Slerp interpolates spherically from a (t = 0) to b (t = 1), exactly as
// diffusers' community slerp does in NumPy 1.x: the normalised dot product
// and theta_0 in float32, the weights s0 and s1 in float64, and the result
// s0*a + s1*b in float32. a and b must have the same length.
func Slerp(t float64, a, b []float32) []float32 {
	checkLen("Slerp", a, b)
	dot := normalisedDot(a, b)
	if math.Abs(float64(dot)) > DotThreshold {
		return mix(float32(1-t), a, float32(t), b)
	}
	theta0 := float32(math.Acos(float64(dot)))
	sinTheta0 := float64(float32(math.Sin(float64(theta0))))
	thetaT := float64(theta0) * t
	s0 := math.Sin(float64(theta0)-thetaT) / sinTheta0
	s1 := math.Sin(thetaT) / sinTheta0
	return mix(float32(s0), a, float32(s1), b)
}

// Lerp interpolates linearly from a (t = 0) to b (t = 1) as torch.lerp does
// in float32: a + t*(b-a) for |t| < 0.5 and b - (b-a)*(1-t) otherwise, which
// returns b exactly at t = 1.
func Lerp(t float64, a, b []float32) []float32 {
	checkLen("Lerp", a, b)
	w := float32(t)
	out := make([]float32, len(a))
	if math.Abs(float64(w)) < 0.5 {
		for i := range a {
			out[i] = a[i] + float32(w*(b[i]-a[i]))
		}
		return out
	}
	rest := 1 - w
	for i := range a {
		out[i] = b[i] - float32((b[i]-a[i])*rest)
	}
	return out
}

// normalisedDot is sum(a*b/(norm(a)*norm(b))) with float32 elements, as
// NumPy evaluates it on float32 arrays (the sums are accumulated in float64
// here, NumPy's pairwise float32 sums differ in the last bits).
func normalisedDot(a, b []float32) float32 {
	norms := float32(norm(a) * norm(b))
	var sum float64
	for i := range a {
		sum += float64(float32(a[i]*b[i]) / norms)
	}
	return float32(sum)
}

// norm is the float32 Euclidean norm of v.
func norm(v []float32) float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return float32(math.Sqrt(float64(float32(s))))
}

// mix returns ca*a + cb*b with each product rounded to float32, as NumPy
// computes a scalar times a float32 array.
func mix(ca float32, a []float32, cb float32, b []float32) []float32 {
	out := make([]float32, len(a))
	for i := range a {
		out[i] = float32(ca*a[i]) + float32(cb*b[i])
	}
	return out
}

func checkLen(who string, a, b []float32) {
	if len(a) != len(b) {
		panic(fmt.Sprintf("interp: %s: lengths %d and %d differ", who, len(a), len(b)))
	}
}

// Easing curves accepted by Ease.
const (
	EaseLinear = "linear" // t unchanged
	EaseSmooth = "smooth" // smoothstep 3t^2 - 2t^3: slow near both keys
)

// Easings lists the names Ease accepts.
func Easings() []string { return []string{EaseLinear, EaseSmooth} }

// Ease maps a frame's position t in [0, 1] between two keys to the
// interpolation weight of the easing curve called name. Both curves keep 0
// and 1 fixed and are monotonic on [0, 1].
func Ease(name string, t float64) (float64, error) {
	switch name {
	case EaseLinear:
		return t, nil
	case EaseSmooth:
		return t * t * (3 - 2*t), nil
	}
	return 0, fmt.Errorf("interp: unknown easing %q (want one of %v)", name, Easings())
}
