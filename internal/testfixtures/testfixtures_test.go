package testfixtures

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
	fatal  bool
	msgs   []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.fatal = true
	panic(r) // stop the caller like runtime.Goexit would, without ending the real test
}

// run calls f with a fresh recorder and returns it after f returns or fails fatally.
func run(t *testing.T, f func(tb testing.TB)) (r *recorder) {
	r = &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != any(r) {
			panic(p)
		}
	}()
	f(r)
	return r
}

func TestAssertClose(t *testing.T) {
	want := []float32{1, -2, 3, 0, 0.5, 100}
	perturbed := append([]float32(nil), want...)
	perturbed[2] *= 1.001
	nan := append([]float32(nil), want...)
	nan[4] = float32(math.NaN())
	inf := append([]float32(nil), want...)
	inf[1] = float32(math.Inf(-1))
	tiny := append([]float32(nil), want...)
	tiny[3] = 1e-9 // near-zero want: error measured against 0.1*rms

	tests := []struct {
		name    string
		got     []float32
		rtol    float64
		fail    bool
		msgPart string
	}{
		{"Equal", want, 0, false, ""},
		{"PerturbedWithinTol", perturbed, 2e-3, false, ""},
		{"PerturbedBeyondTol", perturbed, 1e-4, true, "at index 2: got 3.003"},
		{"NaN", nan, 1, true, "got[4] = NaN"},
		{"Inf", inf, 1, true, "got[1] = -Inf"},
		{"Length", want[:3], 1, true, "got 3 values, want 6"},
		{"NearZeroUsesRMSFloor", tiny, 1e-6, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, func(tb testing.TB) { AssertClose(tb, "vec", tc.got, want, tc.rtol) })
			if r.failed != tc.fail {
				t.Fatalf("failed = %v, want %v (messages %q)", r.failed, tc.fail, r.msgs)
			}
			if tc.fail && !strings.Contains(strings.Join(r.msgs, "\n"), tc.msgPart) {
				t.Errorf("messages %q do not contain %q", r.msgs, tc.msgPart)
			}
		})
	}
}

func TestMaxRelErr(t *testing.T) {
	want := []float32{2, -4, 0}
	// rms(want) = sqrt(20/3); the floor for the zero component is 0.1 of that.
	floor := 0.1 * math.Sqrt(20.0/3)
	got := []float32{2.002, -4, 0}
	if e := MaxRelErr(got, want); math.Abs(e-1e-3) > 1e-6 {
		t.Errorf("MaxRelErr = %g, want 1e-3", e)
	}
	got[0], got[2] = 2, float32(floor/10)
	if e := MaxRelErr(got, want); math.Abs(e-0.1) > 1e-6 {
		t.Errorf("MaxRelErr with floor = %g, want 0.1", e)
	}
	if e := MaxRelErr(got[:2], want); !math.IsInf(e, 1) {
		t.Errorf("MaxRelErr on length mismatch = %g, want +Inf", e)
	}
	got[1] = float32(math.NaN())
	if e := MaxRelErr(got, want); !math.IsInf(e, 1) {
		t.Errorf("MaxRelErr with NaN = %g, want +Inf", e)
	}
}

func TestDir(t *testing.T) {
	dir := Dir(t)
	if !filepath.IsAbs(dir) || filepath.Base(dir) != "sd-tiny" {
		t.Fatalf("Dir = %q, want an absolute path ending in sd-tiny", dir)
	}
}

func TestGolden(t *testing.T) {
	g := Golden(t, "torch_randn")
	v, shape := g.Tensor("randn_seed0_8")
	if len(v) != 8 || len(shape) != 1 || shape[0] != 8 {
		t.Fatalf("randn_seed0_8: %d values, shape %v", len(v), shape)
	}
	r := run(t, func(tb testing.TB) { Golden(tb, "torch_randn").Tensor("no_such_tensor") })
	if !r.fatal || !strings.Contains(r.msgs[0], `no tensor "no_such_tensor"`) {
		t.Errorf("missing tensor: fatal=%v messages %q", r.fatal, r.msgs)
	}
	r = run(t, func(tb testing.TB) { Golden(tb, "no_such_file") })
	if !r.fatal || !strings.Contains(r.msgs[0], "no_such_file") {
		t.Errorf("missing file: fatal=%v messages %q", r.fatal, r.msgs)
	}
}
