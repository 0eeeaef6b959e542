package pipeline

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// loadModel loads a fixture model folder on the CPU backend.
func loadModel(t *testing.T, folder string) *checkpoint.Model {
	t.Helper()
	m, err := checkpoint.Load(cpu.New(), filepath.Join(testfixtures.Dir(t), folder), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// loadPNG decodes a fixture PNG.
func loadPNG(t *testing.T, rel string) image.Image {
	t.Helper()
	f, err := os.Open(testfixtures.Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return img
}

// assertGoldenRun compares a result with a golden loop's final latents
// (1e-3 relative) and 8-bit image (1 level).
func assertGoldenRun(t *testing.T, res *Result, file string) {
	t.Helper()
	g := testfixtures.Golden(t, file)
	want, _ := g.Tensor("latents")
	t.Logf("%s latents: max relative error %.3g", file, testfixtures.MaxRelErr(res.Latents, want))
	testfixtures.AssertClose(t, "latents", res.Latents, want, 1e-3)
	want8, _ := g.Tensor("image_uint8_nhwc")
	assertImageWithin(t, res, want8, 1)
}

// The img2img goldens: StableDiffusionImg2ImgPipeline with generator seed
// 1634 (fixture seed 1234 + 400), strength 0.6, 10 steps (extra_settings.json).
func TestGenerate_Img2ImgGolden(t *testing.T) {
	m := loadModel(t, "model")
	init := loadPNG(t, "golden/img2img_init_image.png")
	for _, run := range []struct{ file, sampler string }{
		{"img2img_euler", "euler"},
		{"img2img_ddim", "ddim"},
	} {
		t.Run(run.file, func(t *testing.T) {
			var steps, total int
			res, err := New(cpu.New(), m).Generate(context.Background(), Request{
				Prompt: "a fantasy landscape, trending on artstation", Steps: 10, CFGScale: 7.5,
				Sampler: run.sampler, Seed: 1634, InitImage: init, Strength: 0.6,
			}, func(step, n int) { steps, total = step, n })
			if err != nil {
				t.Fatal(err)
			}
			if steps != 6 || total != 6 {
				t.Errorf("progress ended at %d/%d, want 6/6 (strength 0.6 of 10 steps)", steps, total)
			}
			if res.Request.Width != 16 || res.Request.Height != 16 {
				t.Errorf("size %dx%d, want the init image's 16x16", res.Request.Width, res.Request.Height)
			}
			assertGoldenRun(t, res, run.file)
		})
	}
}

// The 9-channel inpainting golden: StableDiffusionInpaintPipeline on
// model-inpaint/ with generator seed 1734 (fixture seed + 500), strength 1.
func TestGenerate_InpaintGolden(t *testing.T) {
	m := loadModel(t, "model-inpaint")
	res, err := New(cpu.New(), m).Generate(context.Background(), Request{
		Prompt: "a red park bench under a tree", Steps: 10, CFGScale: 7.5, Sampler: "euler", Seed: 1734,
		InitImage: loadPNG(t, "golden/inpaint_image.png"), Mask: loadPNG(t, "golden/inpaint_mask.png"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Request.Strength != 1 {
		t.Errorf("default inpainting strength %v, want 1", res.Request.Strength)
	}
	assertGoldenRun(t, res, "inpaint_euler")
}
