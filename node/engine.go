package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"sync"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// EngineOptions configure the engine renderer.
type EngineOptions struct {
	// Backend runs the models (default: the CPU backend).
	Backend backend.Backend
	// Models resolves model names to local paths (required).
	Models *Models
	// MaxLoaded is how many models stay in memory (default 1).
	MaxLoaded int
	// Inputs reads an image input by key (tasks with image inputs fail
	// without it).
	Inputs func(ctx context.Context, key string) ([]byte, error)
}

// Engine renders with the project's Stable Diffusion engine, keeping the
// last used models loaded.
type Engine struct {
	b      backend.Backend
	models *Models
	max    int

	inputs func(ctx context.Context, key string) ([]byte, error)

	mu     sync.Mutex
	loaded []*loadedModel // most recently used first
	// images holds the decoded image inputs of the current task by key.
	images map[string]image.Image
}

type loadedModel struct {
	name string
	p    *pipeline.Pipeline
}

var (
	_ Renderer    = (*Engine)(nil)
	_ ModelLister = (*Engine)(nil)
)

// NewEngine returns an engine renderer.
func NewEngine(o EngineOptions) (*Engine, error) {
	if o.Models == nil {
		return nil, errors.New("node: engine: Models is required")
	}
	if o.Backend == nil {
		o.Backend = cpu.New()
	}
	if o.MaxLoaded <= 0 {
		o.MaxLoaded = 1
	}
	return &Engine{b: o.Backend, models: o.Models, max: o.MaxLoaded, inputs: o.Inputs}, nil
}

// Name implements Renderer.
func (e *Engine) Name() string { return wire.RendererEngine }

// ModelsLoaded implements ModelLister.
func (e *Engine) ModelsLoaded() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(e.loaded))
	for i, l := range e.loaded {
		out[i] = l.name
	}
	return out
}

// ModelsOnDisk implements ModelLister.
func (e *Engine) ModelsOnDisk() []string { return e.models.OnDisk() }

// Prepare implements Renderer: it loads the task's model (fetching it from
// the model store when it is not on disk) and image inputs, and checks the
// task against them.
func (e *Engine) Prepare(ctx context.Context, task *wire.Task) error {
	p, err := e.pipeline(ctx, task.Model)
	if err != nil {
		return err
	}
	if err := e.loadImages(ctx, task); err != nil {
		return err
	}
	return e.checkTask(p.Model(), task)
}

// loadImages fetches and decodes the task's image inputs, keeping the ones
// already decoded for the previous task.
func (e *Engine) loadImages(ctx context.Context, task *wire.Task) error {
	keep := map[string]image.Image{}
	for _, key := range []string{task.InitImage, task.Mask} {
		if key == "" {
			continue
		}
		e.mu.Lock()
		img := e.images[key]
		e.mu.Unlock()
		if img == nil {
			if e.inputs == nil {
				return Permanent(wire.CodeInvalidTask, errors.New("node: this engine has no input store"))
			}
			data, err := e.inputs(ctx, key)
			if err != nil {
				return err
			}
			in, err := media.DecodeInput(key, data)
			if err != nil {
				return Permanent(wire.CodeInvalidTask, fmt.Errorf("node: %w", err))
			}
			img = in.Image
		}
		keep[key] = img
	}
	e.mu.Lock()
	e.images = keep
	e.mu.Unlock()
	return nil
}

// pipeline returns the loaded model name, loading it if needed.
func (e *Engine) pipeline(ctx context.Context, name string) (*pipeline.Pipeline, error) {
	e.mu.Lock()
	for i, l := range e.loaded {
		if l.name == name {
			copy(e.loaded[1:i+1], e.loaded[:i])
			e.loaded[0] = l
			e.mu.Unlock()
			return l.p, nil
		}
	}
	e.mu.Unlock()
	path, err := e.models.Path(ctx, name)
	switch {
	case errors.Is(err, ErrUnavailable):
		return nil, err
	case errors.Is(err, ErrModelNotFound):
		return nil, Retryable(wire.CodeModelNotFound, err)
	case err != nil:
		return nil, Permanent(wire.CodeModelLoadFailed, err)
	}
	// Drop models beyond the limit before loading, so two never overlap
	// more than needed.
	e.mu.Lock()
	if len(e.loaded) >= e.max {
		e.loaded = e.loaded[:e.max-1]
	}
	e.mu.Unlock()
	m, err := checkpoint.Load(e.b, path, checkpoint.Options{})
	if err != nil {
		return nil, Permanent(wire.CodeModelLoadFailed, fmt.Errorf("node: model %q: %w", name, err))
	}
	m.Name = name
	p := pipeline.New(e.b, m)
	e.mu.Lock()
	e.loaded = append([]*loadedModel{{name: name, p: p}}, e.loaded...)
	e.mu.Unlock()
	return p, nil
}

// checkTask refuses settings the model cannot render, before any work.
func (e *Engine) checkTask(m *checkpoint.Model, t *wire.Task) error {
	req := e.request(t, wire.Frame{})
	if err := req.Validate(); err != nil {
		return Permanent(wire.CodeInvalidTask, err)
	}
	if _, err := scheduler.New(req.Sampler, req.Schedule, m.Scheduler, req.Steps); err != nil {
		return Permanent(wire.CodeInvalidTask, fmt.Errorf("node: %w", err))
	}
	if multiple := pipeline.SizeMultiple(m); t.Width%multiple != 0 || t.Height%multiple != 0 {
		return Permanent(wire.CodeInvalidTask, fmt.Errorf("node: size %dx%d: model %s needs multiples of %d",
			t.Width, t.Height, t.Model, multiple))
	}
	return nil
}

// request is the engine request for one frame of t, with the image inputs
// loadImages decoded.
func (e *Engine) request(t *wire.Task, f wire.Frame) pipeline.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return FrameRequest(t, f, e.images[t.InitImage], e.images[t.Mask])
}

// FrameRequest is the engine request for frame f of task t, given the
// task's decoded image inputs (nil when it has none): the one mapping from
// the wire to the engine, used by nodes and by local spec renders.
func FrameRequest(t *wire.Task, f wire.Frame, initImage, mask image.Image) pipeline.Request {
	req := pipeline.Request{
		Prompt: f.Prompt, NegativePrompt: f.NegativePrompt, Width: t.Width, Height: t.Height,
		Steps: t.Steps, CFGScale: t.CFGScale, Sampler: t.Sampler, Schedule: t.Schedule,
		Seed: uint64(f.Seed), ClipSkip: t.ClipSkip, Strength: t.Strength,
		InitImage: initImage, Mask: mask,
	}
	if f.CFGScale != nil {
		req.CFGScale = *f.CFGScale
	}
	if b := f.Blend; b != nil {
		req.Interp = &pipeline.Interpolation{Prompt: b.Prompt, NegativePrompt: b.NegativePrompt,
			Seed: uint64(b.Seed), T: b.T, SlerpEmbeddings: b.Slerp}
	}
	if p := t.Outpaint; p != nil {
		req.Outpaint = pipeline.Padding{Left: p.Left, Top: p.Top, Right: p.Right, Bottom: p.Bottom}
	}
	return req
}

// Render implements Renderer.
func (e *Engine) Render(ctx context.Context, task *wire.Task, frame wire.Frame, progress func(step, total int)) (out []byte, err error) {
	p, err := e.pipeline(ctx, task.Model)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Backend ops panic on shape mismatches: a broken model or a bug,
		// reported as a failed render instead of a dead node.
		if r := recover(); r != nil {
			out, err = nil, Retryable(wire.CodeRenderFailed, fmt.Errorf("node: engine panic: %v", r))
		}
	}()
	req := e.request(task, frame)
	res, err := p.Generate(ctx, req, pipeline.Progress(progress))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, Retryable(wire.CodeRenderFailed, err)
	}
	var buf bytes.Buffer
	m := p.Model()
	if err := pipeline.EncodePNG(&buf, res.Image, pipeline.Parameters(res.Request, m.Name, m.Hash)); err != nil {
		return nil, Retryable(wire.CodeRenderFailed, err)
	}
	return buf.Bytes(), nil
}
