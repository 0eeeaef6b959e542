package main

import (
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// TestRender_ReproducesGoldenImages runs `farm render` as a user would and
// compares the PNG with the reference implementation's 8-bit image: the
// command line alone, with the seed, reproduces it.
func TestRender_ReproducesGoldenImages(t *testing.T) {
	fix := testfixtures.Dir(t)
	cases := []struct {
		golden string
		args   []string
	}{
		{"txt2img_euler", []string{"--model", filepath.Join(fix, "model"), "--sampler", "euler", "--seed", "1534"}},
		{"txt2img_euler_a", []string{"--model", filepath.Join(fix, "model"), "--sampler", "euler_a", "--seed", "1534"}},
		{"txt2img_ddim", []string{"--model", filepath.Join(fix, "model"), "--sampler", "ddim", "--seed", "1534"}},
		{"txt2img_dpmpp_2m_karras", []string{"--model", filepath.Join(fix, "model"), "--sampler", "dpmpp_2m", "--schedule", "karras", "--seed", "1534"}},
		{"txt2img_v_euler", []string{"--model", filepath.Join(fix, "model-v"), "--sampler", "euler", "--seed", "1834"}},
		{"txt2img_v_euler_clip_skip1", []string{"--model", filepath.Join(fix, "model-v"), "--sampler", "euler", "--seed", "1834", "--clip-skip", "1"}},
		{"txt2img_euler", []string{"--model", filepath.Join(fix, "single-file", "tiny-sd1.safetensors"), "--config", filepath.Join(fix, "model"), "--sampler", "euler", "--seed", "1534"}},
		{"txt2img_v_ddim", []string{"--model", filepath.Join(fix, "single-file", "tiny-v.safetensors"), "--config", filepath.Join(fix, "model-v"), "--sampler", "ddim", "--seed", "1834"}},
	}
	for _, tc := range cases {
		name := tc.golden + "/" + filepath.Base(tc.args[1])
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.png")
			args := append([]string{"render", "--prompt", "a photo of an astronaut riding a horse on mars",
				"--negative-prompt", "", "--steps", "10", "--cfg-scale", "7.5", "--width", "16", "--height", "16",
				"--output", out, "--quiet"}, tc.args...)
			if code := run(args); code != 0 {
				t.Fatalf("farm %s: exit code %d", strings.Join(args, " "), code)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := testfixtures.Golden(t, tc.golden).Tensor("image_uint8_nhwc")
			worst := 0
			for y := 0; y < 16; y++ {
				for x := 0; x < 16; x++ {
					r, g, b, _ := img.At(x, y).RGBA()
					for ch, v := range []uint32{r >> 8, g >> 8, b >> 8} {
						d := int(v) - int(want[(y*16+x)*3+ch])
						worst = max(worst, d, -d)
					}
				}
			}
			if worst > 1 {
				t.Errorf("image differs from the golden by up to %d levels, want at most 1", worst)
			}
			if _, err := f.Seek(0, 0); err != nil {
				t.Fatal(err)
			}
			texts, err := pipeline.ReadPNGText(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(texts["parameters"], "a photo of an astronaut riding a horse on mars\nSteps: 10, ") {
				t.Errorf("parameters chunk = %q", texts["parameters"])
			}
		})
	}
}

func TestRender_BadFlags(t *testing.T) {
	fix := testfixtures.Dir(t)
	base := []string{"--model", fix, "--prompt", "x", "--output", "x.png"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--prompt", "x", "--output", "x.png"}, "--model is required"},
		{[]string{"--model", fix}, "--prompt is required; --output is required"},
		{[]string{"--model", fix, "--prompt", "x", "--output", "x.jpg"}, `--output "x.jpg": must end in .png`},
		{append(base, "--sampler", "heun"), `--sampler "heun": want euler, euler_a, ddim or dpmpp_2m`},
		{append(base, "--width", "30"), "size 30x512: width and height must be positive multiples of 8"},
		{append(base, "--steps", "many"), `invalid value "many" for flag -steps`},
		{append(base, "--batch", "0"), "--batch 0: must be at least 1"},
		{append(base, "--schedule", "exponential"), `--schedule "exponential": want default, karras or ays`},
		{append(base, "extra"), `unexpected arguments ["extra"]`},
	} {
		err := runRender(context.Background(), tc.args)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("farm render %s: error %v, want a usage error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
		if code := run(append([]string{"render"}, tc.args...)); code != 2 {
			t.Errorf("farm render %s: exit code %d, want 2", strings.Join(tc.args, " "), code)
		}
	}
}

func TestRender_PickleRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.ckpt")
	if err := os.WriteFile(path, []byte("not really a pickle"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.png")
	if code := run([]string{"render", "--model", path, "--prompt", "x", "--output", out, "--quiet"}); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an image was written for a refused checkpoint")
	}
}
