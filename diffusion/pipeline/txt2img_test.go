package pipeline

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// goldenRuns are the reference txt2img loops of the fixtures: the sampler
// and schedule behind each file, the model folder and the generator seed
// its initial noise came from (fixture seed 1234 + 300, or + 600 for the
// v-prediction model).
var goldenRuns = []struct {
	file, model, sampler, schedule string
	seed                           uint64
	clipSkip                       int
}{
	{"txt2img_euler", "model", "euler", "default", 1534, 0},
	{"txt2img_euler_a", "model", "euler_a", "default", 1534, 0},
	{"txt2img_ddim", "model", "ddim", "default", 1534, 0},
	{"txt2img_dpmpp_2m", "model", "dpmpp_2m", "default", 1534, 0},
	{"txt2img_dpmpp_2m_karras", "model", "dpmpp_2m", "karras", 1534, 0},
	{"txt2img_euler_karras", "model", "euler", "karras", 1534, 0},
	{"txt2img_v_euler", "model-v", "euler", "default", 1834, 0},
	{"txt2img_v_ddim", "model-v", "ddim", "default", 1834, 0},
	{"txt2img_v_euler_clip_skip1", "model-v", "euler", "default", 1834, 1},
}

func TestTextToImage_Golden(t *testing.T) {
	dir := testfixtures.Dir(t)
	b := cpu.New()
	models := map[string]*checkpoint.Model{}
	for _, run := range goldenRuns {
		t.Run(run.file, func(t *testing.T) {
			m := models[run.model]
			if m == nil {
				var err error
				if m, err = checkpoint.Load(b, filepath.Join(dir, run.model), checkpoint.Options{}); err != nil {
					t.Fatal(err)
				}
				models[run.model] = m
			}
			steps := 0
			res, err := New(b, m).TextToImage(context.Background(), Request{
				Prompt: "a photo of an astronaut riding a horse on mars", Width: 16, Height: 16,
				Steps: 10, CFGScale: 7.5, Sampler: run.sampler, Schedule: run.schedule,
				Seed: run.seed, ClipSkip: run.clipSkip,
			}, func(step, total int) { steps = step })
			if err != nil {
				t.Fatal(err)
			}
			if steps != 10 {
				t.Errorf("progress reached step %d, want 10", steps)
			}
			g := testfixtures.Golden(t, run.file)
			want, _ := g.Tensor("latents")
			t.Logf("latents: max relative error %.3g", testfixtures.MaxRelErr(res.Latents, want))
			testfixtures.AssertClose(t, "latents", res.Latents, want, 1e-3)
			want8, _ := g.Tensor("image_uint8_nhwc")
			assertImageWithin(t, res, want8, 1)
		})
	}
}

// assertImageWithin compares the 8-bit image with golden NHWC values.
func assertImageWithin(t *testing.T, res *Result, want []float32, levels int) {
	t.Helper()
	img := res.Image
	w, h := img.Rect.Dx(), img.Rect.Dy()
	if len(want) != w*h*3 {
		t.Fatalf("image is %dx%d, golden has %d values", w, h, len(want))
	}
	worst := 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := img.NRGBAAt(x, y)
			for ch, v := range []uint8{c.R, c.G, c.B} {
				d := int(v) - int(want[(y*w+x)*3+ch])
				worst = max(worst, d, -d)
			}
		}
	}
	t.Logf("8-bit image: max difference %d levels", worst)
	if worst > levels {
		t.Errorf("8-bit image differs by up to %d levels, want at most %d", worst, levels)
	}
}

func TestTextToImage_Cancel(t *testing.T) {
	b := cpu.New()
	m, err := checkpoint.Load(b, filepath.Join(testfixtures.Dir(t), "model"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = New(b, m).TextToImage(ctx, Request{Prompt: "x", Width: 16, Height: 16, Steps: 10, CFGScale: 7.5},
		func(step, total int) {
			if step == 3 {
				cancel()
			}
		})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestRequest_Validate(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Width: 17, Height: 16, Steps: 10}, "pipeline: size 17x16: width and height must be positive multiples of 8"},
		{Request{Width: 16, Height: 16, Steps: 0}, "pipeline: steps 0: must be between 1 and 1000"},
		{Request{Width: 16, Height: 16, Steps: 1, CFGScale: -1}, "pipeline: cfg scale -1: must be 0 or more"},
		{Request{Width: 16, Height: 16, Steps: 1, ClipSkip: -1}, "pipeline: clip skip -1: must be 0 or more"},
	} {
		err := tc.req.Validate()
		if err == nil || err.Error() != tc.want {
			t.Errorf("Validate(%+v) = %v, want %q", tc.req, err, tc.want)
		}
	}
}

func TestEncodePNG_ParametersChunk(t *testing.T) {
	b := cpu.New()
	m, err := checkpoint.Load(b, filepath.Join(testfixtures.Dir(t), "model"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := New(b, m).TextToImage(context.Background(), Request{Prompt: "x", Width: 16, Height: 16, Steps: 2, CFGScale: 7.5, Seed: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	params := Parameters(res.Request, m.Name, m.Hash)
	if err := EncodePNG(&buf, res.Image, params); err != nil {
		t.Fatal(err)
	}
	texts, err := ReadPNGText(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if texts["parameters"] != params {
		t.Fatalf("parameters chunk = %q, want %q", texts["parameters"], params)
	}
}
