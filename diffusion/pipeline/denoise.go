package pipeline

import (
	"context"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
)

// loop is what every mode's denoising run shares: the sampler, the text
// conditioning and where ancestral samplers get their step noise.
type loop struct {
	sampler scheduler.Sampler
	// cond is [negative, prompt] when guided, else [prompt].
	cond   *backend.Tensor
	guided bool
	cfg    float32
	// noise draws N(0,1) latents for ancestral samplers.
	noise func() *backend.Tensor
	// hook adapts the loop to inpainting; nil for the other modes.
	hook stepHook
}

// stepHook is how inpainting changes the shared loop.
type stepHook interface {
	// unetInput returns the UNet input for the scaled latents x of one
	// CFG half (the 9-channel concat); x itself for other models.
	unetInput(x *backend.Tensor) *backend.Tensor
	// afterStep returns the latents to carry on with after the sampler's
	// step (the blended-inpainting replacement of the unmasked area).
	afterStep(step int, latents *backend.Tensor) *backend.Tensor
}

// denoise runs the sampler from step start to the end of its schedule on
// latents, the UNet batch being [negative, prompt] when guided. It stops
// between steps when ctx is done and reports each step to progress,
// counting from start.
func (p *Pipeline) denoise(ctx context.Context, l loop, latents *backend.Tensor, start int, progress Progress) (*backend.Tensor, error) {
	b := p.b
	ts := l.sampler.Timesteps()
	total := len(ts) - start
	for i := start; i < len(ts); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := ts[i]
		x := l.sampler.ScaleModelInput(b, latents, i)
		if l.hook != nil {
			x = l.hook.unetInput(x)
		}
		var eps *backend.Tensor
		if l.guided {
			out := p.m.UNet.Forward(b, b.Concat(0, x, x), []float64{t, t}, l.cond)
			uncond, text := b.Slice(out, 0, 0, 1), b.Slice(out, 0, 1, 2)
			eps = b.LinComb([]float32{1 - l.cfg, l.cfg}, uncond, text)
		} else {
			eps = p.m.UNet.Forward(b, x, []float64{t}, l.cond)
		}
		latents = l.sampler.Step(b, eps, i, latents, l.noise)
		if l.hook != nil {
			latents = l.hook.afterStep(i, latents)
		}
		if progress != nil {
			progress(i-start+1, total)
		}
	}
	return latents, nil
}
