package testfixtures

import (
	"path/filepath"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// LoadWeights reads every floating-point tensor of the safetensors file at
// path (absolute, or relative to the fixture folder) onto b with
// nn.LoadSafetensors; it fails the test on any error.
func LoadWeights(t testing.TB, b backend.Backend, path string) nn.TensorMap {
	t.Helper()
	p := path
	if !filepath.IsAbs(p) {
		p = Path(t, path)
	}
	m, err := nn.LoadSafetensors(b, p)
	if err != nil {
		t.Fatalf("testfixtures: weights %s: %v", path, err)
	}
	return m
}
