package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/shared/media"
	"gopkg.in/yaml.v3"
)

// Job kinds.
const (
	KindBatch     = "batch"     // prompts x seeds, every image independent
	KindAnimation = "animation" // keyframes and in-between frames, assembled into a GIF and MP4
)

// Sampler and schedule names: the engine's scheduler package owns the list.
const (
	SamplerEuler    = scheduler.NameEuler
	SamplerEulerA   = scheduler.NameEulerA
	SamplerDDIM     = scheduler.NameDDIM
	SamplerDPMPP2M  = scheduler.NameDPMPP2M
	ScheduleDefault = scheduler.ScheduleDefault
	ScheduleKarras  = scheduler.ScheduleKarras
	ScheduleAYS     = scheduler.ScheduleAYS
)

// Defaults and limits of a job spec.
const (
	DefaultWidth         = scheduler.DefaultSize
	DefaultHeight        = scheduler.DefaultSize
	DefaultSteps         = scheduler.DefaultSteps
	DefaultCFGScale      = scheduler.DefaultCFGScale
	DefaultFramesPerTask = 4
	DefaultMaxRetries    = 3
	MaxFramesPerTask     = 64
	MaxRetriesLimit      = 10
	// MinSize and MaxSize bound an image side, rendered or given as input.
	MinSize     = media.MinInputSide
	MaxSize     = media.MaxInputSide
	MaxSteps    = 150
	MaxCFGScale = 30
	MaxClipSkip = 12
	// MaxFrames bounds a batch: frame indices have FrameIndexDigits
	// digits. MaxAnimationFrames bounds an animation, whose frames are all
	// assembled by one task.
	MaxFrames          = 1000000
	MaxAnimationFrames = 100000
	MaxPromptBytes     = 4096
	// MaxSeed keeps seeds exactly representable as JSON numbers everywhere.
	MaxSeed = 1<<53 - 1
	// MaxSpecBytes bounds an encoded spec (it is stored in one etcd value).
	MaxSpecBytes = 1 << 20
)

// JobSpec is what a user submits. Zero values mean "use the default"; the
// coordinator stores the spec after Normalize, so a stored spec is explicit.
type JobSpec struct {
	// Kind is "batch" (default) or "animation".
	Kind string `json:"kind,omitempty" yaml:"kind,omitempty"`
	// Name is a free label shown in listings.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Model names the model in the nodes' model dir or the model store.
	Model string `json:"model" yaml:"model"`
	// ModelFamily is sd1, sd2, sdxl or tiny; guessed from Model when empty.
	ModelFamily string `json:"model_family,omitempty" yaml:"model_family,omitempty"`
	// Precision is fp16 (default), bf16 or fp32: the weights' precision on the node.
	Precision string `json:"precision,omitempty" yaml:"precision,omitempty"`
	// Backend pins the backend (cpu or cuda); empty runs on either. Seeds
	// reproduce exactly only on one backend.
	Backend string `json:"backend,omitempty" yaml:"backend,omitempty"`
	// Prompts are rendered in order; each gets ImagesPerPrompt images.
	Prompts []string `json:"prompts,omitempty" yaml:"prompts,omitempty"`
	// PromptsFile is a path read by the client (one prompt a line, # comments);
	// the coordinator refuses a spec that still carries it.
	PromptsFile    string `json:"prompts_file,omitempty" yaml:"prompts_file,omitempty"`
	NegativePrompt string `json:"negative_prompt,omitempty" yaml:"negative_prompt,omitempty"`
	// Seeds is a list or a range {start, count}; every prompt gets the same seeds.
	Seeds Seeds `json:"seeds,omitzero" yaml:"seeds,omitempty"`
	// ImagesPerPrompt defaults to the number of seeds (or 1).
	ImagesPerPrompt int `json:"images_per_prompt,omitempty" yaml:"images_per_prompt,omitempty"`
	Width           int `json:"width,omitempty" yaml:"width,omitempty"`
	Height          int `json:"height,omitempty" yaml:"height,omitempty"`
	Steps           int `json:"steps,omitempty" yaml:"steps,omitempty"`
	// CFGScale is nil for the default; 0 (or up to 1) turns guidance off.
	CFGScale *float64 `json:"cfg_scale,omitempty" yaml:"cfg_scale,omitempty"`
	Sampler  string   `json:"sampler,omitempty" yaml:"sampler,omitempty"`
	Schedule string   `json:"schedule,omitempty" yaml:"schedule,omitempty"`
	// ClipSkip follows diffusers, as the engine does: 0 uses the text
	// encoder's last layer, k the output k layers before it (A1111 and
	// other tools print k+1).
	ClipSkip int `json:"clip_skip,omitempty" yaml:"clip_skip,omitempty"`
	// Priority is high, normal (default) or low.
	Priority Priority `json:"priority,omitempty" yaml:"priority,omitempty"`
	// FramesPerTask is how many frames one task renders (default 4).
	FramesPerTask int `json:"frames_per_task,omitempty" yaml:"frames_per_task,omitempty"`
	// MaxRetries is how many times a failed task is run again (default 3).
	MaxRetries *int `json:"max_retries,omitempty" yaml:"max_retries,omitempty"`
	// AllowPendingModel accepts a model that neither the model store nor
	// any registered node has: the job waits for a node that brings it.
	// Without it such a job is refused at submit.
	AllowPendingModel bool `json:"allow_pending_model,omitempty" yaml:"allow_pending_model,omitempty"`
	// Animation settings (kind "animation"): Frames in all, keyframes
	// included, played at FPS; Easing shapes the motion between two keys
	// (linear or smooth); Embeddings is how the text embeddings move between
	// keys (lerp, or slerp).
	Frames     int        `json:"frames,omitempty" yaml:"frames,omitempty"`
	FPS        int        `json:"fps,omitempty" yaml:"fps,omitempty"`
	Easing     string     `json:"easing,omitempty" yaml:"easing,omitempty"`
	Embeddings string     `json:"embeddings,omitempty" yaml:"embeddings,omitempty"`
	Keyframes  []Keyframe `json:"keyframes,omitempty" yaml:"keyframes,omitempty"`
	// Image inputs. In a spec file they are local paths (relative to the
	// file); farm submit uploads them and sends their input keys
	// (InputKey), which is all the coordinator accepts. InitImage alone is
	// img2img; with Mask it is inpainting (white repaints); with Outpaint
	// the canvas grows by that many pixels on each side and the new area is
	// painted.
	InitImage string   `json:"init_image,omitempty" yaml:"init_image,omitempty"`
	Mask      string   `json:"mask,omitempty" yaml:"mask,omitempty"`
	Outpaint  *Padding `json:"outpaint,omitempty" yaml:"outpaint,omitempty"`
	// Strength is the share of the schedule re-run over the init image, in
	// (0, 1]; unset leaves it to the engine (0.75 for img2img, 1 with a mask).
	Strength float64 `json:"strength,omitempty" yaml:"strength,omitempty"`

	// zeros are fields the parsed document gave as 0 where 0 is no value
	// (ParseJobSpec); Validate refuses them instead of taking defaults.
	zeros []string
}

// Keyframe is one key of an animation: the frame it sits at, and the
// prompt and seed there. NegativePrompt and CFGScale, when set, override the
// spec's at this key and are interpolated like the rest.
type Keyframe struct {
	Frame          int      `json:"frame" yaml:"frame"`
	Prompt         string   `json:"prompt" yaml:"prompt"`
	NegativePrompt string   `json:"negative_prompt,omitempty" yaml:"negative_prompt,omitempty"`
	Seed           int64    `json:"seed" yaml:"seed"`
	CFGScale       *float64 `json:"cfg_scale,omitempty" yaml:"cfg_scale,omitempty"`
}

// Padding is an outpainting extension in pixels on each side.
type Padding struct {
	Left   int `json:"left" yaml:"left"`
	Top    int `json:"top" yaml:"top"`
	Right  int `json:"right" yaml:"right"`
	Bottom int `json:"bottom" yaml:"bottom"`
}

// ParsePadding reads "LEFT,TOP,RIGHT,BOTTOM" (pixels).
func ParsePadding(s string) (Padding, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return Padding{}, fmt.Errorf("wire: outpaint %q: want LEFT,TOP,RIGHT,BOTTOM in pixels", s)
	}
	var v [4]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return Padding{}, fmt.Errorf("wire: outpaint %q: %q is not a whole number of pixels", s, p)
		}
		v[i] = n
	}
	return Padding{Left: v[0], Top: v[1], Right: v[2], Bottom: v[3]}, nil
}

// ParseJobSpec decodes a spec from YAML or JSON (JSON is valid YAML, but JSON
// input is decoded strictly as JSON for exact error offsets). Unknown fields
// are an error.
func ParseJobSpec(data []byte) (JobSpec, error) {
	var s JobSpec
	trimmed := bytes.TrimSpace(data)
	isJSON := len(trimmed) > 0 && trimmed[0] == '{'
	if err := checkUTF8(trimmed, isJSON); err != nil {
		return JobSpec{}, err
	}
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return JobSpec{}, fmt.Errorf("wire: job spec: %w", err)
		}
		// One JSON value and nothing after it: trailing data is a broken or
		// concatenated spec, not something to ignore.
		if _, err := dec.Token(); err != io.EOF {
			return JobSpec{}, fmt.Errorf("wire: job spec: data after the JSON object at offset %d", dec.InputOffset())
		}
		s.zeros = explicitZeros(trimmed, true)
		return s, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return JobSpec{}, fmt.Errorf("wire: job spec: %w", err)
	}
	// One YAML document: a second one (valid or not) is refused.
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		return JobSpec{}, fmt.Errorf("wire: job spec: a second YAML document, which does not parse: %w", err)
	default:
		return JobSpec{}, fmt.Errorf("wire: job spec: more than one YAML document (line %d); a spec is one document", extra.Line)
	}
	s.zeros = explicitZeros(data, false)
	return s, nil
}

// zeroIsNoValue lists the fields where 0 is not a valid value: left out,
// they take their default; given as 0, they are refused rather than
// silently meaning the default.
var zeroIsNoValue = []string{"width", "height", "steps", "frames_per_task", "images_per_prompt", "frames", "fps", "strength"}

// explicitZeros names every field of zeroIsNoValue given as 0 in the
// document; Validate reports them with the spec's other problems.
func explicitZeros(data []byte, isJSON bool) []string {
	var raw map[string]any
	var err error
	if isJSON {
		err = json.Unmarshal(data, &raw)
	} else {
		err = yaml.Unmarshal(data, &raw)
	}
	if err != nil {
		return nil // the typed decode already accepted it; nothing to add
	}
	var zeros []string
	for _, f := range zeroIsNoValue {
		switch v := raw[f].(type) {
		case int:
			if v == 0 {
				zeros = append(zeros, f)
			}
		case float64:
			if v == 0 {
				zeros = append(zeros, f)
			}
		}
	}
	return zeros
}

// ReadJobFile reads a spec from a YAML or JSON file and resolves PromptsFile
// (relative to the spec's folder) into Prompts.
func ReadJobFile(path string) (JobSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return JobSpec{}, fmt.Errorf("wire: job file: %w", err)
	}
	s, err := ParseJobSpec(data)
	if err != nil {
		return JobSpec{}, fmt.Errorf("%s: %w", path, err)
	}
	if s.PromptsFile != "" {
		p := s.PromptsFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		if err := s.LoadPromptsFile(p); err != nil {
			return JobSpec{}, err
		}
	}
	// Image inputs are local files next to the spec until farm submit
	// uploads them.
	for _, p := range []*string{&s.InitImage, &s.Mask} {
		if *p != "" && !ValidInputKey(*p) && !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(path), *p)
		}
	}
	return s, nil
}

// LoadPromptsFile appends the prompts in the file at path (one a line; blank
// lines and lines starting with # are skipped) and clears PromptsFile.
func (s *JobSpec) LoadPromptsFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("wire: prompts file: %w", err)
	}
	s.Prompts = append(s.Prompts, ParsePrompts(string(data))...)
	s.PromptsFile = ""
	return nil
}

// ParsePrompts splits prompts-file contents into prompts.
func ParsePrompts(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out
}

// Normalize fills every default in place; it never fails. Call it before
// Validate so that the defaults are validated too.
func (s *JobSpec) Normalize() {
	if s.Kind == "" {
		s.Kind = KindBatch
	}
	if s.ModelFamily == "" {
		s.ModelFamily = GuessFamily(s.Model)
	}
	if s.Precision == "" {
		s.Precision = PrecisionFP16
	}
	if s.Width == 0 {
		s.Width = DefaultWidth
	}
	if s.Height == 0 {
		s.Height = DefaultHeight
	}
	if s.Steps == 0 {
		s.Steps = DefaultSteps
	}
	if s.CFGScale == nil {
		c := float64(DefaultCFGScale)
		s.CFGScale = &c
	}
	if s.Sampler == "" {
		s.Sampler = scheduler.DefaultSampler
	}
	if s.Schedule == "" {
		s.Schedule = scheduler.DefaultSchedule
	}
	if s.Priority == "" {
		s.Priority = PriorityNormal
	}
	if s.FramesPerTask == 0 {
		s.FramesPerTask = DefaultFramesPerTask
	}
	if s.MaxRetries == nil {
		n := DefaultMaxRetries
		s.MaxRetries = &n
	}
	if s.Kind == KindAnimation {
		s.normalizeAnimation()
		return
	}
	if s.ImagesPerPrompt == 0 {
		switch {
		case len(s.Seeds.List) > 0:
			s.ImagesPerPrompt = len(s.Seeds.List)
		case s.Seeds.Count > 0:
			s.ImagesPerPrompt = s.Seeds.Count
		default:
			s.ImagesPerPrompt = 1
		}
	}
	if s.Seeds.List == nil && s.Seeds.Start != nil && s.Seeds.Count == 0 {
		s.Seeds.Count = s.ImagesPerPrompt
	}
}

// GuidanceScale returns a CFGScale of v.
func GuidanceScale(v float64) *float64 { return &v }

// CFG is the guidance scale: CFGScale, or the default when it is unset.
func (s *JobSpec) CFG() float64 {
	if s.CFGScale == nil {
		return DefaultCFGScale
	}
	return *s.CFGScale
}

// TotalFrames is the number of images the (normalized) job renders.
func (s *JobSpec) TotalFrames() int {
	if s.Kind == KindAnimation {
		return max(s.Frames, 0)
	}
	if s.ImagesPerPrompt <= 0 {
		return 0
	}
	return len(s.Prompts) * s.ImagesPerPrompt
}

// Retries is the normalized MaxRetries.
func (s *JobSpec) Retries() int {
	if s.MaxRetries == nil {
		return DefaultMaxRetries
	}
	return *s.MaxRetries
}

// FieldError is one problem with one field of a request.
type FieldError struct {
	// Field is the path of the field, e.g. "width", "prompts[3]", "seeds.count".
	Field string `json:"field"`
	// Reason says what is wrong and what is allowed.
	Reason string `json:"reason"`
}

// FieldErrors lists every problem found; a nil FieldErrors means none.
type FieldErrors []FieldError

// Error implements error.
func (fe FieldErrors) Error() string {
	parts := make([]string, len(fe))
	for i, e := range fe {
		parts[i] = e.Field + ": " + e.Reason
	}
	return "invalid job: " + strings.Join(parts, "; ")
}

// Has reports whether a problem with field is listed.
func (fe FieldErrors) Has(field string) bool {
	for _, e := range fe {
		if e.Field == field {
			return true
		}
	}
	return false
}

func (fe *FieldErrors) add(field, format string, args ...any) {
	*fe = append(*fe, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// AsFieldErrors returns the FieldErrors in err's chain, if any.
func AsFieldErrors(err error) (FieldErrors, bool) {
	var fe FieldErrors
	if errors.As(err, &fe) {
		return fe, true
	}
	return nil, false
}
