// Package testfixtures finds the shared sd-tiny golden fixtures and compares
// float32 results with them; every numerical test in the repository uses it.
// It must only be imported from tests, and must never skip a test because a
// fixture is missing: a missing fixture is a failure.
package testfixtures

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/safetensors"
)

// fixtureRel is where the fixtures sit relative to the folder holding go.mod.
const fixtureRel = "../shared/fixtures/sd-tiny"

// Dir returns the absolute path of the sd-tiny fixture folder, found as
// ../shared/fixtures/sd-tiny from the module root.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := findDir()
	if err != nil {
		t.Fatalf("testfixtures: %v", err)
	}
	return dir
}

func findDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return "", fmt.Errorf("no go.mod in %s or any folder above it", wd)
		}
		root = parent
	}
	dir := filepath.Join(root, filepath.FromSlash(fixtureRel))
	st, err := os.Stat(filepath.Join(dir, "README.md"))
	if err != nil || st.IsDir() {
		return "", fmt.Errorf("sd-tiny fixtures missing: expected %s (module root %s + %s) with a README.md",
			dir, root, fixtureRel)
	}
	return dir, nil
}

// Path returns the absolute path of rel inside the fixture folder and fails
// the test when it does not exist.
func Path(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Dir(t), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testfixtures: fixture %s: %v", rel, err)
	}
	return p
}

// GoldenFile is an open golden safetensors file.
type GoldenFile struct {
	t    testing.TB
	f    *safetensors.File
	path string
}

// Golden opens golden/<file>.safetensors of the fixture folder; file may
// also be an absolute path or a path with a .safetensors suffix relative to
// the fixture folder. The file is closed when the test ends.
func Golden(t testing.TB, file string) *GoldenFile {
	t.Helper()
	var p string
	switch {
	case filepath.IsAbs(file):
		p = file
	case filepath.Ext(file) == ".safetensors":
		p = filepath.Join(Dir(t), filepath.FromSlash(file))
	default:
		p = filepath.Join(Dir(t), "golden", filepath.FromSlash(file)+".safetensors")
	}
	f, err := safetensors.Open(p)
	if err != nil {
		t.Fatalf("testfixtures: golden %s: %v", file, err)
	}
	t.Cleanup(func() { f.Close() })
	return &GoldenFile{t: t, f: f, path: p}
}

// File returns the underlying safetensors file.
func (g *GoldenFile) File() *safetensors.File { return g.f }

// Tensor returns tensor name as float32 with its shape; it fails the test
// when the tensor is missing or not convertible.
func (g *GoldenFile) Tensor(name string) ([]float32, []int) {
	g.t.Helper()
	if _, ok := g.f.Info(name); !ok {
		g.t.Fatalf("testfixtures: golden %s has no tensor %q (it has %v)", g.path, name, g.f.Names())
	}
	v, shape, err := g.f.Float32(name)
	if err != nil {
		g.t.Fatalf("testfixtures: %v", err)
	}
	return v, shape
}

// MaxRelErr returns the largest relative error of got against want, where
// component i's error is |got_i - want_i| / max(|want_i|, 0.1*rms(want)).
// The floor keeps near-zero components, whose float32 rounding relative to
// their own size is arbitrary, from dominating: without it a component of
// 1e-6 in a tensor of scale 1 fails on rounding alone. A NaN or Inf in got,
// or a length mismatch, gives +Inf.
func MaxRelErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	e, _ := maxRelErr(got, want)
	return e
}

// maxRelErr is MaxRelErr with the index of the worst component.
func maxRelErr(got, want []float32) (float64, int) {
	floor := 0.1 * rms(want)
	worst, at := 0.0, -1
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return math.Inf(1), i
		}
		den := math.Max(math.Abs(w), floor)
		var e float64
		switch {
		case g == w:
			e = 0
		case den == 0:
			e = math.Inf(1)
		default:
			e = math.Abs(g-w) / den
		}
		if e > worst || at < 0 {
			worst, at = e, i
		}
	}
	return worst, at
}

func rms(v []float32) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s / float64(len(v)))
}

// AssertClose fails the test when got and want differ in length, got holds a
// NaN or Inf, or MaxRelErr(got, want) exceeds rtol.
func AssertClose(t testing.TB, what string, got, want []float32, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d values, want %d", what, len(got), len(want))
		return
	}
	for i, g := range got {
		if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
			t.Errorf("%s: got[%d] = %v (want %v)", what, i, g, want[i])
			return
		}
	}
	e, i := maxRelErr(got, want)
	if e > rtol {
		t.Errorf("%s: max relative error %.3g > rtol %.3g at index %d: got %v, want %v",
			what, e, rtol, i, got[i], want[i])
	}
}
