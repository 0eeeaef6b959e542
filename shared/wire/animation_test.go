package wire

import (
	"fmt"
	"strings"
	"testing"
)

// animationSpec is the example: 48 frames between two keys.
func animationSpec(t *testing.T) JobSpec {
	t.Helper()
	s, err := ParseJobSpec([]byte(`
kind: animation
model: demo
width: 32
height: 32
steps: 20
cfg_scale: 5
sampler: euler
frames: 48
fps: 12
easing: linear
keyframes:
  - {frame: 0,  prompt: "a red circle on a blue background", seed: 11}
  - {frame: 47, prompt: "a yellow square on a green background", seed: 22}
`))
	if err != nil {
		t.Fatal(err)
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		t.Fatalf("valid animation refused: %v", err)
	}
	return s
}

func TestAnimation_FrameAt(t *testing.T) {
	s := animationSpec(t)
	if s.TotalFrames() != 48 {
		t.Fatalf("TotalFrames = %d, want 48", s.TotalFrames())
	}
	first, last := s.FrameAt("j", 0), s.FrameAt("j", 47)
	if first.Blend != nil || first.Prompt != "a red circle on a blue background" || first.Seed != 11 {
		t.Errorf("frame 0 = %+v, want keyframe 0 as a plain frame", first)
	}
	if last.Blend != nil || last.Prompt != "a yellow square on a green background" || last.Seed != 22 {
		t.Errorf("frame 47 = %+v, want keyframe 1 as a plain frame", last)
	}
	prev := 0.0
	for i := 1; i < 47; i++ {
		f := s.FrameAt("j", i)
		if f.Blend == nil || f.Seed != 11 || f.Blend.Seed != 22 || f.Key != FrameKey("j", i) {
			t.Fatalf("frame %d = %+v, want a blend from key 0 to key 1", i, f)
		}
		if want := float64(i) / 47; f.Blend.T != want {
			t.Errorf("frame %d: t = %v, want %v (linear)", i, f.Blend.T, want)
		}
		if f.Blend.T <= prev {
			t.Errorf("frame %d: t = %v does not increase", i, f.Blend.T)
		}
		prev = f.Blend.T
	}
	s.Easing = "smooth"
	if f := s.FrameAt("j", 12); f.Blend.T >= 12.0/47 {
		t.Errorf("smooth easing at frame 12: t = %v, want below linear %v", f.Blend.T, 12.0/47)
	}
}

func TestAnimation_KeyOverrides(t *testing.T) {
	s := animationSpec(t)
	c0, c1 := 2.0, 8.0
	s.Keyframes = []Keyframe{
		{Frame: 0, Prompt: "a", Seed: 1, CFGScale: &c0},
		{Frame: 10, Prompt: "b", Seed: 2, NegativePrompt: "blurry"},
		{Frame: 47, Prompt: "c", Seed: 3, CFGScale: &c1},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if f := s.FrameAt("j", 5); f.CFGScale == nil || *f.CFGScale != 2+(5-2)*0.5 || f.Blend.NegativePrompt != "blurry" || f.NegativePrompt != "" {
		t.Errorf("frame 5 = %+v (cfg %v), want cfg 3.5 and the next key's negative prompt in the blend", f, f.CFGScale)
	}
	if f := s.FrameAt("j", 10); f.Blend != nil || f.Prompt != "b" || f.NegativePrompt != "blurry" {
		t.Errorf("frame 10 = %+v, want key b", f)
	}
}

func TestAnimation_Validate(t *testing.T) {
	s := animationSpec(t)
	s.Frames = MaxAnimationFrames + 1
	s.FPS = 0
	s.Easing = "bounce"
	s.Embeddings = "nearest"
	s.Keyframes = []Keyframe{
		{Frame: 3, Prompt: "a", Seed: 1},
		{Frame: 2, Prompt: "", Seed: -1},
		{Frame: 200000, Prompt: "c", Seed: 2},
	}
	s.Prompts = []string{"x"}
	fe, ok := AsFieldErrors(s.Validate())
	if !ok {
		t.Fatal("no field errors")
	}
	for _, f := range []string{"frames", "fps", "easing", "embeddings", "prompts", "keyframes[0].frame",
		"keyframes[1].frame", "keyframes[1].prompt", "keyframes[1].seed", "keyframes[2].frame"} {
		if !fe.Has(f) {
			t.Errorf("no error for %q; got %v", f, fe)
		}
	}
	// The last key must sit on the last frame.
	s = animationSpec(t)
	s.Keyframes[1].Frame = 40
	if fe, _ := AsFieldErrors(s.Validate()); !fe.Has("keyframes[1].frame") || !strings.Contains(fe.Error(), "last frame, 47") {
		t.Errorf("key before the last frame: got %v", fe)
	}
	s = animationSpec(t)
	s.Keyframes = s.Keyframes[:1]
	if fe, _ := AsFieldErrors(s.Validate()); !fe.Has("keyframes") {
		t.Errorf("one key: got %v", fe)
	}
}

func TestAnimation_SplitCoarseToFine(t *testing.T) {
	s := animationSpec(t)
	tasks, err := Split("j", s)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 13 {
		t.Fatalf("%d tasks, want 12 chunks of 4 and the assemble task", len(tasks))
	}
	a := tasks[len(tasks)-1]
	if a.Assemble == nil || a.Kind != TaskKindAssemble || a.ID != AssembleTaskID("j") || len(a.Frames) != 0 ||
		a.Assemble.Frames != 48 || a.Assemble.FPS != 12 || a.Assemble.GIFKey != "jobs/j/animation.gif" {
		t.Fatalf("last task = %+v, want the assemble task", a)
	}
	var order []string
	seen := map[int]int{}
	for _, tk := range tasks[:12] {
		if tk.Assemble != nil {
			t.Fatal("assemble task before the frames")
		}
		order = append(order, fmt.Sprint(tk.Frames[0].Index))
		for k, f := range tk.Frames {
			seen[f.Index]++
			if k > 0 && f.Index != tk.Frames[k-1].Index+1 {
				t.Errorf("task %s: frames not consecutive", tk.ID)
			}
		}
	}
	// Keys (0 and 47) first, then chunks holding a multiple of 8, then the rest.
	want := "0 44 8 16 24 32 40 4 12 20 28 36"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("chunk order %s, want %s", got, want)
	}
	if len(seen) != 48 {
		t.Errorf("%d distinct frames, want 48", len(seen))
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("frame %d in %d tasks", i, n)
		}
	}
	again, _ := Split("j", s)
	for i := range tasks {
		if again[i].ID != tasks[i].ID {
			t.Fatalf("Split is not deterministic at %d: %s vs %s", i, again[i].ID, tasks[i].ID)
		}
	}
}

func TestInputs_Validate(t *testing.T) {
	key := InputKey(strings.Repeat("ab", 32), "png")
	if !ValidInputKey(key) || ValidInputKey("inputs/sha256-xyz.png") || ValidInputKey("/etc/passwd") {
		t.Fatal("ValidInputKey is wrong")
	}
	s := validSpec()
	s.InitImage, s.Strength = key, 1.5
	s.Outpaint = &Padding{Left: 5, Top: -8}
	s.Mask = key
	fe, _ := AsFieldErrors(s.Validate())
	for _, f := range []string{"strength", "outpaint.left", "outpaint.top", "mask"} {
		if !fe.Has(f) {
			t.Errorf("no error for %q; got %v", f, fe)
		}
	}
	s = validSpec()
	s.InitImage = "sketch.png"
	if err := s.Validate(); err != nil {
		t.Errorf("a local path is valid for a local render: %v", err)
	}
	if fe := s.InputKeyErrors(); !fe.Has("init_image") {
		t.Errorf("a local path must be refused by the coordinator: %v", fe)
	}
	s = validSpec()
	s.InitImage, s.Outpaint, s.Width, s.Height = key, &Padding{Left: 8, Right: 16}, 56, 32
	if fe := s.CheckInputSizes(32, 32, 0, 0); len(fe) > 0 {
		t.Errorf("32x32 + 8,0,16,0 = 56x32 refused: %v", fe)
	}
	if fe := s.CheckInputSizes(32, 24, 0, 0); !fe.Has("width") {
		t.Errorf("size mismatch accepted")
	}
	s.Outpaint, s.Mask, s.Width = nil, key, 32
	if fe := s.CheckInputSizes(32, 32, 16, 32); !fe.Has("mask") {
		t.Errorf("mask of another size accepted: %v", fe)
	}
}

func TestParsePadding(t *testing.T) {
	p, err := ParsePadding("8, 0,16,24")
	if err != nil || p != (Padding{8, 0, 16, 24}) {
		t.Fatalf("got %+v %v", p, err)
	}
	for _, bad := range []string{"8,0,16", "a,b,c,d", ""} {
		if _, err := ParsePadding(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
