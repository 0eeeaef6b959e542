// Package pipeline turns requests into images with a loaded model:
// text-to-image today, with room for img2img, inpainting and latent
// interpolation. It runs on any backend and never imports the farm.
package pipeline

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/rng"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
)

// Request describes one text-to-image generation.
type Request struct {
	Prompt         string
	NegativePrompt string
	Width, Height  int
	Steps          int
	CFGScale       float64
	Sampler        string // euler, euler_a, ddim, dpmpp_2m
	Schedule       string // default, karras, ays
	Seed           uint64
	// ClipSkip follows diffusers: 0 uses the text encoder's last layer, k
	// uses the output k layers before it (other tools print k+1).
	ClipSkip int
}

// Defaults fills unset fields with the usual Stable Diffusion settings.
func (r Request) Defaults() Request {
	if r.Width == 0 {
		r.Width = 512
	}
	if r.Height == 0 {
		r.Height = 512
	}
	if r.Steps == 0 {
		r.Steps = 20
	}
	if r.Sampler == "" {
		r.Sampler = "euler_a"
	}
	if r.Schedule == "" {
		r.Schedule = "default"
	}
	return r
}

// Validate checks the request against the model's geometry.
func (r Request) Validate() error {
	switch {
	case r.Width <= 0 || r.Height <= 0 || r.Width%8 != 0 || r.Height%8 != 0:
		return fmt.Errorf("pipeline: size %dx%d: width and height must be positive multiples of 8", r.Width, r.Height)
	case r.Steps < 1 || r.Steps > 1000:
		return fmt.Errorf("pipeline: steps %d: must be between 1 and 1000", r.Steps)
	case r.CFGScale < 0 || math.IsNaN(r.CFGScale):
		return fmt.Errorf("pipeline: cfg scale %v: must be 0 or more", r.CFGScale)
	case r.ClipSkip < 0:
		return fmt.Errorf("pipeline: clip skip %d: must be 0 or more", r.ClipSkip)
	}
	return nil
}

// Result is one generated image with the numbers behind it.
type Result struct {
	Image   *image.NRGBA
	Latents []float32 // final latents [1, 4, H/8, W/8]
	Image01 []float32 // decoded image in [0, 1], [1, 3, H, W]
	Request Request
}

// Progress is called after every denoising step.
type Progress func(step, total int)

// Pipeline renders requests with one model on one backend. It is not safe
// for concurrent use.
type Pipeline struct {
	b backend.Backend
	m *checkpoint.Model
}

// New returns a pipeline for m on b.
func New(b backend.Backend, m *checkpoint.Model) *Pipeline {
	return &Pipeline{b: b, m: m}
}

// Model returns the pipeline's model.
func (p *Pipeline) Model() *checkpoint.Model { return p.m }

// TextToImage renders one image. It stops between steps when ctx is done.
func (p *Pipeline) TextToImage(ctx context.Context, req Request, progress Progress) (*Result, error) {
	req = req.Defaults()
	if err := req.Validate(); err != nil {
		return nil, err
	}
	b := p.b
	if multiple := SizeMultiple(p.m); req.Width%multiple != 0 || req.Height%multiple != 0 {
		return nil, fmt.Errorf("pipeline: size %dx%d: this model needs multiples of %d", req.Width, req.Height, multiple)
	}
	down := vaeFactor(p.m)
	sampler, err := scheduler.New(req.Sampler, req.Schedule, p.m.Scheduler, req.Steps)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	guided := req.CFGScale > 1
	cond, err := p.encodePrompts(req, guided)
	if err != nil {
		return nil, err
	}

	lh, lw := req.Height/down, req.Width/down
	shape := []int{1, p.m.UNetConfig.InChannels, lh, lw}
	gen := rng.New(req.Seed)
	noise := b.FromFloat32(gen.Randn(backend.NumElements(shape)), shape...)
	latents := b.Scale(noise, float32(sampler.InitNoiseSigma()))
	drawNoise := func() *backend.Tensor {
		return b.FromFloat32(gen.Randn(backend.NumElements(shape)), shape...)
	}
	ts := sampler.Timesteps()
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		x := sampler.ScaleModelInput(b, latents, i)
		var eps *backend.Tensor
		if guided {
			out := p.m.UNet.Forward(b, b.Concat(0, x, x), []float64{t, t}, cond)
			uncond, text := b.Slice(out, 0, 0, 1), b.Slice(out, 0, 1, 2)
			g := float32(req.CFGScale)
			eps = b.LinComb([]float32{1 - g, g}, uncond, text)
		} else {
			eps = p.m.UNet.Forward(b, x, []float64{t}, cond)
		}
		latents = sampler.Step(b, eps, i, latents, drawNoise)
		if progress != nil {
			progress(i+1, len(ts))
		}
	}
	return p.decode(req, latents)
}

// SizeMultiple is what image sides must be a multiple of for m: one latent
// pixel per VAE factor (8 for SD1.x and SD2.x). Latent sides that do not
// halve evenly in the UNet are handled as diffusers handles them.
func SizeMultiple(m *checkpoint.Model) int {
	return vaeFactor(m)
}

// vaeFactor is how many image pixels one latent pixel covers per side.
func vaeFactor(m *checkpoint.Model) int {
	return 1 << (len(m.VAEConfig.BlockOutChannels) - 1)
}

// encodePrompts returns the conditioning batch: [negative, prompt] when
// guided (the order diffusers uses), else [prompt]. Like diffusers 0.27,
// clip skip applies to the prompt only, not to the negative prompt.
func (p *Pipeline) encodePrompts(req Request, guided bool) (*backend.Tensor, error) {
	tok := p.m.Tokenizer
	cond, err := p.m.TextEncoder.Encode(p.b, [][]int{tok.EncodePadded(req.Prompt)}, req.ClipSkip)
	if err != nil {
		return nil, fmt.Errorf("pipeline: text encoder: %w", err)
	}
	if !guided {
		return cond, nil
	}
	uncond, err := p.m.TextEncoder.Encode(p.b, [][]int{tok.EncodePadded(req.NegativePrompt)}, 0)
	if err != nil {
		return nil, fmt.Errorf("pipeline: text encoder: %w", err)
	}
	return p.b.Concat(0, uncond, cond), nil
}

func (p *Pipeline) decode(req Request, latents *backend.Tensor) (*Result, error) {
	b := p.b
	img := p.m.VAE.Decode(b, b.Scale(latents, float32(1/p.m.VAEConfig.ScalingFactor)))
	vals := b.ToFloat32(img)
	h, w := img.Dim(2), img.Dim(3)
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	plane := h * w
	for i := range vals {
		v := float64(vals[i])/2 + 0.5
		if math.IsNaN(v) {
			return nil, fmt.Errorf("pipeline: the decoded image holds NaN")
		}
		vals[i] = float32(math.Min(1, math.Max(0, v)))
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			px := y*w + x
			out.SetNRGBA(x, y, color.NRGBA{
				R: to8bit(vals[px]), G: to8bit(vals[plane+px]), B: to8bit(vals[2*plane+px]), A: 255,
			})
		}
	}
	return &Result{Image: out, Latents: b.ToFloat32(latents), Image01: vals, Request: req}, nil
}

// to8bit scales in float32 and rounds half to even, as numpy does when
// diffusers makes a PIL image.
func to8bit(v float32) uint8 {
	return uint8(math.RoundToEven(float64(v * 255)))
}
