package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/pflag"
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
			if worst := renderLevels(t, args, out, tc.golden); worst > 1 {
				t.Errorf("image differs from the golden by up to %d levels, want at most 1", worst)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
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

// goldenLevels decodes a PNG and returns the largest difference, in 8-bit
// levels, from the golden's image_uint8_nhwc.
func goldenLevels(t *testing.T, r io.Reader, golden string) int {
	t.Helper()
	img, err := png.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	want, shape := testfixtures.Golden(t, golden).Tensor("image_uint8_nhwc")
	h, w := shape[1], shape[2]
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("image is %dx%d, the golden %dx%d", b.Dx(), b.Dy(), w, h)
	}
	worst := 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			for ch, v := range []uint32{r >> 8, g >> 8, b >> 8} {
				d := int(v) - int(want[(y*w+x)*3+ch])
				worst = max(worst, d, -d)
			}
		}
	}
	return worst
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
		{append(base, "--steps", "many"), `invalid argument "many" for "--steps" flag`},
		{append(base, "--batch", "0"), "--batch 0: must be at least 1"},
		{append(base, "--schedule", "exponential"), `--schedule "exponential": want default, karras or ays`},
		{append(base, "extra"), `unexpected arguments ["extra"]`},
	} {
		err := execute(context.Background(), append([]string{"render"}, tc.args...)...)
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

// TestRender_ImageModesReproduceGoldens runs img2img and inpainting from the
// command line: given the seed and the settings of the reference run (and
// no size: it comes from the init image), the CLI reproduces its 8-bit image.
func TestRender_ImageModesReproduceGoldens(t *testing.T) {
	fix := testfixtures.Dir(t)
	img2img := []string{"--model", filepath.Join(fix, "model"), "--prompt", "a fantasy landscape, trending on artstation",
		"--init-image", filepath.Join(fix, "golden", "img2img_init_image.png"), "--strength", "0.6", "--seed", "1634"}
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"img2img_euler", append([]string{"--sampler", "euler"}, img2img...)},
		{"img2img_ddim", append([]string{"--sampler", "ddim"}, img2img...)},
		{"inpaint_euler", []string{"--model", filepath.Join(fix, "model-inpaint"), "--prompt", "a red park bench under a tree",
			"--init-image", filepath.Join(fix, "golden", "inpaint_image.png"), "--mask", filepath.Join(fix, "golden", "inpaint_mask.png"),
			"--sampler", "euler", "--seed", "1734"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.png")
			args := append([]string{"render", "--negative-prompt", "", "--steps", "10", "--cfg-scale", "7.5",
				"--output", out, "--quiet"}, tc.args...)
			worst := renderLevels(t, args, out, tc.golden)
			t.Logf("%s: worst difference %d levels", tc.golden, worst)
			if worst > 1 {
				t.Errorf("image differs from the golden by up to %d levels, want at most 1", worst)
			}
		})
	}
}

// TestRender_Outpaint checks that the output size defaults to the init
// image's plus the padding.
func TestRender_Outpaint(t *testing.T) {
	fix := testfixtures.Dir(t)
	out := filepath.Join(t.TempDir(), "wide.png")
	args := []string{"render", "--model", filepath.Join(fix, "model"), "--prompt", "a wide landscape", "--steps", "2",
		"--init-image", filepath.Join(fix, "golden", "img2img_init_image.png"), "--outpaint", "8,0,16,8", "--output", out, "--quiet"}
	mustRun(t, args)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != 40 || cfg.Height != 24 {
		t.Errorf("image is %dx%d, want 16x16 grown by 8,0,16,8: 40x24", cfg.Width, cfg.Height)
	}
}

// TestRender_BadImageInputs checks that bad image inputs stop farm render
// before it loads a model, with a message that says what is wrong: a file
// that cannot be used exits 1, flags that cannot be used exit 2.
func TestRender_BadImageInputs(t *testing.T) {
	fix := testfixtures.Dir(t)
	dir := t.TempDir()
	good := filepath.Join(fix, "golden", "img2img_init_image.png")
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated, text, small, odd := filepath.Join(dir, "cut.png"), filepath.Join(dir, "notes.png"), filepath.Join(dir, "small.png"), filepath.Join(dir, "odd.png")
	writeFiles(t, map[string][]byte{truncated: data[:len(data)/2], text: []byte("this is not an image\n")})
	writeGray(t, small, 8, 8)
	writeGray(t, odd, 12, 16)
	out := filepath.Join(dir, "x.png")
	base := []string{"--model", filepath.Join(fix, "model"), "--prompt", "x", "--output", out, "--quiet"}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--init-image", truncated}, 1, "--init-image: media: " + truncated + ": truncated or corrupt PNG: unexpected EOF"},
		{[]string{"--init-image", text}, 1, "--init-image: media: " + text + `: not a PNG or JPEG image (starts with "this is n...")`},
		{[]string{"--init-image", good, "--mask", small}, 1, "--mask " + small + ": mask is 8x8 but the image is 16x16; a mask must have the image's size"},
		{[]string{"--init-image", odd}, 1, "--init-image " + odd + " is 12x16: its sides must be multiples of 8"},
		{[]string{"--init-image", filepath.Join(dir, "missing.png")}, 1, "--init-image: media: open " + filepath.Join(dir, "missing.png") + ": no such file or directory"},
		{[]string{"--init-image", good, "--outpaint", "5,0,0,0"}, 2, `--outpaint "5,0,0,0": left 5 is not a multiple of 8`},
		{[]string{"--init-image", good, "--outpaint", "8,8"}, 2, `--outpaint: "8,8": want LEFT,TOP,RIGHT,BOTTOM in pixels`},
		{[]string{"--init-image", good, "--outpaint", "0,0,0,0"}, 2, "it extends no side"},
		{[]string{"--mask", small, "--strength", "0.5"}, 2, "--mask needs --init-image; --strength needs --init-image"},
		{[]string{"--init-image", good, "--strength", "1.5"}, 2, "--strength 1.5: must be in (0, 1]"},
		{[]string{"--init-image", good, "--width", "20"}, 2, "--width 20: must be a multiple of 8 (or 0 for the init image's size plus --outpaint)"},
		{[]string{"--init-image", good, "--width", "24"}, 2, "--width 24: the output is the init image's 16x16, 16x16 (leave out --width and --height)"},
		{[]string{"--init-image", good, "--outpaint", "8,0,8,0", "--width", "32", "--height", "8"}, 2,
			"--height 8: the output is the init image's 16x16 grown by --outpaint, 32x16"},
	} {
		args := append(append([]string{}, base...), tc.args...)
		err := execute(context.Background(), append([]string{"render"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("farm render %s: error %v, want one containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
		if code := run(append([]string{"render"}, args...)); code != tc.code {
			t.Errorf("farm render %s: exit code %d, want %d", strings.Join(tc.args, " "), code, tc.code)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("farm render %s wrote an image", strings.Join(tc.args, " "))
		}
	}
}

func writeFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	for p, data := range files {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeGray writes a black w x h PNG.
func writeGray(t *testing.T, path string, w, h int) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, map[string][]byte{path: buf.Bytes()})
}

// TestRender_Spec renders a job spec from the command line: frames and
// manifest in the output folder, the model found by name in --models.
func TestRender_Spec(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "job.yaml")
	writeFiles(t, map[string][]byte{spec: []byte("model: model\nprompts: [a lighthouse]\nseeds: {start: 5, count: 2}\nwidth: 16\nheight: 16\nsteps: 2\n")})
	out := filepath.Join(dir, "out")
	mustRun(t, []string{"render", "--spec", spec, "--output", out, "--models", testfixtures.Dir(t), "--quiet"})
	data, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man wire.Manifest
	if err := json.Unmarshal(data, &man); err != nil {
		t.Fatal(err)
	}
	if man.State != wire.JobDone || len(man.Frames) != 2 || man.Frames[1].Seed != 6 {
		t.Errorf("manifest: state %s, frames %+v; want done, seeds 5 and 6", man.State, man.Frames)
	}
	for _, f := range []string{"frames/000000.png", "frames/000001.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestRender_SpecBadFlags(t *testing.T) {
	dir := t.TempDir()
	bad, good := filepath.Join(dir, "bad.yaml"), filepath.Join(dir, "good.yaml")
	writeFiles(t, map[string][]byte{bad: []byte("model: model\nprompts: [a]\nwidth: 20\nsteps: 900\n"),
		good: []byte("model: sd15\nprompts: [a]\n")})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--spec", bad}, 2, "--output is required (the folder to write)"},
		{[]string{"--spec", bad, "--output", dir, "--prompt", "x", "--seed", "3"}, 2, "--prompt: not with --spec (set it in the spec); --seed: not with --spec"},
		{[]string{"--spec", bad, "--output", dir, "--model", "m", "--models", "d"}, 2, "give --model PATH or --models DIR, not both"},
		{[]string{"--spec", bad, "--output", dir, "--from-png", "x.png"}, 2, "--from-png: not with --spec (set it in the spec)"},
		{[]string{"--model", "m", "--prompt", "x", "--output", "x.png", "--models", "d"}, 2, "--models names a folder of models for --spec"},
		{[]string{"--spec", bad, "--output", dir, "--models", testfixtures.Dir(t)}, 1,
			bad + ": the job was refused (2 problems):\n  width: 20 is not a multiple of 8\n  steps: 900 outside 1..150"},
		{[]string{"--spec", filepath.Join(dir, "missing.yaml"), "--output", dir}, 1, "no such file or directory"},
		{[]string{"--spec", good, "--output", dir, "--models", dir}, 1, `model "sd15" is not in ` + dir +
			" (as a folder sd15 or a file sd15.safetensors): give the folder that holds it with --models DIR, or another model's path with --model PATH"},
	} {
		err := execute(context.Background(), append([]string{"render"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("farm render %s: error %v, want one containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
		if code := run(append([]string{"render", "--quiet"}, tc.args...)); code != tc.code {
			t.Errorf("farm render %s: exit code %d, want %d", strings.Join(tc.args, " "), code, tc.code)
		}
	}
}

// TestRender_DefaultsAreTheJobSpecs: farm render with no sampling flags
// asks the engine for what a job spec without them asks the farm for, so
// one seed gives one image either way.
func TestRender_DefaultsAreTheJobSpecs(t *testing.T) {
	fs := pflag.NewFlagSet("render", pflag.ContinueOnError)
	var rf renderFlags
	rf.register(newSettings(fs))
	if err := fs.Parse([]string{"--prompt", "x", "--model", "m", "--output", "x.png"}); err != nil {
		t.Fatal(err)
	}
	req, problems := rf.request(fs.Args())
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	spec := wire.JobSpec{Model: "m", Prompts: []string{"x"}}
	spec.Normalize()
	got := [4]any{req.Sampler, req.Schedule, req.Steps, req.CFGScale}
	want := [4]any{spec.Sampler, spec.Schedule, spec.Steps, spec.CFG()}
	if got != want {
		t.Errorf("farm render defaults %v, a job spec's %v", got, want)
	}
}

// renderLevels runs farm with args, which write the PNG out, and returns
// how many 8-bit levels it is off the golden image at most.
func renderLevels(t *testing.T, args []string, out, golden string) int {
	t.Helper()
	mustRun(t, args)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return goldenLevels(t, f, golden)
}

// TestRender_FromPNGSamePixels renders an image, then renders it again from
// the settings it carries: the same pixels and the same parameters text.
// A flag given with --from-png wins over the image's setting.
func TestRender_FromPNGSamePixels(t *testing.T) {
	model := filepath.Join(testfixtures.Dir(t), "model")
	dir := t.TempDir()
	first, again, other := filepath.Join(dir, "first.png"), filepath.Join(dir, "again.png"), filepath.Join(dir, "other.png")
	args := []string{"render", "--model", model, "--prompt", `a red fox, "oil": 1.2`, "--negative-prompt", "blurry, low quality",
		"--width", "16", "--height", "24", "--steps", "4", "--cfg-scale", "6.5", "--sampler", "dpmpp_2m", "--schedule", "karras",
		"--clip-skip", "1", "--seed", "77", "--output", first, "--quiet"}
	mustRun(t, args)
	mustRun(t, []string{"render", "--model", model, "--from-png", first, "--output", again, "--quiet"})
	if !samePixels(t, first, again) {
		t.Error("the image rendered from the PNG's settings differs from the PNG")
	}
	text, textAgain := pngParameters(t, first), pngParameters(t, again)
	if text != textAgain {
		t.Errorf("parameters\n%q\nrendered again as\n%q", text, textAgain)
	}
	mustRun(t, []string{"render", "--model", model, "--from-png", first, "--seed", "78", "--steps", "3", "--output", other, "--quiet"})
	want := strings.Replace(strings.Replace(text, "Seed: 77", "Seed: 78", 1), "Steps: 4", "Steps: 3", 1)
	if got := pngParameters(t, other); got != want {
		t.Errorf("with --seed 78 --steps 3:\n%q\nwant\n%q", got, want)
	}
}

// pngFilled are the flags --from-png fills.
type pngFilled struct {
	prompt, negative, sampler, schedule string
	steps, width, height, clipSkip      int
	cfg, strength                       float64
	seed                                uint64
}

// TestRender_FromPNGFlags checks which flags --from-png fills from a
// parameters text, the webui's included, and what it refuses.
func TestRender_FromPNGFlags(t *testing.T) {
	dir := t.TempDir()
	webui := filepath.Join(dir, "webui.png")
	writePNG(t, webui, webuiText)
	sde := filepath.Join(dir, "sde.png")
	writePNG(t, sde, "a fox\nSteps: 20, Sampler: DPM++ SDE, Schedule type: Karras, CFG scale: 7, Seed: 3, Size: 64x64, Model: x")
	noSettings := filepath.Join(dir, "prompt.png")
	writePNG(t, noSettings, "just a prompt")
	initImage := filepath.Join(testfixtures.Dir(t), "golden", "img2img_init_image.png")
	base := []string{"--model", "m", "--output", "x.png"}
	for _, tc := range []struct {
		name string
		args []string
		want pngFilled // zero for an error
		err  string
	}{
		{"webui", []string{"--from-png", webui}, pngFilled{prompt: "a lighthouse at dusk, oil painting, <lora:add_detail:0.6>",
			negative: "(worst quality, low quality:1.4)", steps: 12, sampler: "dpmpp_2m", schedule: "karras", cfg: 6.5, seed: 2736491823,
			width: 16, height: 24, clipSkip: 1}, ""},
		{"flags win", []string{"--from-png", webui, "--prompt", "a castle", "--seed", "5", "--schedule", "default", "--width", "32", "--clip-skip", "0"},
			pngFilled{prompt: "a castle", negative: "(worst quality, low quality:1.4)", steps: 12, sampler: "dpmpp_2m", schedule: "default",
				cfg: 6.5, seed: 5, width: 32, height: 24}, ""},
		{"with an init image", []string{"--from-png", webui, "--init-image", initImage}, pngFilled{prompt: "a lighthouse at dusk, oil painting, <lora:add_detail:0.6>",
			negative: "(worst quality, low quality:1.4)", steps: 12, sampler: "dpmpp_2m", schedule: "karras", cfg: 6.5, seed: 2736491823,
			clipSkip: 1, strength: 0.45}, ""},
		{"unknown sampler", []string{"--from-png", sde}, pngFilled{}, `Sampler "DPM++ SDE": farm has no such sampler (it has Euler, Euler a, DDIM, DPM++ 2M) (give --sampler)`},
		{"unknown sampler replaced", []string{"--from-png", sde, "--sampler", "euler"}, pngFilled{prompt: "a fox", steps: 20, sampler: "euler",
			schedule: "karras", cfg: 7, seed: 3, width: 64, height: 64}, ""},
		{"no settings", []string{"--from-png", noSettings}, pngFilled{}, "no settings line"},
		{"missing", []string{"--from-png", filepath.Join(dir, "missing.png")}, pngFilled{}, "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			quietStderr(t)
			fs := pflag.NewFlagSet("render", pflag.ContinueOnError)
			var rf renderFlags
			rf.register(newSettings(fs))
			if err := fs.Parse(append(slices.Clone(base), tc.args...)); err != nil {
				t.Fatal(err)
			}
			err := rf.applyPNG(fs)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := pngFilled{prompt: rf.prompt, negative: rf.negative, steps: rf.steps, sampler: rf.sampler, schedule: rf.schedule,
				cfg: rf.cfg, seed: rf.seed, width: rf.width, height: rf.height, clipSkip: rf.clipSkip, strength: rf.strength}
			if got != tc.want {
				t.Errorf("flags\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
	// Without --model it says which model the image was made with.
	quietStderr(t)
	err := execute(context.Background(), "render", "--from-png", webui, "--output", "x.png")
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--model is required: "+webui+" was made with model v1-5-pruned-emaonly (hash 6ce0161689)") {
		t.Errorf("without --model: %v", err)
	}
}

// pngParameters returns the parameters text of the PNG at path.
func pngParameters(t *testing.T, path string) string {
	t.Helper()
	text, err := readParameters(path)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// samePixels reports whether two PNG files hold the same image.
func samePixels(t *testing.T, a, b string) bool {
	t.Helper()
	var imgs [2]image.Image
	for i, path := range []string{a, b} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		imgs[i], err = png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if imgs[0].Bounds() != imgs[1].Bounds() {
		return false
	}
	r := imgs[0].Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if imgs[0].At(x, y) != imgs[1].At(x, y) {
				return false
			}
		}
	}
	return true
}

// mustRun runs farm with args and fails the test unless it exits 0.
func mustRun(t *testing.T, args []string) {
	t.Helper()
	if code := run(args); code != 0 {
		t.Fatalf("farm %s: exit code %d", strings.Join(args, " "), code)
	}
}
