package unet

import (
	"math"
	"testing"
)

func TestExpf32_WithinOneUlp(t *testing.T) {
	for x := float32(-20); x <= 20; x += 0.0137 {
		got := expf32(x)
		want := float32(math.Exp(float64(x)))
		lo, hi := math.Nextafter32(want, 0), math.Nextafter32(want, float32(math.Inf(1)))
		if got < lo || got > hi {
			t.Fatalf("expf32(%v) = %v, exp = %v (more than one ulp apart)", x, got, want)
		}
	}
	if expf32(-200) != 0 || !math.IsInf(float64(expf32(200)), 1) || expf32(0) != 1 {
		t.Errorf("expf32 edges: exp(-200)=%v exp(200)=%v exp(0)=%v", expf32(-200), expf32(200), expf32(0))
	}
}

func TestTimestepFeatures_Layout(t *testing.T) {
	// dim 5: half 2, frequencies 1 and 1e-2 (exp(-ln(1e4) * 1/2)), a zero pad.
	f := TimestepFeatures([]float64{0, 2.5}, 5, false, 0)
	want := []float32{0, 0, 1, 1, 0,
		float32(math.Sin(2.5)), float32(math.Sin(0.025)), float32(math.Cos(2.5)), float32(math.Cos(0.025)), 0}
	for i := range want {
		if math.Abs(float64(f[i]-want[i])) > 1e-6 {
			t.Fatalf("features %v, want %v", f, want)
		}
	}
	flipped := TimestepFeatures([]float64{2.5}, 4, true, 0)
	if flipped[0] != f[7] || flipped[2] != f[5] {
		t.Errorf("flip_sin_to_cos: %v, want cos first", flipped)
	}
	// freq_shift 1 (the default of get_timestep_embedding): frequencies
	// exp(-ln(1e4) * i / (half - 1)).
	shifted := TimestepFeatures([]float64{1}, 6, false, 1)
	if got, want := float64(shifted[1]), math.Sin(math.Exp(-math.Log(1e4)/2)); math.Abs(got-want) > 1e-6 {
		t.Errorf("freq_shift 1: sin feature %v, want %v", got, want)
	}
}
