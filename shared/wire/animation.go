package wire

import (
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/latentfarm/latentfarm/diffusion/interp"
)

// Animation defaults and limits.
const (
	DefaultFPS = 12
	MaxFPS     = 60
	// MinAnimationFrames is two keys and nothing between them.
	MinAnimationFrames = 2
	// Embedding interpolations between keys.
	EmbeddingsLerp  = "lerp"
	EmbeddingsSlerp = "slerp"
)

// Task kinds beyond the job kinds: the task that assembles an animation's
// frames into its GIF and MP4 once they are all rendered.
const TaskKindAssemble = "assemble"

// Blend makes a frame an in-between of two keyframes: the frame's own
// prompt and seed are the key before it (T = 0), Blend's the key after it
// (T = 1). T is already eased.
type Blend struct {
	Prompt         string  `json:"prompt"`
	NegativePrompt string  `json:"negative_prompt,omitempty"`
	Seed           int64   `json:"seed"`
	T              float64 `json:"t"`
	// Slerp interpolates the text embeddings spherically instead of linearly.
	Slerp bool `json:"slerp,omitempty"`
}

// Assembly is what an assemble task builds: the animation of frames
// 0..Frames-1 of its job at FPS, as a GIF at GIFKey and, when MP4 is set
// (the coordinator saw a node with ffmpeg), an MP4 at MP4Key.
type Assembly struct {
	Frames int    `json:"frames"`
	FPS    int    `json:"fps"`
	GIFKey string `json:"gif_key"`
	MP4Key string `json:"mp4_key"`
	MP4    bool   `json:"mp4"`
}

// AssembleTaskID is the id of job's assemble task.
func AssembleTaskID(job string) string { return job + "-assemble" }

// Output files of an animation, stored beside its frames.
const (
	AnimationGIF = "animation.gif"
	AnimationMP4 = "animation.mp4"
)

// OutputTypes are the content types of the output files.
var OutputTypes = map[string]string{AnimationGIF: "image/gif", AnimationMP4: "video/mp4"}

// OutputKey is the S3 key of an output file of job (AnimationGIF, ...).
func OutputKey(job, name string) string { return JobObjectsPrefix(job) + name }

// CapabilityFFmpeg is advertised by nodes that can encode MP4.
const CapabilityFFmpeg = "ffmpeg"

func (s *JobSpec) normalizeAnimation() {
	if s.FPS == 0 {
		s.FPS = DefaultFPS
	}
	if s.Easing == "" {
		s.Easing = interp.EaseLinear
	}
	if s.Embeddings == "" {
		s.Embeddings = EmbeddingsLerp
	}
}

// validateAnimation checks the fields of an animation spec; batch fields
// must be absent.
func (s *JobSpec) validateAnimation(fe *FieldErrors) {
	if len(s.Prompts) > 0 || s.PromptsFile != "" {
		fe.add("prompts", "an animation takes its prompts from keyframes")
	}
	if !s.Seeds.IsZero() {
		fe.add("seeds", "an animation takes its seeds from keyframes")
	}
	if s.ImagesPerPrompt != 0 {
		fe.add("images_per_prompt", "an animation has one image per frame; use frames")
	}
	if s.InitImage != "" || s.Mask != "" || s.Outpaint != nil || s.Strength != 0 {
		fe.add("init_image", "image inputs are not supported in animations")
	}
	if s.Frames < MinAnimationFrames || s.Frames > MaxAnimationFrames {
		fe.add("frames", "%d outside %d..%d", s.Frames, MinAnimationFrames, MaxAnimationFrames)
	}
	if s.FPS < 1 || s.FPS > MaxFPS {
		fe.add("fps", "%d outside 1..%d", s.FPS, MaxFPS)
	}
	if _, err := interp.Ease(s.Easing, 0); err != nil {
		fe.add("easing", "unknown easing %q (want one of %v)", s.Easing, interp.Easings())
	}
	if s.Embeddings != EmbeddingsLerp && s.Embeddings != EmbeddingsSlerp {
		fe.add("embeddings", "unknown interpolation %q (want lerp or slerp)", s.Embeddings)
	}
	s.validateKeyframes(fe)
}

func (s *JobSpec) validateKeyframes(fe *FieldErrors) {
	ks := s.Keyframes
	if len(ks) < 2 {
		fe.add("keyframes", "an animation needs at least 2 keyframes, got %d", len(ks))
	}
	for i, k := range ks {
		field := fmt.Sprintf("keyframes[%d]", i)
		switch {
		case k.Frame < 0 || (s.Frames >= MinAnimationFrames && k.Frame >= s.Frames):
			fe.add(field+".frame", "%d outside 0..%d", k.Frame, max(s.Frames-1, 0))
		case i > 0 && k.Frame <= ks[i-1].Frame:
			fe.add(field+".frame", "%d does not come after keyframes[%d] at %d: keys must be in frame order", k.Frame, i-1, ks[i-1].Frame)
		}
		checkPrompt(fe, field+".prompt", k.Prompt, true)
		checkPrompt(fe, field+".negative_prompt", k.NegativePrompt, false)
		if k.Seed < 0 || k.Seed > MaxSeed {
			fe.add(field+".seed", "seed %d outside 0..%d", k.Seed, int64(MaxSeed))
		}
		if k.CFGScale != nil {
			checkCFG(fe, field+".cfg_scale", *k.CFGScale)
		}
	}
	if len(ks) == 0 {
		return
	}
	if ks[0].Frame != 0 {
		fe.add("keyframes[0].frame", "the first key must be at frame 0, not %d", ks[0].Frame)
	}
	if last := ks[len(ks)-1].Frame; s.Frames >= MinAnimationFrames && last != s.Frames-1 {
		fe.add(fmt.Sprintf("keyframes[%d].frame", len(ks)-1), "the last key must be at the last frame, %d, not %d", s.Frames-1, last)
	}
}

// checkPrompt adds a problem with prompt p of field, if any.
func checkPrompt(fe *FieldErrors, field, p string, required bool) {
	switch {
	case p == "" && required:
		fe.add(field, "empty prompt")
	case len(p) > MaxPromptBytes:
		fe.add(field, "longer than %d bytes", MaxPromptBytes)
	case !utf8.ValidString(p):
		fe.add(field, "not valid UTF-8")
	}
}

// animationFrame returns frame index of a normalized, valid animation spec:
// on a key, that key's prompt and seed (exactly its txt2img render);
// between keys, the key before with a Blend towards the key after.
func (s *JobSpec) animationFrame(job string, index int) Frame {
	ks := s.Keyframes
	// j is the first key after index (keys are sorted; the last is at the
	// last frame).
	j := sort.Search(len(ks), func(j int) bool { return ks[j].Frame > index })
	a := ks[j-1]
	f := Frame{Index: index, Prompt: a.Prompt, NegativePrompt: s.keyNegative(a), Seed: a.Seed, Key: FrameKey(job, index)}
	if a.Frame == index {
		if a.CFGScale != nil {
			f.CFGScale = a.CFGScale
		}
		return f
	}
	b := ks[j]
	t := float64(index-a.Frame) / float64(b.Frame-a.Frame)
	eased, _ := interp.Ease(s.Easing, t)
	f.Blend = &Blend{Prompt: b.Prompt, NegativePrompt: s.keyNegative(b), Seed: b.Seed, T: eased,
		Slerp: s.Embeddings == EmbeddingsSlerp}
	if a.CFGScale != nil || b.CFGScale != nil {
		ca, cb := s.keyCFG(a), s.keyCFG(b)
		c := ca + (cb-ca)*eased
		f.CFGScale = &c
	}
	return f
}

func (s *JobSpec) keyNegative(k Keyframe) string {
	if k.NegativePrompt != "" {
		return k.NegativePrompt
	}
	return s.NegativePrompt
}

func (s *JobSpec) keyCFG(k Keyframe) float64 {
	if k.CFGScale != nil {
		return *k.CFGScale
	}
	return s.CFG()
}

// frameLevel orders an animation's frames coarse to fine: keys first, then
// every 8th frame, every 4th, every 2nd, and the rest.
func (s *JobSpec) frameLevel(index int, keys map[int]bool) int {
	switch {
	case keys[index]:
		return 0
	case index%8 == 0:
		return 1
	case index%4 == 0:
		return 2
	case index%2 == 0:
		return 3
	}
	return 4
}

// assembleTask is the task that builds the animation once every frame is
// rendered; it is the last task of an animation job.
func (s *JobSpec) assembleTask(job string, class Class) Task {
	return Task{
		ID: AssembleTaskID(job), JobID: job, Kind: TaskKindAssemble, Attempt: 1,
		Model: s.Model, ModelFamily: s.ModelFamily, Precision: s.Precision, Backend: s.Backend,
		Class: class, Priority: s.Priority, Width: s.Width, Height: s.Height,
		Assemble: &Assembly{Frames: s.Frames, FPS: s.FPS,
			GIFKey: OutputKey(job, AnimationGIF), MP4Key: OutputKey(job, AnimationMP4)},
	}
}
