// Package localrender renders a whole job spec, a batch or an animation, on
// this machine with the engine and no farm: the spec is read, checked and
// split into tasks exactly as farm submit and the coordinator do, and every
// frame becomes an engine request through node.FrameRequest, so a local
// render gives the images a farm would. The results go to a folder: the
// frames under the names a farm uses in S3, the animation files, and a
// manifest.
//
// It must never reach a coordinator, NATS, etcd or S3, nor print: progress
// goes to the caller's callback.
package localrender

import (
	"context"
	"errors"
	"fmt"
	"image"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// JobID is the job id of every local render: tasks and frames are named as
// a farm names them for a job of this id.
const JobID = "local"

// NodeName stands for this machine in the manifest.
const NodeName = "local"

// ManifestFile is the manifest's name in the output folder.
const ManifestFile = "manifest.json"

// DefaultModels is the folder model names are looked up in by default.
const DefaultModels = "models"

// StageAssemble is the Event stage of a written animation file; the other
// stages are wire's (StageLoading, StageStep, StageFrame, StageDone).
const StageAssemble = "assemble"

// Options configure Run.
type Options struct {
	// Spec is the job spec file, YAML or JSON (required). Image paths in
	// it are relative to its folder.
	Spec string
	// Output is the folder written (required, created when missing):
	// frames/NNNNNN.png, manifest.json, and for an animation animation.gif
	// and animation.mp4.
	Output string
	// Model, when set, is the model rendered with instead of the spec's: a
	// diffusers folder or a single-file .safetensors checkpoint. The
	// manifest's spec then names it by its file name.
	Model string
	// Models is the folder the spec's model name is looked up in when Model
	// is empty, as a node's models folder: Models/NAME or
	// Models/NAME.safetensors (default DefaultModels).
	Models string
	// Checkpoint holds the loading options (config, tokenizer, VAE).
	Checkpoint checkpoint.Options
	// Backend runs the model (default: the CPU backend).
	Backend backend.Backend
	// FFmpeg is the ffmpeg that encodes an animation's MP4 (default: the
	// one on PATH, media.FFmpeg(); none means no MP4 and a note saying why).
	FFmpeg string
	// Progress, when set, is called from Run's goroutine as work is done.
	Progress func(Event)
}

// Event is one progress report of Run.
type Event struct {
	// Stage is wire.StageLoading (the model is loaded), wire.StageStep (a
	// denoising step), wire.StageFrame (a frame is written), StageAssemble
	// (an animation file is written) or wire.StageDone (the manifest is
	// written).
	Stage string
	// Frame is the index of the frame being rendered or written.
	Frame int
	// Done of Frames are written.
	Done, Frames int
	Step, Steps  int
	// Model is the loaded model's name (loading stage).
	Model string
	// Path is the model file or folder (loading), or the file written.
	Path string
	// Elapsed is the time the stage took: the load, the frame, the file,
	// or the whole run (done stage).
	Elapsed time.Duration
}

// FrameFile is the path of frame index in the output folder, with the base
// name of its S3 key on a farm: "frames/000042.png".
func FrameFile(index int) string {
	return path.Join("frames", path.Base(wire.FrameKey(JobID, index)))
}

// Run renders the job spec o.Spec into o.Output and returns its manifest,
// also written to the folder. An invalid spec returns wire.FieldErrors
// listing every problem, before any model is loaded or file written. When
// a frame fails or ctx ends, Run stops, writes the manifest of what was
// done (state failed or cancelled) and returns the error with it.
func Run(ctx context.Context, o Options) (wire.Manifest, error) {
	start := time.Now()
	if err := o.fill(); err != nil {
		return wire.Manifest{}, err
	}
	spec, inputs, err := readSpec(o.Spec, o.Model)
	if err != nil {
		return wire.Manifest{}, err
	}
	tasks, err := wire.Split(JobID, spec)
	if err != nil {
		return wire.Manifest{}, err
	}
	p, err := o.load(ctx, spec.Model)
	if err != nil {
		return wire.Manifest{}, err
	}
	r := newRenderer(o, p, spec, inputs, start)
	return r.run(ctx, tasks)
}

// fill checks the options and fills their defaults.
func (o *Options) fill() error {
	var missing []string
	if o.Spec == "" {
		missing = append(missing, "Spec")
	}
	if o.Output == "" {
		missing = append(missing, "Output")
	}
	if len(missing) > 0 {
		return fmt.Errorf("localrender: %s required", strings.Join(missing, " and "))
	}
	if o.Models == "" {
		o.Models = DefaultModels
	}
	if o.Backend == nil {
		o.Backend = cpu.New()
	}
	return nil
}

// images are a spec's decoded image inputs (nil when it has none).
type images struct{ init, mask image.Image }

// readSpec reads the spec file, names the model that replaces the spec's,
// reads and checks the image inputs, and normalizes and validates the spec.
// Field problems of the inputs and of the spec are returned together.
func readSpec(file, model string) (wire.JobSpec, images, error) {
	spec, err := wire.ReadJobFile(file)
	if err != nil {
		return wire.JobSpec{}, images{}, err
	}
	if model != "" {
		spec.Model = ModelName(model)
	}
	var fe wire.FieldErrors
	var in images
	if spec.Kind != wire.KindAnimation { // Validate refuses inputs in an animation
		in, fe = readInputs(&spec)
	}
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		vfe, ok := wire.AsFieldErrors(err)
		if !ok {
			return wire.JobSpec{}, images{}, err
		}
		fe = append(vfe, fe...)
	}
	if len(fe) > 0 {
		return wire.JobSpec{}, images{}, fe
	}
	return spec, in, nil
}

// readInputs reads the image files of a spec and checks them as farm
// submit does (wire.JobSpec.ReadLocalInputs). Input keys name images on a
// farm, which a local render cannot read.
func readInputs(spec *wire.JobSpec) (images, wire.FieldErrors) {
	var fe wire.FieldErrors
	for _, in := range []struct{ field, file string }{{"init_image", spec.InitImage}, {"mask", spec.Mask}} {
		if wire.ValidInputKey(in.file) {
			fe = append(fe, wire.FieldError{Field: in.field,
				Reason: fmt.Sprintf("%q is an input on a farm; a local render reads image files", in.file)})
		}
	}
	local, rfe := spec.ReadLocalInputs()
	fe = append(fe, rfe...)
	if local == nil {
		return images{}, fe
	}
	in := images{init: local.Image.Image}
	if local.Mask != nil {
		in.mask = local.Mask.Image
	}
	return in, fe
}

// ModelName is the model name a model path stands for in a spec: its file
// or folder name without .safetensors, with characters a model name cannot
// hold replaced by '_'.
func ModelName(modelPath string) string {
	base := filepath.Base(filepath.Clean(modelPath))
	if ext := filepath.Ext(base); strings.EqualFold(ext, ".safetensors") {
		base = strings.TrimSuffix(base, ext)
	}
	name := []byte(base)
	for i, c := range name {
		if !wire.ValidModelName("x" + string(c)) { // a character a name may hold anywhere
			name[i] = '_'
		}
	}
	if len(name) == 0 || name[0] == '.' {
		name = append([]byte("model"), name...)
	}
	return string(name[:min(len(name), 128)])
}

// ModelNotFoundError says that the spec's model is not in the models
// folder. It matches node.ErrModelNotFound with errors.Is.
type ModelNotFoundError struct{ Name, Dir string }

func (e *ModelNotFoundError) Error() string {
	return fmt.Sprintf("localrender: model %q is not in %s (as a folder %s or a file %s.safetensors)", e.Name, e.Dir, e.Name, e.Name)
}

// Is makes errors.Is(err, node.ErrModelNotFound) hold.
func (e *ModelNotFoundError) Is(target error) bool { return target == node.ErrModelNotFound }

// load finds and loads the model: o.Model, or name in o.Models.
func (o *Options) load(ctx context.Context, name string) (*pipeline.Pipeline, error) {
	start := time.Now()
	p := o.Model
	if p == "" {
		var err error
		p, err = (&node.Models{Dir: o.Models}).Path(ctx, name)
		if errors.Is(err, node.ErrModelNotFound) {
			return nil, &ModelNotFoundError{Name: name, Dir: o.Models}
		}
		if err != nil {
			return nil, fmt.Errorf("localrender: %w", err)
		}
	}
	m, err := checkpoint.Load(o.Backend, p, o.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("localrender: model %q: %w", name, err)
	}
	m.Name = name
	if o.Progress != nil {
		o.Progress(Event{Stage: wire.StageLoading, Model: name, Path: p, Elapsed: time.Since(start)})
	}
	return pipeline.New(o.Backend, m), nil
}
