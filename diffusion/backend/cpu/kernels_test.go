package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// relErr is |got-want| relative to |want|, with an absolute floor.
func relErr(got float32, want, floor float64) float64 {
	return math.Abs(float64(got)-want) / math.Max(math.Abs(want), floor)
}

// TestSoftmaxRows_MatchesFloat64 checks the softmax kernel (vectorised in
// cgo builds) against float64 exp, with causal lengths, a row stride wider
// than the row, masked (-Inf) keys and a NaN.
func TestSoftmaxRows_MatchesFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols, ld = 7, 133, 140
	for _, step := range []int{0, 1} {
		s := make([]float32, rows*ld)
		for i := range s {
			s[i] = float32(r.NormFloat64() * 8)
		}
		s[3] = float32(math.Inf(-1))
		orig := append([]float32(nil), s...)
		sums := make([]float32, rows)
		len0 := cols
		if step == 1 {
			len0 = 60
		}
		softmaxRows(s, rows, cols, ld, len0, step, sums)
		worst := 0.0
		for i := range rows {
			n := min(len0+step*i, cols)
			row := orig[i*ld : i*ld+n]
			mx := float32(math.Inf(-1))
			for _, v := range row {
				mx = max(mx, v)
			}
			var sum float64
			for j, v := range row {
				want := math.Exp(float64(v - mx)) // the float32 difference is the input

				sum += want
				worst = math.Max(worst, relErr(s[i*ld+j], want, 1e-30))
			}
			for j := n; j < cols; j++ {
				if s[i*ld+j] != 0 {
					t.Fatalf("step %d row %d: masked entry %d = %g, want 0", step, i, j, s[i*ld+j])
				}
			}
			for j := cols; j < ld && i < rows-1; j++ {
				if s[i*ld+j] != orig[i*ld+j] {
					t.Fatalf("step %d row %d: wrote past the row into stride padding", step, i)
				}
			}
			if e := relErr(sums[i], sum, 1e-30); e > 1e-6 {
				t.Errorf("step %d row %d: sum %g, want %g", step, i, sums[i], sum)
			}
		}
		if worst > 3e-7 {
			t.Errorf("step %d: worst relative error %g, want <= 3e-7", step, worst)
		}
	}
	nan := []float32{0, float32(math.NaN()), -1}
	var sum [1]float32
	softmaxRows(nan, 1, 3, 3, 3, 0, sum[:])
	if nan[1] == nan[1] || sum[0] == sum[0] {
		t.Errorf("row with a NaN gave %v, sum %g; want NaN in both", nan, sum[0])
	}
}

// TestGelu_MatchesErf sweeps the fast GELU (cgo builds) against the erf
// definition in float64, and checks infinities and NaN.
func TestGelu_MatchesErf(t *testing.T) {
	var xs []float32
	for x := -12.0; x <= 12; x += 0.000731 {
		xs = append(xs, float32(x))
	}
	xs = append(xs, 0, 1e-30, -1e-30, 30, -30)
	got := make([]float32, len(xs))
	geluTo(got, xs)
	worst := 0.0
	for i, x := range xs {
		xf := float64(x)
		want := 0.5 * xf * (1 + math.Erf(xf/math.Sqrt2))
		// Relative to the result, or to x where the result underflows
		// towards 0 (x << 0): float32 cannot do better there.
		if e := math.Abs(float64(got[i])-want) / math.Max(math.Abs(want), 1e-6*math.Abs(xf)); e > worst {
			worst = e
		}
	}
	// The worst case, about 1.7e-6 near x = -4.7 where gelu(x) is -7e-6,
	// comes from rounding z*z in float32 inside erfc's exp.
	if worst > 2.5e-6 {
		t.Errorf("gelu worst relative error %g, want <= 2.5e-6", worst)
	}
	sp := []float32{float32(math.Inf(1)), float32(math.NaN())}
	out := make([]float32, 2)
	geluTo(out, sp)
	if !math.IsInf(float64(out[0]), 1) || out[1] == out[1] {
		t.Errorf("gelu(+Inf, NaN) = %v", out)
	}
	h := []float32{2, -3, 0.5, 1.5}
	g := make([]float32, 2)
	gegluRows(g, h, 1, 2)
	for i := range g {
		want := float64(h[i]) * 0.5 * float64(h[2+i]) * (1 + math.Erf(float64(h[2+i])/math.Sqrt2))
		if relErr(g[i], want, 1e-30) > 1e-6 {
			t.Errorf("geglu[%d] = %g, want %g", i, g[i], want)
		}
	}
}

// TestAffine_SiLU checks the GroupNorm epilogue with and without SiLU.
func TestAffine_SiLU(t *testing.T) {
	var xs []float32
	for x := -100.0; x <= 100; x += 0.0173 {
		xs = append(xs, float32(x))
	}
	got := make([]float32, len(xs))
	for _, silu := range []bool{false, true} {
		affineTo(got, xs, 0.5, 0.25, silu)
		for i, x := range xs {
			v := float64(x)*0.5 + 0.25
			want := v
			if silu {
				want = v / (1 + math.Exp(-v))
			}
			if relErr(got[i], want, 1e-6) > 1e-6 {
				t.Fatalf("affine(%g, silu %v) = %g, want %g", x, silu, got[i], want)
			}
		}
	}
}
