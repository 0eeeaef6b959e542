package interp

import (
	"math"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// interpTol is the bound on golden/interpolation.safetensors: NumPy's
// pairwise float32 sums and our float64 ones may differ in the last bits.
const interpTol = 1e-6

func TestSlerp_Golden(t *testing.T) {
	g := testfixtures.Golden(t, "interpolation")
	ts, _ := g.Tensor("in_t")
	a, _ := g.Tensor("in_noise_a")
	for _, tc := range []struct {
		other, want, dot string
		spherical        bool
	}{
		{"in_noise_b", "slerp_ab", "dot_ab", true},
		{"in_noise_c", "slerp_ac", "dot_ac", false},
	} {
		t.Run(tc.want, func(t *testing.T) {
			b, _ := g.Tensor(tc.other)
			want, _ := g.Tensor(tc.want)
			wantDot, _ := g.Tensor(tc.dot)
			dot := normalisedDot(a, b)
			if d := math.Abs(float64(dot - wantDot[0])); d > 1e-6 {
				t.Errorf("dot = %v, want %v", dot, wantDot[0])
			}
			if spherical := math.Abs(float64(dot)) <= DotThreshold; spherical != tc.spherical {
				t.Fatalf("dot %v takes the spherical branch: %v, want %v", dot, spherical, tc.spherical)
			}
			n := len(a)
			worst := 0.0
			for i, tt := range ts {
				got := Slerp(float64(tt), a, b)
				e := testfixtures.MaxRelErr(got, want[i*n:(i+1)*n])
				worst = math.Max(worst, e)
				testfixtures.AssertClose(t, "slerp", got, want[i*n:(i+1)*n], interpTol)
			}
			t.Logf("%s: max relative error %.3g", tc.want, worst)
		})
	}
}

func TestLerp_Golden(t *testing.T) {
	g := testfixtures.Golden(t, "interpolation")
	ts, _ := g.Tensor("in_t")
	a, _ := g.Tensor("in_embeds_a")
	b, _ := g.Tensor("in_embeds_b")
	want, _ := g.Tensor("lerp_embeds")
	n := len(a)
	worst := 0.0
	for i, tt := range ts {
		got := Lerp(float64(tt), a, b)
		worst = math.Max(worst, testfixtures.MaxRelErr(got, want[i*n:(i+1)*n]))
		testfixtures.AssertClose(t, "lerp", got, want[i*n:(i+1)*n], interpTol)
	}
	t.Logf("lerp_embeds: max relative error %.3g", worst)
	// torch's formula switches at 0.5 so that both ends are exact.
	for i, v := range Lerp(1, a, b) {
		if v != b[i] {
			t.Fatalf("Lerp(1)[%d] = %v, want b = %v", i, v, b[i])
		}
	}
	for i, v := range Lerp(0, a, b) {
		if v != a[i] {
			t.Fatalf("Lerp(0)[%d] = %v, want a = %v", i, v, a[i])
		}
	}
}

func TestSlerp_LengthMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Slerp with different lengths did not panic")
		}
	}()
	Slerp(0.5, make([]float32, 3), make([]float32, 4))
}

func TestEase(t *testing.T) {
	for _, name := range Easings() {
		t.Run(name, func(t *testing.T) {
			for _, end := range []float64{0, 1} {
				got, err := Ease(name, end)
				if err != nil || got != end {
					t.Errorf("Ease(%q, %v) = %v, %v; want %v", name, end, got, err, end)
				}
			}
			prev := -1.0
			for i := 0; i <= 100; i++ {
				got, err := Ease(name, float64(i)/100)
				if err != nil {
					t.Fatal(err)
				}
				if got <= prev || got < 0 || got > 1 {
					t.Fatalf("Ease(%q, %v) = %v after %v: not increasing within [0, 1]", name, float64(i)/100, got, prev)
				}
				prev = got
			}
		})
	}
	if got, _ := Ease(EaseSmooth, 0.25); math.Abs(got-0.15625) > 1e-15 {
		t.Errorf("Ease(smooth, 0.25) = %v, want 0.15625", got)
	}
	_, err := Ease("bounce", 0.5)
	if err == nil || !strings.Contains(err.Error(), `"bounce"`) || !strings.Contains(err.Error(), "linear") || !strings.Contains(err.Error(), "smooth") {
		t.Errorf("Ease(bounce) error = %v, want one naming the valid easings", err)
	}
}
