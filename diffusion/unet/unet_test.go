package unet

import (
	"os"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// loadFixtureUNet builds the UNet of a fixture model folder (model/unet or
// model-v/unet) from its config.json and the given weights file.
func loadFixtureUNet(t *testing.T, b backend.Backend, dir, weights string) *UNet {
	t.Helper()
	raw, err := os.ReadFile(testfixtures.Path(t, dir+"/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatalf("ParseConfig(%s): %v", dir, err)
	}
	u, err := New(cfg, testfixtures.LoadWeights(t, b, dir+"/"+weights))
	if err != nil {
		t.Fatalf("New(%s): %v", dir, err)
	}
	return u
}

// goldenInput uploads a golden tensor to b.
func goldenInput(b backend.Backend, g *testfixtures.GoldenFile, name string) *backend.Tensor {
	v, shape := g.Tensor(name)
	return b.FromFloat32(v, shape...)
}

func goldenTimesteps(g *testfixtures.GoldenFile, name string) []float64 {
	v, _ := g.Tensor(name)
	ts := make([]float64, len(v))
	for i, x := range v {
		ts[i] = float64(x)
	}
	return ts
}

// checkGolden compares a forward on the golden inputs named by suffix
// ("" or "_nonsquare") with the golden output.
func checkGolden(t *testing.T, b backend.Backend, u *UNet, g *testfixtures.GoldenFile, suffix, want string, rtol float64) {
	t.Helper()
	x := goldenInput(b, g, "in_sample"+suffix)
	ctx := goldenInput(b, g, "in_encoder_hidden_states"+suffix)
	out := u.Forward(b, x, goldenTimesteps(g, "in_timesteps"+suffix), ctx)
	wantV, wantShape := g.Tensor(want)
	if !equalInts(out.Shape(), wantShape) {
		t.Fatalf("%s: output shape %v, want %v", want, out.Shape(), wantShape)
	}
	testfixtures.AssertClose(t, want, b.ToFloat32(out), wantV, rtol)
}

func equalInts(a, b []int) bool {
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

func TestUNet_Forward_Golden(t *testing.T) {
	b := newStrictBackend(t)
	u := loadFixtureUNet(t, b, "model/unet", "diffusion_pytorch_model.safetensors")
	g := testfixtures.Golden(t, "unet")
	t.Run("square", func(t *testing.T) { checkGolden(t, b, u, g, "", "out_sample", 1e-4) })
	t.Run("nonsquare_fractional_timestep", func(t *testing.T) {
		checkGolden(t, b, u, g, "_nonsquare", "out_sample_nonsquare", 1e-4)
	})
}

func TestUNet_Intermediates_Golden(t *testing.T) {
	b := cpu.New()
	u := loadFixtureUNet(t, b, "model/unet", "diffusion_pytorch_model.safetensors")
	g := testfixtures.Golden(t, "unet")
	ts := goldenTimesteps(g, "in_timesteps")

	feats := TimestepFeatures(ts, u.featDim, u.cfg.FlipSinToCos, u.cfg.FreqShift)
	want, _ := g.Tensor("dbg_time_proj")
	// Tighter than the rest: torch's float32 exp is reproduced, so only
	// sin/cos rounding (an ulp) remains.
	testfixtures.AssertClose(t, "dbg_time_proj", feats, want, 1e-6)

	emb := u.embedTime(b, ts, len(ts))
	want, _ = g.Tensor("dbg_time_embedding")
	testfixtures.AssertClose(t, "dbg_time_embedding", b.ToFloat32(emb), want, 1e-4)

	h := u.convIn.Forward(b, goldenInput(b, g, "in_sample"))
	want, _ = g.Tensor("dbg_conv_in")
	testfixtures.AssertClose(t, "dbg_conv_in", b.ToFloat32(h), want, 1e-4)
}

func TestUNet_VPrediction_Golden(t *testing.T) {
	b := newStrictBackend(t)
	u := loadFixtureUNet(t, b, "model-v/unet", "diffusion_pytorch_model.safetensors")
	if !u.cfg.UseLinearProjection || !u.cfg.UpcastAttention || u.cfg.Heads(0) != 2 || u.cfg.Heads(1) != 4 {
		t.Fatalf("model-v config parsed as %+v", u.cfg)
	}
	g := testfixtures.Golden(t, "v_unet")
	t.Run("square", func(t *testing.T) { checkGolden(t, b, u, g, "", "out_sample", 1e-4) })
	t.Run("nonsquare_fractional_timestep", func(t *testing.T) {
		checkGolden(t, b, u, g, "_nonsquare", "out_sample_nonsquare", 1e-4)
	})
	t.Run("down0_attention", func(t *testing.T) {
		ts := goldenTimesteps(g, "in_timesteps")
		emb := u.embedTime(b, ts, len(ts))
		temb := b.Activate(emb, backend.SiLU)
		h := u.convIn.Forward(b, goldenInput(b, g, "in_sample"))
		attnIn := u.down[0].resnets[0].forward(b, h, temb)
		want, _ := g.Tensor("dbg_down0_attn_input")
		testfixtures.AssertClose(t, "dbg_down0_attn_input", b.ToFloat32(attnIn), want, 1e-4)

		// Feed the golden input so each stage is judged on its own.
		in := goldenInput(b, g, "dbg_down0_attn_input")
		tr := u.down[0].attns[0]
		proj := tr.projectIn(b, in)
		want, _ = g.Tensor("dbg_down0_proj_in_output")
		testfixtures.AssertClose(t, "dbg_down0_proj_in_output", b.ToFloat32(proj), want, 1e-4)
		out := tr.forward(b, in, goldenInput(b, g, "in_encoder_hidden_states"))
		want, _ = g.Tensor("dbg_down0_attn_output")
		testfixtures.AssertClose(t, "dbg_down0_attn_output", b.ToFloat32(out), want, 1e-4)
	})
}

func TestUNet_FP16Weights_Golden(t *testing.T) {
	b := cpu.New()
	u := loadFixtureUNet(t, b, "model/unet", "diffusion_pytorch_model.fp16.safetensors")
	in := testfixtures.Golden(t, "unet")
	x := goldenInput(b, in, "in_sample")
	ctx := goldenInput(b, in, "in_encoder_hidden_states")
	out := u.Forward(b, x, goldenTimesteps(in, "in_timesteps"), ctx)
	want, _ := testfixtures.Golden(t, "fp16_weights").Tensor("unet_out_sample")
	testfixtures.AssertClose(t, "unet_out_sample (fp16 weights)", b.ToFloat32(out), want, 1e-3)
	// The fp16 copy must really differ from the f32 model, or this test
	// would not be exercising the f16 path (README: max|diff| 0.00117).
	f32, _ := in.Tensor("out_sample")
	if testfixtures.MaxRelErr(b.ToFloat32(out), f32) == 0 {
		t.Errorf("fp16-weight output equals the f32-weight golden exactly; the fp16 file was not used")
	}
}

func TestUNet_Forward_BroadcastTimestep(t *testing.T) {
	b := cpu.New()
	u := loadFixtureUNet(t, b, "model/unet", "diffusion_pytorch_model.safetensors")
	g := testfixtures.Golden(t, "unet")
	x := goldenInput(b, g, "in_sample")
	ctx := goldenInput(b, g, "in_encoder_hidden_states")
	one := b.ToFloat32(u.Forward(b, x, []float64{500}, ctx))
	both := b.ToFloat32(u.Forward(b, x, []float64{500, 500}, ctx))
	testfixtures.AssertClose(t, "one timestep broadcast vs repeated", one, both, 0)
	// Item 1 of the golden batch ran at t=500: it must match exactly that half.
	want, _ := g.Tensor("out_sample")
	half := len(want) / 2
	testfixtures.AssertClose(t, "item 1 at t=500", one[half:], want[half:], 1e-4)
}

func TestUNet_Forward_OddSize(t *testing.T) {
	// 9x7 latents do not halve evenly: the up path must resize to the skip
	// connections' sizes (diffusers' upsample_size) instead of failing.
	b := newStrictBackend(t)
	u := loadFixtureUNet(t, b, "model/unet", "diffusion_pytorch_model.safetensors")
	x := b.FromFloat32(make([]float32, 4*9*7), 1, 4, 9, 7)
	ctx := b.FromFloat32(make([]float32, 77*32), 1, 77, 32)
	out := u.Forward(b, x, []float64{10}, ctx)
	if !equalInts(out.Shape(), []int{1, 4, 9, 7}) {
		t.Fatalf("output shape %v, want [1 4 9 7]", out.Shape())
	}
}

func TestUNet_Forward_BadInputsPanic(t *testing.T) {
	b := cpu.New()
	u := loadFixtureUNet(t, b, "model/unet", "diffusion_pytorch_model.safetensors")
	x := b.Zeros(2, 4, 8, 8)
	ctx := b.Zeros(2, 77, 32)
	cases := map[string]func(){
		"channels":  func() { u.Forward(b, b.Zeros(2, 3, 8, 8), []float64{1}, ctx) },
		"timesteps": func() { u.Forward(b, x, []float64{1, 2, 3}, ctx) },
		"context":   func() { u.Forward(b, x, []float64{1}, b.Zeros(2, 77, 16)) },
		"batch":     func() { u.Forward(b, x, []float64{1}, b.Zeros(1, 77, 32)) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Forward did not panic")
				}
			}()
			f()
		})
	}
}
