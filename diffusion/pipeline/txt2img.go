// Package pipeline turns requests into images with a loaded model:
// text-to-image, img2img, inpainting, outpainting and the in-between frames
// of latent-interpolation animations, all through one denoising loop that
// follows diffusers 0.27. It runs on any backend and never imports the farm.
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

// Result is one generated image with the numbers behind it.
type Result struct {
	Image   *image.NRGBA
	Latents []float32 // final latents [1, 4, H/8, W/8]
	Image01 []float32 // decoded image in [0, 1], [1, 3, H, W]
	Request Request   // the request with its defaults filled in
}

// Progress is called after every denoising step.
type Progress func(step, total int)

// Pipeline renders requests with one model on one backend. It keeps the
// text-encoder outputs of recent prompts, so that the frames of an
// animation encode each key once. It is not safe for concurrent use.
type Pipeline struct {
	b       backend.Backend
	m       *checkpoint.Model
	prompts promptCache
}

// New returns a pipeline for m on b.
func New(b backend.Backend, m *checkpoint.Model) *Pipeline {
	return &Pipeline{b: b, m: m}
}

// Model returns the pipeline's model.
func (p *Pipeline) Model() *checkpoint.Model { return p.m }

// TextToImage is Generate under its first name; it renders any request.
func (p *Pipeline) TextToImage(ctx context.Context, req Request, progress Progress) (*Result, error) {
	return p.Generate(ctx, req, progress)
}

// Generate renders one image: text-to-image when the request has neither
// an init image nor Interp, img2img with InitImage alone, inpainting with a
// Mask, outpainting with Outpaint, and an in-between frame with Interp. It
// stops between steps when ctx is done.
func (p *Pipeline) Generate(ctx context.Context, req Request, progress Progress) (*Result, error) {
	req = req.Defaults()
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if multiple := SizeMultiple(p.m); req.Width%multiple != 0 || req.Height%multiple != 0 {
		return nil, fmt.Errorf("pipeline: size %dx%d: this model needs multiples of %d", req.Width, req.Height, multiple)
	}
	if err := p.checkUNet(req); err != nil {
		return nil, err
	}
	var latents *backend.Tensor
	var err error
	switch {
	case req.Interp != nil:
		latents, err = p.interpolate(ctx, req, progress)
	case req.InitImage == nil:
		latents, err = p.textToImage(ctx, req, progress)
	case req.Mask == nil && req.Outpaint.IsZero() && !p.inpaintModel():
		latents, err = p.imageToImage(ctx, req, progress)
	default:
		latents, err = p.inpaint(ctx, req, progress)
	}
	if err != nil {
		return nil, err
	}
	return p.decode(req, latents)
}

// checkUNet refuses modes the model's UNet cannot run: a 9-channel
// inpainting UNet needs an image to condition on.
func (p *Pipeline) checkUNet(req Request) error {
	in, lc := p.m.UNetConfig.InChannels, p.m.VAEConfig.LatentChannels
	switch {
	case in == lc:
		return nil
	case !p.inpaintModel():
		return fmt.Errorf("pipeline: a UNet with %d input channels is not supported (want %d, or %d for inpainting)", in, lc, 2*lc+1)
	case req.InitImage == nil:
		return fmt.Errorf("pipeline: model %s is an inpainting model (%d-channel UNet): it needs an init image", p.m.Name, in)
	}
	return nil
}

// inpaintModel reports whether the UNet takes the latents, the mask and the
// masked image's latents stacked on channels (runwayml's 9-channel layout).
func (p *Pipeline) inpaintModel() bool {
	return p.m.UNetConfig.InChannels == 2*p.m.VAEConfig.LatentChannels+1
}

// run is what every mode sets up the same way.
type run struct {
	req     Request
	sampler scheduler.Sampler
	// gen is Seed's generator: it draws the starting noise, then the step
	// noise of ancestral samplers.
	gen   *rng.Generator
	shape []int // latents [1, C, H/f, W/f]
}

func (p *Pipeline) newRun(req Request) (*run, error) {
	sampler, err := scheduler.New(req.Sampler, req.Schedule, p.m.Scheduler, req.Steps)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	f := vaeFactor(p.m)
	shape := []int{1, p.m.VAEConfig.LatentChannels, req.Height / f, req.Width / f}
	return &run{req: req, sampler: sampler, gen: rng.New(req.Seed), shape: shape}, nil
}

// guided reports whether the run uses classifier-free guidance.
func (r *run) guided() bool { return r.req.CFGScale > 1 }

// randn draws the next N(0,1) latents from the run's generator.
func (p *Pipeline) randn(r *run) *backend.Tensor {
	return p.b.FromFloat32(r.gen.Randn(backend.NumElements(r.shape)), r.shape...)
}

// initialNoise is pure-noise starting latents: the next draw scaled by the
// sampler's initial sigma.
func (p *Pipeline) initialNoise(r *run) *backend.Tensor {
	return p.b.Scale(p.randn(r), float32(r.sampler.InitNoiseSigma()))
}

// textConditioning encodes the request's prompts into the UNet's text batch.
func (p *Pipeline) textConditioning(r *run) (*backend.Tensor, error) {
	cond, uncond, err := p.promptEmbeds(r.req.Prompt, r.req.NegativePrompt, r.req.ClipSkip, r.guided())
	if err != nil {
		return nil, err
	}
	return p.conditioning(cond, uncond), nil
}

// loop returns the shared loop's settings for r.
func (p *Pipeline) loop(r *run, cond *backend.Tensor, hook stepHook) loop {
	return loop{
		sampler: r.sampler, cond: cond, guided: r.guided(), cfg: float32(r.req.CFGScale),
		noise: func() *backend.Tensor { return p.randn(r) }, hook: hook,
	}
}

// textToImage denoises Seed's noise over the whole schedule.
func (p *Pipeline) textToImage(ctx context.Context, req Request, progress Progress) (*backend.Tensor, error) {
	r, err := p.newRun(req)
	if err != nil {
		return nil, err
	}
	cond, err := p.textConditioning(r)
	if err != nil {
		return nil, err
	}
	return p.denoise(ctx, p.loop(r, cond, nil), p.initialNoise(r), 0, progress)
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
