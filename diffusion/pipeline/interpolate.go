package pipeline

import (
	"context"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/interp"
	"github.com/latentfarm/latentfarm/diffusion/rng"
)

// interpolate renders an in-between frame as diffusers' community
// interpolate_stable_diffusion.py does: the starting noise is the slerp of
// the first draws of Seed's and Interp.Seed's generators, the embeddings
// the lerp (or slerp) of the two keys' prompts and of their negative
// prompts, then the text-to-image loop. Ancestral step noise comes from
// Seed's generator after its first draw. At T = 0 and T = 1 the frame is
// exactly the text-to-image render of the key there, seed, step noise and
// all, so a key renders the same as the in-betweens that end on it.
func (p *Pipeline) interpolate(ctx context.Context, req Request, progress Progress) (*backend.Tensor, error) {
	in := req.Interp
	switch in.T {
	case 0:
		return p.textToImage(ctx, req, progress)
	case 1:
		key := req
		key.Prompt, key.NegativePrompt, key.Seed = in.Prompt, in.NegativePrompt, in.Seed
		return p.textToImage(ctx, key, progress)
	}
	r, err := p.newRun(req)
	if err != nil {
		return nil, err
	}
	guided := r.guided()
	condA, uncondA, err := p.promptEmbeds(req.Prompt, req.NegativePrompt, req.ClipSkip, guided)
	if err != nil {
		return nil, err
	}
	condB, uncondB, err := p.promptEmbeds(in.Prompt, in.NegativePrompt, req.ClipSkip, guided)
	if err != nil {
		return nil, err
	}
	cond := p.mixEmbeds(in, condA, condB)
	var uncond *backend.Tensor
	if guided {
		uncond = p.mixEmbeds(in, uncondA, uncondB)
	}
	n := backend.NumElements(r.shape)
	noise := interp.Slerp(in.T, r.gen.Randn(n), rng.New(in.Seed).Randn(n))
	latents := p.b.Scale(p.b.FromFloat32(noise, r.shape...), float32(r.sampler.InitNoiseSigma()))
	return p.denoise(ctx, p.loop(r, p.conditioning(cond, uncond), nil), latents, 0, progress)
}

// mixEmbeds interpolates two prompt embeddings at in.T.
func (p *Pipeline) mixEmbeds(in *Interpolation, a, b *backend.Tensor) *backend.Tensor {
	mix := interp.Lerp
	if in.SlerpEmbeddings {
		mix = interp.Slerp
	}
	return p.b.FromFloat32(mix(in.T, p.b.ToFloat32(a), p.b.ToFloat32(b)), a.Shape()...)
}
