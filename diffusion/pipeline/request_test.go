package pipeline

import (
	"context"
	"image"
	"math"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
)

func TestRequest_ValidateImages(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 16, 16))
	odd := image.NewNRGBA(image.Rect(0, 0, 12, 16))
	small := image.NewGray(image.Rect(0, 0, 8, 16))
	ok := Request{Steps: 10, InitImage: img}
	for _, tc := range []struct {
		name string
		edit func(r *Request)
		want string
	}{
		{"StrengthNegative", func(r *Request) { r.Strength = -0.1 }, "strength -0.1: must be in (0, 1]"},
		{"StrengthAboveOne", func(r *Request) { r.Strength = 1.5 }, "strength 1.5: must be in (0, 1]"},
		{"StrengthNaN", func(r *Request) { r.Strength = math.NaN() }, "strength NaN"},
		{"StrengthWithoutImage", func(r *Request) { r.InitImage, r.Width, r.Height, r.Strength = nil, 16, 16, 0.5 }, "strength 0.5: needs an init image"},
		{"MaskWithoutImage", func(r *Request) { r.InitImage, r.Width, r.Height, r.Mask = nil, 16, 16, img }, "a mask needs an init image"},
		{"OutpaintWithoutImage", func(r *Request) { r.InitImage, r.Width, r.Height, r.Outpaint = nil, 16, 16, Padding{Left: 8} }, "outpainting needs an init image"},
		{"OutpaintNegative", func(r *Request) { r.Outpaint.Top = -8 }, "outpaint top -8: must be a multiple of 8"},
		{"OutpaintNotMultiple", func(r *Request) { r.Outpaint.Right = 4 }, "outpaint right 4: must be a multiple of 8"},
		{"MaskSize", func(r *Request) { r.Mask = small }, "mask is 8x16, init image 16x16"},
		{"SizeMismatch", func(r *Request) { r.Width = 32 }, "size 32x0: the init image is 16x16 and outpainting adds 0x0, so the output is 16x16"},
		{"SizeMismatchOutpaint", func(r *Request) { r.Outpaint.Left, r.Width, r.Height = 8, 16, 16 }, "so the output is 24x16"},
		{"ImageNotMultiple", func(r *Request) { r.InitImage = odd }, "size 12x16: width and height must be positive multiples of 8"},
		{"InterpTNaN", func(r *Request) {
			r.InitImage, r.Width, r.Height, r.Interp = nil, 16, 16, &Interpolation{T: math.NaN()}
		}, "interpolation weight NaN: must be in [0, 1]"},
		{"InterpTAboveOne", func(r *Request) { r.InitImage, r.Width, r.Height, r.Interp = nil, 16, 16, &Interpolation{T: 1.5} }, "interpolation weight 1.5"},
		{"InterpTNegative", func(r *Request) { r.InitImage, r.Width, r.Height, r.Interp = nil, 16, 16, &Interpolation{T: -0.5} }, "interpolation weight -0.5"},
		{"InterpWithImage", func(r *Request) { r.Interp = &Interpolation{T: 0.5} }, "interpolation with image inputs is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			tc.edit(&req)
			err := req.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	for _, good := range []Request{
		ok,
		{Steps: 10, InitImage: img, Width: 16, Height: 16, Strength: 1},
		{Steps: 10, InitImage: img, Mask: image.NewGray(image.Rect(4, 4, 20, 20))}, // any origin
		{Steps: 10, InitImage: img, Outpaint: Padding{Left: 8, Bottom: 16}, Width: 24, Height: 32},
		{Steps: 10, Width: 16, Height: 16, Interp: &Interpolation{T: 1}},
	} {
		if err := good.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", good, err)
		}
	}
}

func TestRequest_DefaultsImage(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 16, 24))
	for _, tc := range []struct {
		name         string
		req          Request
		w, h         int
		wantStrength float64
	}{
		{"Img2Img", Request{InitImage: img}, 16, 24, 0.75},
		{"Inpaint", Request{InitImage: img, Mask: img}, 16, 24, 1},
		{"Outpaint", Request{InitImage: img, Outpaint: Padding{Left: 8, Right: 16, Top: 8}}, 40, 32, 1},
		{"Kept", Request{InitImage: img, Strength: 0.3}, 16, 24, 0.3},
		{"TextToImage", Request{}, 512, 512, 0},
	} {
		got := tc.req.Defaults()
		if got.Width != tc.w || got.Height != tc.h || got.Strength != tc.wantStrength {
			t.Errorf("%s: Defaults = %dx%d strength %v, want %dx%d strength %v", tc.name,
				got.Width, got.Height, got.Strength, tc.w, tc.h, tc.wantStrength)
		}
	}
}

func TestGenerate_ModeErrors(t *testing.T) {
	ctx := context.Background()
	img := image.NewNRGBA(image.Rect(0, 0, 16, 16))
	inpaintModel := New(cpu.New(), loadModel(t, "model-inpaint"))
	_, err := inpaintModel.Generate(ctx, Request{Prompt: "x", Width: 16, Height: 16, Steps: 2}, nil)
	if err == nil || !strings.Contains(err.Error(), "inpainting model (9-channel UNet): it needs an init image") {
		t.Errorf("text-to-image on an inpainting model: %v", err)
	}
	// img2img on an inpainting model repaints the whole image.
	res, err := inpaintModel.Generate(ctx, Request{Prompt: "x", Steps: 4, CFGScale: 7.5, InitImage: img, Strength: 0.5}, nil)
	if err != nil || res.Image.Rect.Dx() != 16 {
		t.Errorf("img2img on an inpainting model: %v", err)
	}
	p := New(cpu.New(), loadModel(t, "model"))
	_, err = p.Generate(ctx, Request{Prompt: "x", Steps: 10, InitImage: img, Strength: 0.05}, nil)
	if err == nil || !strings.Contains(err.Error(), "strength 0.05 with 10 steps runs no step") {
		t.Errorf("strength below one step: %v", err)
	}
}

// TestGenerate_Img2ImgSamplers runs img2img with every sampler: the result
// is deterministic, and a lower strength stays closer to the init image's
// latents than strength 1.
func TestGenerate_Img2ImgSamplers(t *testing.T) {
	p := New(cpu.New(), loadModel(t, "model"))
	init := loadPNG(t, "golden/img2img_init_image.png")
	for _, sampler := range []string{"euler", "euler_a", "ddim", "dpmpp_2m"} {
		render := func(strength float64) *Result {
			res, err := p.Generate(context.Background(), Request{Prompt: "a fantasy landscape", Steps: 10,
				CFGScale: 7.5, Sampler: sampler, Seed: 9, InitImage: init, Strength: strength}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		low, again, full := render(0.3), render(0.3), render(1)
		if !sameRender(low, again) {
			t.Errorf("%s: img2img is not deterministic", sampler)
		}
		want := initLatents(t, p, low.Request)
		dLow, dFull := rmsDiff(low.Latents, want), rmsDiff(full.Latents, want)
		t.Logf("%s: rms distance to the init latents %.3g at strength 0.3, %.3g at 1", sampler, dLow, dFull)
		if !(dLow < dFull/2) {
			t.Errorf("%s: strength 0.3 ends %.3g from the init latents, strength 1 %.3g: want under half", sampler, dLow, dFull)
		}
	}
}

func rmsDiff(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return math.Sqrt(s / float64(len(a)))
}
