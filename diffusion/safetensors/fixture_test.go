package safetensors_test

import (
	"math"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/safetensors"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

func TestOpen_FixtureUNetF16MatchesF32(t *testing.T) {
	dir := testfixtures.Path(t, "model/unet")
	f32, err := safetensors.Open(filepath.Join(dir, "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f32.Close()
	f16, err := safetensors.Open(filepath.Join(dir, "diffusion_pytorch_model.fp16.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f16.Close()
	if !reflect.DeepEqual(f32.Names(), f16.Names()) {
		t.Fatalf("tensor names differ: %d in f32, %d in f16", len(f32.Names()), len(f16.Names()))
	}
	if len(f32.Names()) < 50 {
		t.Fatalf("only %d tensors in the UNet", len(f32.Names()))
	}
	for _, name := range f32.Names() {
		i32, _ := f32.Info(name)
		i16, _ := f16.Info(name)
		if i32.DType != safetensors.F32 || i16.DType != safetensors.F16 {
			t.Fatalf("%s: dtypes %s and %s, want F32 and F16", name, i32.DType, i16.DType)
		}
		a, sa, err := f32.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		b, sb, err := f16.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sa, sb) || len(a) != len(b) || len(a) != i32.NumElements() {
			t.Fatalf("%s: shapes %v and %v, %d and %d values", name, sa, sb, len(a), len(b))
		}
		for i := range a {
			// The f16 file holds the f32 weights rounded to nearest even.
			if got, want := safetensors.Float32ToFloat16(a[i]), safetensors.Float32ToFloat16(b[i]); got != want || safetensors.Float16ToFloat32(want) != b[i] {
				t.Fatalf("%s[%d]: f32 %g rounds to f16 %#04x, f16 file holds %g", name, i, a[i], got, b[i])
			}
			if d := math.Abs(float64(a[i] - b[i])); d > math.Max(math.Abs(float64(a[i]))*(1.0/2048), 1.0/(1<<25)) {
				t.Fatalf("%s[%d]: f32 %g vs f16 %g beyond f16 precision", name, i, a[i], b[i])
			}
		}
	}
	if md := f32.Metadata(); md["format"] != "pt" {
		t.Errorf("metadata %v, want format=pt", md)
	}
}
