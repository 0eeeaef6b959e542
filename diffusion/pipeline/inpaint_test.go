package pipeline

import (
	"context"
	"image/color"
	"math"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// TestInpaint_Preprocessing checks the image and mask preprocessing against
// the tensors diffusers fed its inpainting loop.
func TestInpaint_Preprocessing(t *testing.T) {
	m := loadModel(t, "model-inpaint")
	p := New(cpu.New(), m)
	g := testfixtures.Golden(t, "inpaint_euler")
	req := Request{InitImage: loadPNG(t, "golden/inpaint_image.png"), Mask: loadPNG(t, "golden/inpaint_mask.png"), Steps: 10}.Defaults()
	canvas, mask := p.canvas(req)
	img := p.imageTensor(canvas)
	for _, c := range []struct {
		name string
		got  []float32
	}{
		{"init_image", p.b.ToFloat32(img)},
		{"mask_condition", mask},
		{"masked_image", p.b.ToFloat32(p.maskedImage(img, mask))},
		{"mask_latents", downsampleMask(mask, &run{req: req, shape: []int{1, 4, 8, 8}}, 1)},
	} {
		want, _ := g.Tensor(c.name)
		testfixtures.AssertClose(t, c.name, c.got, want, 0)
	}
}

// TestLuma_PIL checks the mask's gray level against PIL's convert("L")
// fixed point, including colours where (299R+587G+114B)/1000 truncated
// would land on the other side of the 0.5 threshold.
func TestLuma_PIL(t *testing.T) {
	for _, c := range []struct {
		in   color.Color
		want uint8
	}{
		{color.NRGBA{255, 255, 255, 255}, 255},
		{color.NRGBA{0, 0, 0, 255}, 0},
		{color.NRGBA{255, 0, 0, 255}, 76},
		{color.NRGBA{0, 255, 0, 255}, 150},
		{color.NRGBA{0, 0, 255, 255}, 29},
		{color.NRGBA{0, 218, 0, 0}, 128}, // 587*218/1000 = 127.966 truncates to 127; alpha ignored
		{color.Gray{Y: 127}, 127},
	} {
		if got := luma(c.in); got != c.want {
			t.Errorf("luma(%v) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestInpaintUNet_Golden runs the 9-channel UNet of model-inpaint once.
func TestInpaintUNet_Golden(t *testing.T) {
	m := loadModel(t, "model-inpaint")
	b := cpu.New()
	g := testfixtures.Golden(t, "inpaint_unet")
	x, xs := g.Tensor("in_sample")
	ts, _ := g.Tensor("in_timesteps")
	ctxv, cs := g.Tensor("in_encoder_hidden_states")
	want, _ := g.Tensor("out_sample")
	out := m.UNet.Forward(b, b.FromFloat32(x, xs...), []float64{float64(ts[0]), float64(ts[1])}, b.FromFloat32(ctxv, cs...))
	got := b.ToFloat32(out)
	t.Logf("inpaint_unet out_sample: max relative error %.3g", testfixtures.MaxRelErr(got, want))
	testfixtures.AssertClose(t, "out_sample", got, want, 1e-4)
}

// TestGenerate_BlendedInpaint inpaints with the 4-channel model/: after the
// last step the latents outside the mask must be the init image's latents
// exactly, and the masked area must have been repainted.
func TestGenerate_BlendedInpaint(t *testing.T) {
	m := loadModel(t, "model")
	init, maskImg := loadPNG(t, "golden/inpaint_image.png"), loadPNG(t, "golden/inpaint_mask.png")
	for _, sampler := range []string{"euler", "euler_a", "ddim", "dpmpp_2m"} {
		for _, strength := range []float64{1, 0.5} {
			p := New(cpu.New(), m)
			req := Request{Prompt: "a red park bench under a tree", Steps: 6, CFGScale: 7.5, Sampler: sampler,
				Seed: 11, InitImage: init, Mask: maskImg, Strength: strength}
			res, err := p.Generate(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := initLatents(t, p, res.Request)
			mask := downsampleMask(binariseMask(maskImg), &run{req: res.Request, shape: []int{1, 4, 8, 8}}, 4)
			kept, changed := 0, 0.0
			for i, mv := range mask {
				if mv == 0 {
					kept++
					if res.Latents[i] != want[i] {
						t.Fatalf("%s strength %v: latent %d outside the mask = %v, want the init latent %v", sampler, strength, i, res.Latents[i], want[i])
					}
				} else {
					changed = math.Max(changed, math.Abs(float64(res.Latents[i]-want[i])))
				}
			}
			if kept == 0 || kept == len(mask) {
				t.Fatalf("mask keeps %d of %d latents", kept, len(mask))
			}
			if changed < 0.1 {
				t.Errorf("%s strength %v: the masked latents moved by at most %.3g from the init latents", sampler, strength, changed)
			}
		}
	}
}

// initLatents is the posterior sample of the request's canvas with the
// first draw of its seed: the latents blended inpainting keeps outside the
// mask (diffusers draws it first for a 4-channel UNet).
func initLatents(t *testing.T, p *Pipeline, req Request) []float32 {
	t.Helper()
	r, err := p.newRun(req)
	if err != nil {
		t.Fatal(err)
	}
	canvas, _ := p.canvas(req)
	return p.b.ToFloat32(p.encodeSample(p.imageTensor(canvas), r))
}
