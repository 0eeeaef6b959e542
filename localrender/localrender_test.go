package localrender

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// writeSpec writes a job spec as a user would, into its own folder, and
// returns its path.
func writeSpec(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readManifest reads the manifest Run wrote into dir.
func readManifest(t *testing.T, dir string) wire.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m wire.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	return m
}

// readPNG decodes a PNG file.
func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// samePixels reports the first pixel where a and b differ, if any.
func samePixels(a, b image.Image) (image.Point, bool) {
	if a.Bounds().Size() != b.Bounds().Size() {
		return image.Point{}, false
	}
	ao, bo := a.Bounds().Min, b.Bounds().Min
	for y := 0; y < a.Bounds().Dy(); y++ {
		for x := 0; x < a.Bounds().Dx(); x++ {
			r1, g1, b1, a1 := a.At(ao.X+x, ao.Y+y).RGBA()
			r2, g2, b2, a2 := b.At(bo.X+x, bo.Y+y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				return image.Pt(x, y), false
			}
		}
	}
	return image.Point{}, true
}

// txt2img renders a plain text-to-image request with the fixture model.
func txt2img(t *testing.T, prompt string, seed uint64) image.Image {
	t.Helper()
	b := cpu.New()
	m, err := checkpoint.Load(b, filepath.Join(testfixtures.Dir(t), "model"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.New(b, m).Generate(context.Background(), pipeline.Request{
		Prompt: prompt, Width: 16, Height: 16, Steps: 4, CFGScale: wire.DefaultCFGScale,
		Sampler: wire.SamplerEuler, Schedule: wire.ScheduleDefault, Seed: seed,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Image
}

const animationSpec = `# two keys, four frames between them
kind: animation
name: cat to dog
model: model
width: 16
height: 16
steps: 4
frames: 6
fps: 6
keyframes:
  - frame: 0
    prompt: a photo of a cat
    seed: 11
  - frame: 5
    prompt: a photo of a dog
    seed: 22
`

func TestLocalRender_Animation(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	var stages []string
	man, err := Run(context.Background(), Options{Spec: writeSpec(t, animationSpec), Output: out,
		Models: testfixtures.Dir(t), Progress: func(e Event) {
			if e.Stage != wire.StageStep {
				stages = append(stages, e.Stage)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	frames := make([]image.Image, 6)
	for i := range frames {
		frames[i] = readPNG(t, filepath.Join(out, filepath.FromSlash(FrameFile(i))))
	}
	if _, ok := samePixels(frames[0], txt2img(t, "a photo of a cat", 11)); !ok {
		t.Error("frame 0 differs from a txt2img render of keyframe 0")
	}
	if _, ok := samePixels(frames[5], txt2img(t, "a photo of a dog", 22)); !ok {
		t.Error("frame 5 differs from a txt2img render of keyframe 1")
	}
	if _, ok := samePixels(frames[2], frames[0]); ok {
		t.Error("frame 2 equals frame 0: nothing was interpolated")
	}

	onDisk := readManifest(t, out)
	if onDisk.JobID != JobID || onDisk.State != wire.JobDone || onDisk.FramesTotal != 6 || len(onDisk.Frames) != 6 {
		t.Fatalf("manifest: job %q state %q, %d of %d frames; want local, done, 6 of 6",
			onDisk.JobID, onDisk.State, len(onDisk.Frames), onDisk.FramesTotal)
	}
	if len(man.Frames) != 6 || man.Spec.Kind != wire.KindAnimation || onDisk.Nodes[NodeName] != 6 {
		t.Errorf("returned manifest has %d frames, kind %q; nodes on disk %v", len(man.Frames), man.Spec.Kind, onDisk.Nodes)
	}
	for i, f := range onDisk.Frames {
		prompt, seed := "a photo of a cat", int64(11) // in-betweens carry the key before them
		if i == 5 {
			prompt, seed = "a photo of a dog", 22
		}
		if f.Index != i || f.Key != FrameFile(i) || f.Node != NodeName || f.Prompt != prompt || f.Seed != seed {
			t.Errorf("frame %d: %+v, want prompt %q seed %d", i, f, prompt, seed)
		}
	}
	if last := onDisk.Frames[5]; last.Key != "frames/000005.png" {
		t.Errorf("frame 5 key %q, want frames/000005.png", last.Key)
	}

	gf, err := os.Open(filepath.Join(out, wire.AnimationGIF))
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	g, err := gif.DecodeAll(gf)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 6 || g.Config.Width != 16 || g.Config.Height != 16 {
		t.Errorf("GIF has %d frames of %dx%d, want 6 of 16x16", len(g.Image), g.Config.Width, g.Config.Height)
	}
	checkMP4(t, out, onDisk)
	if want := "loading frame frame frame frame frame frame assemble"; !strings.HasPrefix(strings.Join(stages, " "), want) ||
		stages[len(stages)-1] != wire.StageDone {
		t.Errorf("progress stages %v, want %s ... done", stages, want)
	}
}

// checkMP4 checks the MP4 where there is an ffmpeg, and the note where not.
func checkMP4(t *testing.T, out string, man wire.Manifest) {
	t.Helper()
	var names []string
	for _, o := range man.Outputs {
		names = append(names, o.Name)
		if st, err := os.Stat(filepath.Join(out, o.Key)); err != nil || st.Size() != o.Bytes || o.Bytes == 0 {
			t.Errorf("output %+v: file %v, %v", o, st, err)
		}
	}
	want := wire.AnimationGIF + " " + wire.AnimationMP4
	if media.FFmpeg() == "" {
		want = wire.AnimationGIF
		if len(man.Notes) != 1 || !strings.Contains(man.Notes[0], "ffmpeg was not found") {
			t.Errorf("notes %q, want one saying ffmpeg was not found", man.Notes)
		}
	}
	if got := strings.Join(names, " "); got != want {
		t.Errorf("outputs %s, want %s", got, want)
	}
}

func TestLocalRender_BatchWithModelPath(t *testing.T) {
	spec := writeSpec(t, `model: not-on-disk
prompts: ["a red circle", "a blue square"]
seeds: [7, 9]
width: 16
height: 16
steps: 4
`)
	out := t.TempDir()
	man, err := Run(context.Background(), Options{Spec: spec, Output: out,
		Model: filepath.Join(testfixtures.Dir(t), "model"), Models: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if man.Spec.Model != "model" {
		t.Errorf("spec model %q, want the one rendered with: model", man.Spec.Model)
	}
	got := readManifest(t, out)
	if len(got.Frames) != 4 || got.State != wire.JobDone || len(got.Outputs) != 0 {
		t.Fatalf("manifest: %d frames, state %s, outputs %v; want 4, done, none", len(got.Frames), got.State, got.Outputs)
	}
	for i, f := range got.Frames {
		prompt, seed := []string{"a red circle", "a blue square"}[i/2], []int64{7, 9}[i%2]
		if f.Prompt != prompt || f.Seed != seed || f.Key != FrameFile(i) {
			t.Errorf("frame %d: prompt %q seed %d key %s, want %q %d %s", i, f.Prompt, f.Seed, f.Key, prompt, seed, FrameFile(i))
		}
		pf, err := os.Open(filepath.Join(out, f.Key))
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pipeline.ReadPNGText(pf)
		pf.Close()
		if err != nil || !strings.HasPrefix(texts["parameters"], prompt+"\nSteps: 4, Sampler: Euler,") {
			t.Errorf("frame %d parameters %q (%v)", i, texts["parameters"], err)
		}
	}
}

func TestLocalRender_InvalidSpec(t *testing.T) {
	fix := testfixtures.Dir(t)
	maskDir := t.TempDir()
	writeImage(t, filepath.Join(maskDir, "mask.png"), 8, 8)
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"animation", `kind: animation
model: model
frames: 200000
width: 20
keyframes:
  - {frame: 0, prompt: a, seed: 1}
  - {frame: 10, prompt: b, seed: 2}
  - {frame: 5, prompt: c, seed: 3}
`, []string{"frames", "keyframes[2].frame", "width"}},
		{"inputs", `model: model
prompts: [a]
steps: 0
sampler: heun
init_image: ` + filepath.Join(fix, "golden", "inpaint_image.png") + `
mask: ` + filepath.Join(maskDir, "mask.png") + `
`, []string{"mask", "sampler"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, err := Run(context.Background(), Options{Spec: writeSpec(t, tc.yaml), Output: out, Models: fix})
			fe, ok := wire.AsFieldErrors(err)
			if !ok {
				t.Fatalf("error %v, want field errors", err)
			}
			for _, f := range tc.want {
				if !fe.Has(f) {
					t.Errorf("no problem with %s in %v", f, fe)
				}
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output folder exists after a refused spec (%v)", err)
			}
		})
	}
}

// writeImage writes a w x h gray PNG.
func writeImage(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
}

// TestLocalRender_Img2ImgSpec renders the img2img golden from a spec whose
// init image is a path relative to the spec file, with no size given.
func TestLocalRender_Img2ImgSpec(t *testing.T) {
	spec := writeSpec(t, `model: model
prompts: ["a fantasy landscape, trending on artstation"]
seeds: [1634]
steps: 10
cfg_scale: 7.5
sampler: euler
strength: 0.6
init_image: inputs/start.png
`)
	data, err := os.ReadFile(testfixtures.Path(t, "golden/img2img_init_image.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(filepath.Dir(spec), "inputs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(spec), "inputs", "start.png"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	man, err := Run(context.Background(), Options{Spec: spec, Output: out, Models: testfixtures.Dir(t)})
	if err != nil {
		t.Fatal(err)
	}
	if man.Spec.Width != 16 || man.Spec.Height != 16 {
		t.Errorf("size %dx%d, want the init image's 16x16", man.Spec.Width, man.Spec.Height)
	}
	img := readPNG(t, filepath.Join(out, FrameFile(0)))
	want, _ := testfixtures.Golden(t, "img2img_euler").Tensor("image_uint8_nhwc")
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
	t.Logf("img2img_euler from a spec: worst difference %d levels", worst)
	if worst > 1 {
		t.Errorf("image differs from the golden by up to %d levels, want at most 1", worst)
	}
}

func TestLocalRender_ModelNotFound(t *testing.T) {
	models := t.TempDir()
	spec := writeSpec(t, "model: sd15\nprompts: [a]\nwidth: 16\nheight: 16\n")
	_, err := Run(context.Background(), Options{Spec: spec, Output: t.TempDir(), Models: models})
	if !errors.Is(err, node.ErrModelNotFound) || !strings.Contains(err.Error(), `model "sd15" is not in `+models) {
		t.Errorf("error %v, want one naming the model and the folder", err)
	}
}

// TestLocalRender_Cancelled stops a batch after its first frame: the
// manifest records what was done and the run says it was cancelled.
func TestLocalRender_Cancelled(t *testing.T) {
	spec := writeSpec(t, "model: model\nprompts: [a, b, c]\nwidth: 16\nheight: 16\nsteps: 2\n")
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	man, err := Run(ctx, Options{Spec: spec, Output: out, Models: testfixtures.Dir(t), Progress: func(e Event) {
		if e.Stage == wire.StageFrame {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	got := readManifest(t, out)
	if got.State != wire.JobCancelled || len(got.Frames) != 1 || len(got.Failed) != 1 || got.Failed[0].Index != 1 ||
		got.Failed[0].Error.Code != wire.CodeCancelled || man.State != wire.JobCancelled {
		t.Errorf("manifest: state %s, %d frames, failed %+v; want cancelled, 1 frame, frame 1 cancelled", got.State, len(got.Frames), got.Failed)
	}
	if _, err := os.Stat(filepath.Join(out, FrameFile(1))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("frame 1 exists after the cancel (%v)", err)
	}
}

func TestLocalRender_ModelName(t *testing.T) {
	for in, want := range map[string]string{
		"/m/sd15":                      "sd15",
		"/m/v1-5-pruned.safetensors":   "v1-5-pruned",
		"/m/My Model (v2).SAFETENSORS": "My_Model__v2_",
		"/m/.hidden/":                  "model.hidden",
		"sd-tiny/model/":               "model",
	} {
		if got := ModelName(in); got != want || !wire.ValidModelName(got) {
			t.Errorf("ModelName(%q) = %q, want %q", in, got, want)
		}
	}
}
