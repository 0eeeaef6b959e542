package vae

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// rtol is the tolerance against the f32 goldens.
const rtol = 1e-4

// check compares got with want within tol and logs the error measured.
func check(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	t.Logf("%s: max relative error %.3g", what, testfixtures.MaxRelErr(got, want))
	testfixtures.AssertClose(t, what, got, want, tol)
}

func fixtureConfig(t *testing.T) Config {
	t.Helper()
	raw, err := os.ReadFile(testfixtures.Path(t, "model/vae/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// loadVAE builds the fixture VAE from the given weights file of model/vae.
func loadVAE(t *testing.T, b backend.Backend, file string) (*VAE, nn.TensorMap) {
	t.Helper()
	w := testfixtures.LoadWeights(t, b, "model/vae/"+file)
	v, err := New(fixtureConfig(t), w)
	if err != nil {
		t.Fatal(err)
	}
	return v, w
}

func goldenTensor(t *testing.T, b backend.Backend, g *testfixtures.GoldenFile, name string) *backend.Tensor {
	t.Helper()
	v, shape := g.Tensor(name)
	return b.FromFloat32(v, shape...)
}

func TestVAE_Decode(t *testing.T) {
	b := cpu.New()
	v, _ := loadVAE(t, b, "diffusion_pytorch_model.safetensors")
	g := testfixtures.Golden(t, "vae")
	for _, tc := range []struct{ in, out string }{
		{"in_latent", "decode"},
		{"in_latent_nonsquare", "decode_nonsquare"},
	} {
		t.Run(tc.out, func(t *testing.T) {
			z := v.UnscaleLatents(b, goldenTensor(t, b, g, tc.in))
			img := v.Decode(b, z)
			want, shape := g.Tensor(tc.out)
			if !equal(img.Shape(), shape) {
				t.Fatalf("shape %v, want %v", img.Shape(), shape)
			}
			check(t, tc.out, b.ToFloat32(img), want, rtol)
		})
	}
}

func TestVAE_Encode(t *testing.T) {
	b := cpu.New()
	v, _ := loadVAE(t, b, "diffusion_pytorch_model.safetensors")
	g := testfixtures.Golden(t, "vae")
	mean, logvar := v.Encode(b, goldenTensor(t, b, g, "in_image"))
	want, shape := g.Tensor("encode_mean")
	if !equal(mean.Shape(), shape) || !equal(logvar.Shape(), shape) {
		t.Fatalf("shapes %v, %v; want %v", mean.Shape(), logvar.Shape(), shape)
	}
	check(t, "encode_mean", b.ToFloat32(mean), want, rtol)
	lv := b.ToFloat32(logvar)
	want, _ = g.Tensor("encode_logvar")
	check(t, "encode_logvar", lv, want, rtol)
	std := make([]float32, len(lv))
	for i, x := range lv {
		std[i] = float32(math.Exp(0.5 * float64(x)))
	}
	want, _ = g.Tensor("encode_std")
	check(t, "encode_std", std, want, rtol)
}

func TestVAE_DecodeFP16Weights(t *testing.T) {
	b := cpu.New()
	v, _ := loadVAE(t, b, "diffusion_pytorch_model.fp16.safetensors")
	z := v.UnscaleLatents(b, goldenTensor(t, b, testfixtures.Golden(t, "vae"), "in_latent"))
	want, _ := testfixtures.Golden(t, "fp16_weights").Tensor("vae_decode")
	check(t, "fp16 vae_decode", b.ToFloat32(v.Decode(b, z)), want, 1e-3)
}

// Checkpoints written before diffusers 0.15 name the mid-block attention
// query, key, value and proj_attn.
func TestVAE_DeprecatedAttentionNames(t *testing.T) {
	b := cpu.New()
	_, w := loadVAE(t, b, "diffusion_pytorch_model.safetensors")
	old := nn.TensorMap{}
	renames := map[string]string{".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
	renamed := 0
	for name, t := range w {
		for from, to := range renames {
			if strings.Contains(name, ".attentions.0"+from) {
				name = strings.Replace(name, from, to, 1)
				renamed++
			}
		}
		old[name] = t
	}
	if renamed != 16 {
		t.Fatalf("renamed %d tensors, want 16", renamed)
	}
	v, err := New(fixtureConfig(t), old)
	if err != nil {
		t.Fatal(err)
	}
	g := testfixtures.Golden(t, "vae")
	img := v.Decode(b, v.UnscaleLatents(b, goldenTensor(t, b, g, "in_latent")))
	want, _ := g.Tensor("decode")
	check(t, "decode with old names", b.ToFloat32(img), want, rtol)
	mean, _ := v.Encode(b, goldenTensor(t, b, g, "in_image"))
	want, _ = g.Tensor("encode_mean")
	check(t, "encode_mean with old names", b.ToFloat32(mean), want, rtol)
}

func TestVAE_LogvarClamp(t *testing.T) {
	b := cpu.New()
	_, w := loadVAE(t, b, "diffusion_pytorch_model.safetensors")
	// A quant_conv whose log-variance rows are 0 and whose biases are
	// -100 and +100 makes the raw log-variance -100 and +100 everywhere.
	cfg := fixtureConfig(t)
	lc := cfg.LatentChannels
	wq := make([]float32, 4*lc*lc)
	bq := make([]float32, 2*lc)
	for c := range lc {
		wq[c*2*lc+c] = 1 // mean passes through
		bq[lc+c] = -100
		if c%2 == 1 {
			bq[lc+c] = 100
		}
	}
	w["quant_conv.weight"] = b.FromFloat32(wq, 2*lc, 2*lc, 1, 1)
	w["quant_conv.bias"] = b.FromFloat32(bq, 2*lc)
	v, err := New(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	_, logvar := v.Encode(b, goldenTensor(t, b, testfixtures.Golden(t, "vae"), "in_image"))
	lv := b.ToFloat32(logvar)
	per := len(lv) / lc
	for i, x := range lv {
		want := float32(-30)
		if (i/per)%2 == 1 {
			want = 20
		}
		if x != want {
			t.Fatalf("logvar[%d] = %v, want %v", i, x, want)
		}
	}
}

func TestVAE_Scaling(t *testing.T) {
	b := cpu.New()
	z := b.FromFloat32([]float32{0.5, -1, 2, 0}, 1, 4, 1, 1)
	tests := []struct {
		name         string
		scale, shift float64
		scaled       []float32
	}{
		{"SD", 0.18215, 0, []float32{0.091075, -0.18215, 0.3643, 0}},
		{"Shifted", 1.5, 0.5, []float32{0, -2.25, 2.25, -0.75}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := &VAE{cfg: Config{ScalingFactor: tc.scale, ShiftFactor: tc.shift}}
			s := v.ScaleLatents(b, z)
			check(t, "scaled", b.ToFloat32(s), tc.scaled, 1e-6)
			check(t, "round trip", b.ToFloat32(v.UnscaleLatents(b, s)), b.ToFloat32(z), 1e-6)
		})
	}
}

func TestNew_BadWeights(t *testing.T) {
	b := cpu.New()
	_, w := loadVAE(t, b, "diffusion_pytorch_model.safetensors")
	cfg := fixtureConfig(t)

	missing := nn.TensorMap{}
	for k, t := range w {
		missing[k] = t
	}
	delete(missing, "decoder.up_blocks.1.resnets.0.conv_shortcut.weight")
	if _, err := New(cfg, missing); !errors.Is(err, nn.ErrMissingWeight) || !strings.Contains(err.Error(), "conv_shortcut") {
		t.Errorf("missing shortcut: err = %v", err)
	}

	deeper := cfg
	deeper.LayersPerBlock = 2
	if _, err := New(deeper, w); !errors.Is(err, nn.ErrMissingWeight) || !strings.Contains(err.Error(), "resnets.1") {
		t.Errorf("layers_per_block 2 on a 1-layer checkpoint: err = %v", err)
	}

	wide := cfg
	wide.LatentChannels = 8
	if _, err := New(wide, w); !errors.Is(err, nn.ErrShape) {
		t.Errorf("8 latent channels on a 4-channel checkpoint: err = %v", err)
	}

	noQuant := cfg
	noQuant.UseQuantConv, noQuant.UsePostQuantConv = false, false
	v, err := New(noQuant, w)
	if err != nil || v.quant != nil || v.postQuant != nil {
		t.Errorf("without quant convs: err = %v, quant %v, post %v", err, v.quant, v.postQuant)
	}
}

func TestVAE_BadInputPanics(t *testing.T) {
	b := cpu.New()
	v, _ := loadVAE(t, b, "diffusion_pytorch_model.safetensors")
	for _, tc := range []struct {
		name string
		f    func()
		msg  string
	}{
		{"DecodeChannels", func() { v.Decode(b, b.Zeros(1, 3, 8, 8)) }, "vae: Decode: latents [1 3 8 8]"},
		{"EncodeRank", func() { v.Encode(b, b.Zeros(3, 16, 16)) }, "vae: Encode: image [3 16 16]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tc.msg) {
					t.Errorf("panic %v, want one containing %q", r, tc.msg)
				}
			}()
			tc.f()
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
