package cpu

import (
	"math"
	"testing"
)

// TestExpf_MatchesMathExp sweeps the whole float32 range of exp densely and
// checks the special values softmax and SiLU rely on.
func TestExpf_MatchesMathExp(t *testing.T) {
	worst := 0.0
	for x := -87.3; x < 88.7; x += 0.000377 {
		xf := float32(x)
		want := math.Exp(float64(xf))
		got := float64(expf(xf))
		if e := math.Abs(got-want) / want; e > worst {
			worst = e
		}
	}
	if worst > 1.2e-7 {
		t.Errorf("expf worst relative error %g, want <= 1.2e-7", worst)
	}
	if expf(0) != 1 || expf(float32(math.Inf(-1))) != 0 || expf(-200) != 0 {
		t.Errorf("expf(0, -Inf, -200) = %g, %g, %g", expf(0), expf(float32(math.Inf(-1))), expf(-200))
	}
	if !math.IsInf(float64(expf(100)), 1) || !math.IsInf(float64(expf(float32(math.Inf(1)))), 1) {
		t.Errorf("expf(100) = %g, want +Inf", expf(100))
	}
	if nan := float32(math.NaN()); expf(nan) == expf(nan) {
		t.Error("expf(NaN) is not NaN")
	}
}

// TestExpSub_MatchesExpf checks the hand-inlined softmax loop against expf,
// including -Inf entries (masked keys) and a NaN.
func TestExpSub_MatchesExpf(t *testing.T) {
	row := []float32{0, -1, -3.5, -87, -88, float32(math.Inf(-1)), 2.25, -0.001, 1e-8}
	mx := rowMax(row)
	want := make([]float32, len(row))
	var sum float64
	for i, v := range row {
		want[i] = expf(v - mx)
		sum += float64(want[i])
	}
	got := append([]float32(nil), row...)
	s := expSub(got, mx)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("expSub element %d = %g, want %g", i, got[i], want[i])
		}
	}
	if math.Abs(float64(s)-sum) > 1e-6*sum {
		t.Errorf("expSub sum %g, want %g", s, sum)
	}
	nan := []float32{0, float32(math.NaN())}
	if s := expSub(nan, 0); s == s {
		t.Errorf("expSub of a row with NaN summed to %g", s)
	}
}
