package unet

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/safetensors"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

func fixtureConfig(t *testing.T, dir string) Config {
	t.Helper()
	raw, err := os.ReadFile(testfixtures.Path(t, dir+"/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestParams_MatchCheckpoint checks that Params lists exactly the tensors of
// the diffusers checkpoints, names and shapes.
func TestParams_MatchCheckpoint(t *testing.T) {
	for _, dir := range []string{"model/unet", "model-v/unet"} {
		t.Run(dir, func(t *testing.T) {
			ps, err := Params(fixtureConfig(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.Open(testfixtures.Path(t, dir+"/diffusion_pytorch_model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			seen := map[string]bool{}
			for _, p := range ps {
				if seen[p.Name] {
					t.Errorf("%s listed twice", p.Name)
				}
				seen[p.Name] = true
				info, ok := f.Info(p.Name)
				if !ok {
					t.Errorf("%s %v not in the checkpoint", p.Name, p.Shape)
					continue
				}
				if !equalInts(p.Shape, info.Shape) {
					t.Errorf("%s: Params shape %v, checkpoint %v", p.Name, p.Shape, info.Shape)
				}
			}
			for _, name := range f.Names() {
				if !seen[name] {
					t.Errorf("checkpoint tensor %s not in Params", name)
				}
			}
		})
	}
}

// TestNumParams_Presets compares with the published parameter counts of the
// SD1.5 and SD2.1 UNets.
func TestNumParams_Presets(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want int64
	}{
		{"SD15", SD15(), 859_520_964},
		{"SD21", SD21(), 865_910_724},
	} {
		n, err := NumParams(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if n != tc.want {
			t.Errorf("%s: %d parameters, want %d", tc.name, n, tc.want)
		}
	}
}

func TestNew_MissingAndMisshapenWeights(t *testing.T) {
	b := cpu.New()
	cfg := fixtureConfig(t, "model/unet")
	w, err := RandomWeights(b, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	const name = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"
	orig := w[name]
	delete(w, name)
	if _, err := New(cfg, w); !errors.Is(err, nn.ErrMissingWeight) || !strings.Contains(err.Error(), name) {
		t.Errorf("missing weight: err = %v", err)
	}
	w[name] = b.Zeros(orig.Dim(0), orig.Dim(1)+1)
	if _, err := New(cfg, w); !errors.Is(err, nn.ErrShape) || !strings.Contains(err.Error(), name) {
		t.Errorf("misshapen weight: err = %v", err)
	}
	w[name] = orig
	if _, err := New(cfg, w); err != nil {
		t.Errorf("restored weights: %v", err)
	}
}

func TestRandomWeights_Deterministic(t *testing.T) {
	b := cpu.New()
	cfg := fixtureConfig(t, "model/unet")
	w1, err := RandomWeights(b, cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	w2, _ := RandomWeights(b, cfg, 7)
	w3, _ := RandomWeights(b, cfg, 8)
	const name = "down_blocks.0.resnets.0.conv1.weight"
	a, a2, c := b.ToFloat32(w1[name]), b.ToFloat32(w2[name]), b.ToFloat32(w3[name])
	testfixtures.AssertClose(t, "same seed", a2, a, 0)
	if testfixtures.MaxRelErr(c, a) == 0 {
		t.Errorf("seeds 7 and 8 gave the same %s", name)
	}
	// Variance 1/fan_in: conv1 is [32, 32, 3, 3], fan_in 288.
	var s float64
	for _, v := range a {
		s += float64(v) * float64(v)
	}
	if got, want := s/float64(len(a)), 1.0/288; math.Abs(got-want) > 0.15*want {
		t.Errorf("%s: mean square %.3g, want about %.3g", name, got, want)
	}

	u, err := New(cfg, w1)
	if err != nil {
		t.Fatal(err)
	}
	x := b.FromFloat32(RandomValues(Param{Name: "x", Shape: []int{1, 4, 8, 8}}, 1), 1, 4, 8, 8)
	ctx := b.FromFloat32(RandomValues(Param{Name: "ctx", Shape: []int{1, 77, 32}}, 1), 1, 77, 32)
	out := b.ToFloat32(u.Forward(b, x, []float64{500}, ctx))
	var sq float64
	for _, v := range out {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("random-weight UNet output holds %v", v)
		}
		sq += float64(v) * float64(v)
	}
	if rms := math.Sqrt(sq / float64(len(out))); rms < 1e-3 || rms > 100 {
		t.Errorf("random-weight UNet output rms %.3g is not O(1)", rms)
	}
}
