package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"image/gif"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// animationSpec is a 48-frame animation between two keys of the sd-tiny
// fixture model, as a user would write it.
func animationSpec(t *testing.T, steps int) wire.JobSpec {
	t.Helper()
	s, err := wire.ParseJobSpec([]byte(`
kind: animation
name: walk
model: model
model_family: tiny
width: 16
height: 16
cfg_scale: 5
sampler: euler
frames: 48
fps: 12
easing: smooth
frames_per_task: 4
keyframes:
  - {frame: 0,  prompt: "a photo of a cat", seed: 11}
  - {frame: 47, prompt: "a photo of a dog", seed: 22}
`))
	if err != nil {
		t.Fatal(err)
	}
	s.Steps = steps
	return s
}

// TestFarm_AnimationOn3Nodes renders a 48-frame animation on three engine
// nodes, SIGKILLs one of them in the middle of a chunk, and checks that
// every frame lands exactly once, that the keyframes are the plain renders
// of their prompt and seed, and that the assembled GIF (and MP4 where
// ffmpeg is installed) holds all 48 frames.
func TestFarm_AnimationOn3Nodes(t *testing.T) {
	fixtures := testfixtures.Dir(t)
	f := newFarm(t)
	c := f.startCoordinator(t)
	child := f.startChild(t, childSpec{ID: "doomed", Renderer: node.RendererEngine, ModelsDir: fixtures})
	for _, id := range []string{"steady1", "steady2"} {
		o := f.nodeOptions(t, id, 8, 0)
		o.RendererName, o.ModelsDir = node.RendererEngine, fixtures
		if id == "steady2" {
			o.FFmpeg = node.FFmpegNone
		}
		f.startNode(t, o)
	}
	spec := animationSpec(t, 40) // about 0.3 s a frame: a chunk of 4 outlives the kill below
	st, err := c.cli.Submit(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.FramesTotal != 48 || st.TasksTotal != 13 {
		t.Fatalf("accepted with %d frames in %d tasks, want 48 in 12 chunks and the assembly", st.FramesTotal, st.TasksTotal)
	}
	victim := f.currentTask(t, "doomed")
	time.Sleep(300 * time.Millisecond)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	final := waitJob(t, c.cli, st.ID, 180*time.Second)
	if final.State != wire.JobDone || final.FramesDone != 48 {
		t.Fatalf("job ended %s with %d/48 frames: %s", final.State, final.FramesDone, final.Error)
	}
	m := f.checkComplete(t, st.ID, 48)
	if mt := f.manifestTask(t, st.ID, victim); mt.State != wire.TaskDone || mt.Node == "doomed" || mt.Attempt < 2 {
		t.Errorf("killed chunk %s: %+v; want done elsewhere on attempt 2 or later", victim, mt)
	}

	// 48 distinct frames.
	frames := make([][]byte, 48)
	seen := map[[32]byte]int{}
	for i := range frames {
		frames[i] = f.object(t, wire.FrameKey(st.ID, i))
		sum := sha256.Sum256(frames[i])
		if j, dup := seen[sum]; dup {
			t.Errorf("frames %d and %d are identical", j, i)
		}
		seen[sum] = i
	}

	// The keyframes are the txt2img renders of their prompt and seed, as
	// `farm render` gives them (the CLI tests tie it to this pipeline call).
	model, err := checkpoint.Load(cpu.New(), filepath.Join(fixtures, "model"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	model.Name = "model"
	p := pipeline.New(cpu.New(), model)
	for _, k := range spec.Keyframes {
		want, err := p.TextToImage(context.Background(), pipeline.Request{Prompt: k.Prompt, Width: 16, Height: 16,
			Steps: spec.Steps, CFGScale: spec.CFG(), Sampler: spec.Sampler, Seed: uint64(k.Seed)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wantPNG bytes.Buffer
		if err := pipeline.EncodePNG(&wantPNG, want.Image, ""); err != nil {
			t.Fatal(err)
		}
		if d := maxLevelDiff(t, frames[k.Frame], wantPNG.Bytes()); d > 1 {
			t.Errorf("frame %d differs from a plain render of %q seed %d by %d levels", k.Frame, k.Prompt, k.Seed, d)
		}
	}

	// The assembled animation.
	outputs := map[string]wire.OutputFile{}
	for _, o := range m.Outputs {
		outputs[o.Name] = o
	}
	g, err := gif.DecodeAll(bytes.NewReader(f.object(t, outputs[wire.AnimationGIF].Key)))
	if err != nil {
		t.Fatalf("animation.gif: %v (outputs %+v)", err, m.Outputs)
	}
	if len(g.Image) != 48 {
		t.Errorf("the GIF has %d frames, want 48", len(g.Image))
	}
	if media.FFmpeg() == "" {
		t.Logf("ffmpeg is not installed: no MP4 expected; notes: %v", m.Notes)
		return
	}
	mp4, ok := outputs[wire.AnimationMP4]
	if !ok {
		t.Fatalf("no MP4 although node steady1 has ffmpeg; outputs %+v, notes %v", m.Outputs, m.Notes)
	}
	if data := f.object(t, mp4.Key); len(data) < 12 || string(data[4:8]) != "ftyp" {
		t.Errorf("animation.mp4 is not an MP4 (%d bytes)", len(data))
	}
}
