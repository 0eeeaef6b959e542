package rng

import (
	"math"
	"testing"

	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// ulpDiff returns how many float32 steps apart a and b are.
func ulpDiff(a, b float32) int64 {
	key := func(f float32) int64 {
		u := int64(math.Float32bits(f))
		if u&(1<<31) != 0 {
			return -(u & 0x7fffffff)
		}
		return u
	}
	d := key(a) - key(b)
	if d < 0 {
		return -d
	}
	return d
}

// checkExact fails unless got equals want bit for bit; it reports how many
// elements differ and by at most how many ulps.
func checkExact(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var diff int
	var worst int64
	first := -1
	for i := range got {
		if d := ulpDiff(got[i], want[i]); d != 0 {
			diff++
			if first < 0 {
				first = i
			}
			worst = max(worst, d)
		}
	}
	if diff > 0 {
		t.Errorf("%s: %d of %d values differ, up to %d ulp; first at %d: got %v, want %v",
			what, diff, len(got), worst, first, got[first], want[first])
	}
}

func TestRandn_TorchGolden(t *testing.T) {
	g := testfixtures.Golden(t, "torch_randn")
	tests := []struct {
		name  string
		seed  uint64
		calls int
	}{
		{"randn_seed0_1x4x8x8", 0, 1},
		{"randn_seed42_1x4x8x8", 42, 1},
		{"randn_seed1234_1x4x8x8", 1234, 1},
		{"randn_seed0_8", 0, 1},
		{"randn_seed0_1x4x8x8_x2", 0, 2},
		{"randn_seed42_1x4x64x64", 42, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, shape := g.Tensor(tc.name)
			n := 1
			for _, d := range shape[len(shape)-min(len(shape), 4):] {
				n *= d
			}
			gen := New(tc.seed)
			var got []float32
			for range tc.calls {
				got = append(got, gen.Randn(n)...)
			}
			checkExact(t, tc.name, got, want)
		})
	}
}

func TestRand_TorchGolden(t *testing.T) {
	want, _ := testfixtures.Golden(t, "torch_randn").Tensor("rand_seed42_16")
	checkExact(t, "rand_seed42_16", New(42).Rand(16), want)
}

// TestRandn_RaggedTail checks the n%16 != 0 path: the last 16 values are
// redrawn from 16 fresh uniforms after all n uniforms were consumed.
func TestRandn_RaggedTail(t *testing.T) {
	for _, n := range []int{17, 20, 31, 33, 100} {
		got := New(7).Randn(n)
		ref := New(7)
		var want []float32
		for i := 0; i+16 <= n; i += 16 {
			want = append(want, ref.Randn(16)...)
		}
		ref.Rand(n % 16) // uniforms drawn for the tail, then overwritten
		tail := ref.Randn(16)
		want = append(want[:n-16], tail...)
		checkExact(t, "ragged tail", got, want)
	}
}

// TestRandn_ScalarCache checks that the scalar path caches the second
// Box-Muller value across calls, as torch's generator does.
func TestRandn_ScalarCache(t *testing.T) {
	want := New(0).Randn(8)
	g := New(0)
	got := append(g.Randn(3), g.Randn(5)...)
	checkExact(t, "3+5 draws", got, want)
	// A vectorised call leaves the cache alone.
	g = New(0)
	first := g.Randn(1)
	g.Randn(16)
	second := g.Randn(1)
	checkExact(t, "cache across a vector call", append(first, second...), want[:2])
}

func TestGenerator_SeedUses32Bits(t *testing.T) {
	a, b := New(5), New(5+1<<32)
	for i := 0; i < 10; i++ {
		if x, y := a.Uint32(), b.Uint32(); x != y {
			t.Fatalf("draw %d: %d vs %d", i, x, y)
		}
	}
	// std::mt19937 seeded with 5489 gives 3499211612 as its first output.
	if got := New(5489).Uint32(); got != 3499211612 {
		t.Errorf("mt19937(5489) first output %d, want 3499211612", got)
	}
}

func TestCephesLogf(t *testing.T) {
	for _, x := range []float32{1, 0.5, 0.75, 1e-3, 0.999, 1.0 / (1 << 24)} {
		got, want := float64(cephesLogf(x)), math.Log(float64(x))
		if math.Abs(got-want) > 2e-7*math.Max(1, math.Abs(want)) {
			t.Errorf("cephesLogf(%g) = %g, want %g", x, got, want)
		}
	}
	if !math.IsNaN(float64(cephesLogf(0))) || !math.IsNaN(float64(cephesLogf(-1))) {
		t.Error("cephesLogf of x <= 0 is not NaN")
	}
}

func TestCephesSincosf(t *testing.T) {
	for x := float32(-7); x < 7; x += 0.013 {
		s, c := cephesSincosf(x)
		if ds, dc := math.Abs(float64(s)-math.Sin(float64(x))), math.Abs(float64(c)-math.Cos(float64(x))); ds > 3e-7 || dc > 3e-7 {
			t.Fatalf("sincos(%g) = %g, %g: errors %g, %g", x, s, c, ds, dc)
		}
	}
}
