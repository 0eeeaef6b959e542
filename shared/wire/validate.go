package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/scheduler"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// Validate checks a normalized spec and returns a FieldErrors listing every
// problem (nil when there is none). It does not stop at the first problem.
func (s *JobSpec) Validate() error {
	var fe FieldErrors
	for _, f := range s.zeros {
		fe.add(f, "0 is not a valid value; leave the field out for the default")
	}
	s.validateKind(&fe)
	s.validateModel(&fe)
	if s.Kind == KindAnimation {
		s.validateAnimation(&fe)
	} else {
		s.validatePrompts(&fe)
		s.validateSeeds(&fe)
		s.validateInputs(&fe)
	}
	s.validateImage(&fe)
	s.validateSampling(&fe)
	s.validateScheduling(&fe)
	if len(fe) == 0 {
		s.validateFit(&fe)
	}
	if len(fe) == 0 {
		return nil
	}
	return fe
}

func (s *JobSpec) validateKind(fe *FieldErrors) {
	switch s.Kind {
	case KindBatch:
		if len(s.Keyframes) > 0 {
			fe.add("keyframes", "only an animation job has keyframes")
		}
	case KindAnimation:
	default:
		fe.add("kind", "unknown kind %q (want batch or animation)", s.Kind)
	}
	if len(s.Name) > 200 {
		fe.add("name", "longer than 200 bytes")
	}
}

func (s *JobSpec) validateModel(fe *FieldErrors) {
	switch {
	case s.Model == "":
		fe.add("model", "required")
	case !ValidModelName(s.Model):
		fe.add("model", "%q is not a model name (%s)", s.Model, ModelNameRule)
	}
	if _, ok := families[s.ModelFamily]; !ok {
		fe.add("model_family", "unknown family %q (want sd1, sd2, sdxl or tiny)", s.ModelFamily)
	}
	if _, ok := precisionBytes[s.Precision]; !ok {
		fe.add("precision", "unknown precision %q (want fp16, bf16 or fp32)", s.Precision)
	}
	switch s.Backend {
	case BackendAny, BackendCPU, BackendCUDA:
	default:
		fe.add("backend", "unknown backend %q (want cpu, cuda or empty for either)", s.Backend)
	}
}

func (s *JobSpec) validatePrompts(fe *FieldErrors) {
	if s.PromptsFile != "" {
		fe.add("prompts_file", "the coordinator cannot read client files; send prompts (farm submit reads the file)")
	}
	if len(s.Prompts) == 0 {
		fe.add("prompts", "at least one prompt is required")
	}
	for i, p := range s.Prompts {
		checkPrompt(fe, fmt.Sprintf("prompts[%d]", i), p, true)
	}
}

func (s *JobSpec) validateSeeds(fe *FieldErrors) {
	if s.ImagesPerPrompt < 1 {
		fe.add("images_per_prompt", "must be at least 1, got %d", s.ImagesPerPrompt)
	}
	sd := s.Seeds
	if sd.List != nil {
		if sd.Start != nil || sd.Count != 0 {
			fe.add("seeds", "give a list or a range, not both")
		}
		if len(sd.List) == 0 {
			fe.add("seeds", "empty list")
		}
		seen := make(map[int64]int, len(sd.List))
		for i, v := range sd.List {
			field := fmt.Sprintf("seeds[%d]", i)
			if v < 0 || v > MaxSeed {
				fe.add(field, "seed %d outside 0..%d", v, int64(MaxSeed))
			}
			if j, dup := seen[v]; dup {
				fe.add(field, "seed %d repeats seeds[%d]", v, j)
			}
			seen[v] = i
		}
		if s.ImagesPerPrompt >= 1 && len(sd.List) > 0 && s.ImagesPerPrompt != len(sd.List) {
			fe.add("images_per_prompt", "is %d but seeds lists %d seeds (every prompt gets each listed seed)", s.ImagesPerPrompt, len(sd.List))
		}
		return
	}
	if sd.Count < 0 {
		fe.add("seeds.count", "must not be negative, got %d", sd.Count)
	}
	if sd.Start != nil {
		if *sd.Start < 0 || *sd.Start > MaxSeed {
			fe.add("seeds.start", "seed %d outside 0..%d", *sd.Start, int64(MaxSeed))
		} else if sd.Count > 0 && *sd.Start > MaxSeed-int64(sd.Count)+1 {
			fe.add("seeds.count", "range from %d past the largest seed %d", *sd.Start, int64(MaxSeed))
		}
	} else if sd.Count != 0 {
		fe.add("seeds.start", "required when seeds.count is given")
	}
	if sd.Count > 0 && s.ImagesPerPrompt >= 1 && sd.Count != s.ImagesPerPrompt {
		fe.add("images_per_prompt", "is %d but seeds.count is %d", s.ImagesPerPrompt, sd.Count)
	}
}

func (s *JobSpec) validateImage(fe *FieldErrors) {
	for _, d := range []struct {
		field string
		v     int
	}{{"width", s.Width}, {"height", s.Height}} {
		switch {
		case d.v < MinSize || d.v > MaxSize:
			fe.add(d.field, "%d outside %d..%d", d.v, MinSize, MaxSize)
		case d.v%8 != 0:
			fe.add(d.field, "%d is not a multiple of 8", d.v)
		}
	}
}

func (s *JobSpec) validateSampling(fe *FieldErrors) {
	if s.Steps < 1 || s.Steps > MaxSteps {
		fe.add("steps", "%d outside 1..%d", s.Steps, MaxSteps)
	}
	checkCFG(fe, "cfg_scale", s.CFG())
	checkPrompt(fe, "negative_prompt", s.NegativePrompt, false)
	if !slices.Contains(scheduler.Names(), s.Sampler) {
		fe.add("sampler", "unknown sampler %q (want one of %s)", s.Sampler, strings.Join(scheduler.Names(), ", "))
	}
	if !slices.Contains(scheduler.Schedules(), s.Schedule) {
		fe.add("schedule", "unknown schedule %q (want one of %s)", s.Schedule, strings.Join(scheduler.Schedules(), ", "))
	}
	if s.ClipSkip < 0 || s.ClipSkip > MaxClipSkip {
		fe.add("clip_skip", "%d outside 0..%d", s.ClipSkip, MaxClipSkip)
	}
}

func (s *JobSpec) validateScheduling(fe *FieldErrors) {
	if !s.Priority.Valid() {
		fe.add("priority", "unknown priority %q (want high, normal or low)", s.Priority)
	}
	if s.FramesPerTask < 1 || s.FramesPerTask > MaxFramesPerTask {
		fe.add("frames_per_task", "%d outside 1..%d", s.FramesPerTask, MaxFramesPerTask)
	}
	if r := s.Retries(); r < 0 || r > MaxRetriesLimit {
		fe.add("max_retries", "%d outside 0..%d", r, MaxRetriesLimit)
	}
	if s.Kind == KindBatch && s.ImagesPerPrompt >= 1 && len(s.Prompts) > 0 {
		if n := int64(len(s.Prompts)) * int64(s.ImagesPerPrompt); n > MaxFrames {
			fe.add("images_per_prompt", "%d prompts x %d images = %d frames, more than the limit of %d", len(s.Prompts), s.ImagesPerPrompt, n, MaxFrames)
		}
	}
	if b, err := json.Marshal(s); err == nil && len(b) > MaxSpecBytes {
		fe.add("prompts", "the spec is %d bytes encoded, more than the limit of %d", len(b), MaxSpecBytes)
	}
}

// checkCFG adds a problem with guidance scale v of field, if any.
func checkCFG(fe *FieldErrors, field string, v float64) {
	if math.IsNaN(v) || v < 0 || v > MaxCFGScale {
		fe.add(field, "%g outside 0..%d", v, MaxCFGScale)
	}
}

// validateFit runs once the rest is valid: the VRAM estimate must fit a class.
func (s *JobSpec) validateFit(fe *FieldErrors) {
	est := s.VRAMEstimate()
	if _, ok := ClassFor(s.Backend, est); !ok {
		fe.add("width", "%dx%d with model family %s needs about %s, more than the largest class (%s)",
			s.Width, s.Height, s.ModelFamily, FormatBytes(est), FormatBytes(Tiers[len(Tiers)-1].TaskMaxBytes()))
	}
}

// MaxModelNameBytes bounds a model name.
const MaxModelNameBytes = 128

// ModelNameRule says what ValidModelName accepts, for messages.
const ModelNameRule = "letters, digits, '-', '_', '.', 1..128 characters, not starting with '.'"

// ValidModelName reports whether name can name a model: it appears in S3
// keys and node model dirs. It is the one rule of the coordinator, the
// nodes and the model store.
func ValidModelName(name string) bool {
	if name == "" || len(name) > MaxModelNameBytes || name[0] == '.' {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}
