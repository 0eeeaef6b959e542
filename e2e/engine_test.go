package e2e

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"path/filepath"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// TestFarm_EngineFramesMatchDirectRender renders a 4-image job of the sd-tiny
// fixture model through the whole farm and checks that every frame is the
// very PNG a direct pipeline render of the same request gives.
func TestFarm_EngineFramesMatchDirectRender(t *testing.T) {
	fixtures := testfixtures.Dir(t)
	const model = "model" // the fixture's diffusers folder, found by name in ModelsDir
	f := newFarm(t)
	c := f.startCoordinator(t)
	o := f.nodeOptions(t, "engine0", 8, 0)
	o.RendererName, o.ModelsDir = node.RendererEngine, fixtures
	f.startNode(t, o)

	spec := wire.JobSpec{Model: model, ModelFamily: wire.FamilyTiny, Prompts: []string{"a red cube", "a blue ball"},
		Seeds: wire.SeedRange(42, 2), Width: 16, Height: 16, Steps: 3, CFGScale: wire.GuidanceScale(5), Sampler: wire.SamplerEuler,
		FramesPerTask: 2}
	st, err := c.cli.Submit(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	final := waitJob(t, c.cli, st.ID, 90*time.Second)
	if final.State != wire.JobDone || final.FramesDone != 4 {
		t.Fatalf("job ended %s with %d/4 frames: %s", final.State, final.FramesDone, final.Error)
	}
	man := f.checkComplete(t, st.ID, 4)

	m, err := checkpoint.Load(cpu.New(), filepath.Join(fixtures, model), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Name = model
	p := pipeline.New(cpu.New(), m)
	s := man.Spec
	for _, fr := range man.Frames {
		want, err := p.TextToImage(context.Background(), pipeline.Request{
			Prompt: fr.Prompt, NegativePrompt: s.NegativePrompt, Width: s.Width, Height: s.Height, Steps: s.Steps,
			CFGScale: s.CFG(), Sampler: s.Sampler, Schedule: s.Schedule, Seed: uint64(fr.Seed), ClipSkip: s.ClipSkip,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wantPNG bytes.Buffer
		if err := pipeline.EncodePNG(&wantPNG, want.Image, pipeline.Parameters(want.Request, m.Name, m.Hash)); err != nil {
			t.Fatal(err)
		}
		got := f.object(t, fr.Key)
		if !bytes.Equal(got, wantPNG.Bytes()) {
			t.Errorf("frame %d (%q, seed %d) differs from a direct render: %d vs %d bytes; %s",
				fr.Index, fr.Prompt, fr.Seed, len(got), wantPNG.Len(), pixelDiff(t, got, wantPNG.Bytes()))
		}
	}
	// Different seeds and prompts give different images.
	if bytes.Equal(f.object(t, man.Frames[0].Key), f.object(t, man.Frames[1].Key)) {
		t.Error("frames 0 and 1 are identical")
	}
}

// pixelDiff says whether two PNGs differ in pixels or only in their bytes.
func pixelDiff(t testing.TB, a, b []byte) string {
	t.Helper()
	ia, err1 := png.Decode(bytes.NewReader(a))
	ib, err2 := png.Decode(bytes.NewReader(b))
	if err1 != nil || err2 != nil {
		return "not both PNGs"
	}
	if ia.Bounds() != ib.Bounds() {
		return "sizes differ"
	}
	r := ia.Bounds()
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if !samePixel(ia, ib, x, y) {
				n++
			}
		}
	}
	if n == 0 {
		return "pixels identical (metadata differs)"
	}
	return "pixels differ"
}

func samePixel(a, b image.Image, x, y int) bool {
	r1, g1, b1, a1 := a.At(x, y).RGBA()
	r2, g2, b2, a2 := b.At(x, y).RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2 && a1 == a2
}

// maxLevelDiff is the largest difference of one 8-bit channel between two
// PNGs of the same size.
func maxLevelDiff(t testing.TB, a, b []byte) int {
	t.Helper()
	ia, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	ib, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if ia.Bounds() != ib.Bounds() {
		t.Fatalf("sizes differ: %v vs %v", ia.Bounds(), ib.Bounds())
	}
	worst := 0
	r := ia.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, _ := ia.At(x, y).RGBA()
			r2, g2, b2, _ := ib.At(x, y).RGBA()
			for _, d := range []int{int(r1>>8) - int(r2>>8), int(g1>>8) - int(g2>>8), int(b1>>8) - int(b2>>8)} {
				worst = max(worst, d, -d)
			}
		}
	}
	return worst
}
