package pipeline

import (
	"context"
	"image"
	"image/color"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
)

// inpaint is diffusers' StableDiffusionInpaintPipeline (0.27.2) on the
// canvas and mask of the request (outpainting builds both, see canvas).
// With a 9-channel UNet the mask and the masked image's latents are fed to
// the UNet at every step; with a regular UNet the unmasked area of the
// latents is replaced by the init image's, noised to the next step's level,
// after every step. Without a mask (img2img on an inpainting model) the
// whole image is masked.
func (p *Pipeline) inpaint(ctx context.Context, req Request, progress Progress) (*backend.Tensor, error) {
	r, start, adder, cond, err := p.imageRun(req)
	if err != nil {
		return nil, err
	}
	canvas, mask := p.canvas(req)
	img := p.imageTensor(canvas)
	var latents *backend.Tensor
	var hook stepHook
	if p.inpaintModel() {
		latents, hook = p.concatStart(r, start, adder, img, mask)
	} else {
		latents, hook = p.blendStart(r, start, adder, img, mask)
	}
	return p.denoise(ctx, p.loop(r, cond, hook), latents, start, progress)
}

// canvas returns the image to inpaint and its binarised mask (1 =
// repaint, one value per pixel): the init image and the request's mask (all
// ones without one), or for outpainting the extended canvas and its mask.
func (p *Pipeline) canvas(req Request) (*image.NRGBA, []float32) {
	img := toNRGBA(req.InitImage)
	var mask []float32
	if req.Mask != nil {
		mask = binariseMask(req.Mask)
	} else {
		mask = make([]float32, img.Rect.Dx()*img.Rect.Dy())
		if req.Outpaint.IsZero() {
			fill(mask, 1)
		}
	}
	if req.Outpaint.IsZero() {
		return img, mask
	}
	f := vaeFactor(p.m)
	return extendCanvas(img, req.Outpaint, f), outpaintMask(mask, img.Rect.Dx(), img.Rect.Dy(), req.Outpaint, f)
}

// concatStart prepares a 9-channel UNet run. Draws, in diffusers' order: at
// strength 1 the starting noise, then the masked image's posterior sample;
// below 1 the init image's posterior sample, the noise added to it, then
// the masked image's sample. Ancestral step noise follows.
func (p *Pipeline) concatStart(r *run, start int, adder scheduler.NoiseAdder, img *backend.Tensor, mask []float32) (*backend.Tensor, stepHook) {
	var latents *backend.Tensor
	if r.req.Strength == 1 {
		latents = p.initialNoise(r)
	} else {
		init := p.encodeSample(img, r)
		latents = adder.AddNoise(p.b, init, p.randn(r), start)
	}
	masked := p.maskedImage(img, mask)
	h := &concatHook{b: p.b, masked: p.encodeSample(masked, r)}
	h.mask = p.b.FromFloat32(downsampleMask(mask, r, 1), 1, 1, r.shape[2], r.shape[3])
	return latents, h
}

// maskedImage is the image with the area to repaint set to 0 (diffusers:
// image * (mask < 0.5)).
func (p *Pipeline) maskedImage(img *backend.Tensor, mask []float32) *backend.Tensor {
	vals := p.b.ToFloat32(img)
	plane := len(mask)
	for i := range vals {
		if mask[i%plane] >= 0.5 {
			vals[i] = 0
		}
	}
	return p.b.FromFloat32(vals, img.Shape()...)
}

// concatHook feeds the mask and the masked image's latents to a 9-channel
// UNet next to the latents.
type concatHook struct {
	b      backend.Backend
	mask   *backend.Tensor // [1, 1, h, w]
	masked *backend.Tensor // [1, C, h, w]
}

func (h *concatHook) unetInput(x *backend.Tensor) *backend.Tensor {
	return h.b.Concat(1, x, h.mask, h.masked)
}

func (h *concatHook) afterStep(_ int, latents *backend.Tensor) *backend.Tensor { return latents }

// blendStart prepares a regular-UNet inpainting run. Draws, in diffusers'
// order: the init image's posterior sample, the noise (the starting noise
// at strength 1, else added to the sample), and a third draw for the
// masked image's posterior sample, which diffusers takes although a
// 4-channel UNet never reads it, so that ancestral step noise matches.
func (p *Pipeline) blendStart(r *run, start int, adder scheduler.NoiseAdder, img *backend.Tensor, mask []float32) (*backend.Tensor, stepHook) {
	b := p.b
	init := p.encodeSample(img, r)
	noise := p.randn(r)
	var latents *backend.Tensor
	if r.req.Strength == 1 {
		latents = b.Scale(noise, float32(r.sampler.InitNoiseSigma()))
	} else {
		latents = adder.AddNoise(b, init, noise, start)
	}
	r.gen.Randn(backend.NumElements(r.shape))
	m := downsampleMask(mask, r, r.shape[1])
	keep := make([]float32, len(m))
	for i, v := range m {
		keep[i] = 1 - v
	}
	return latents, &blendHook{
		b: b, adder: adder, init: init, noise: noise,
		mask: b.FromFloat32(m, r.shape...), keep: b.FromFloat32(keep, r.shape...),
		last: len(r.sampler.Timesteps()) - 1,
	}
}

// blendHook keeps the unmasked area of the latents on the init image's
// trajectory: after step i it is the init latents noised to the level of
// step i+1, and after the last step the init latents themselves.
type blendHook struct {
	b           backend.Backend
	adder       scheduler.NoiseAdder
	init, noise *backend.Tensor
	mask, keep  *backend.Tensor // mask and 1-mask on every latent channel
	last        int
}

func (h *blendHook) unetInput(x *backend.Tensor) *backend.Tensor { return x }

func (h *blendHook) afterStep(step int, latents *backend.Tensor) *backend.Tensor {
	b := h.b
	ref := h.init
	if step < h.last {
		ref = h.adder.AddNoise(b, h.init, h.noise, step+1)
	}
	kept, painted := b.Mul(h.keep, ref), b.Mul(h.mask, latents)
	out := b.Add(kept, painted)
	b.Release(kept)
	b.Release(painted)
	if ref != h.init {
		b.Release(ref)
	}
	return out
}

// binariseMask is diffusers' mask preprocessing: PIL's convert("L") luma,
// /255, then 1 where it is 0.5 or more (repaint) and 0 elsewhere.
func binariseMask(img image.Image) []float32 {
	b := img.Bounds()
	out := make([]float32, b.Dx()*b.Dy())
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			if float32(luma(img.At(b.Min.X+x, b.Min.Y+y)))/255 >= 0.5 {
				out[y*b.Dx()+x] = 1
			}
		}
	}
	return out
}

// luma is PIL's convert("L") of one pixel: gray levels as they are, colours
// by ITU-R 601-2 in PIL's 16-bit fixed point (L24 in libImaging/Convert.c),
// alpha ignored.
func luma(c color.Color) uint8 {
	if g, ok := c.(color.Gray); ok {
		return g.Y
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return uint8((uint32(n.R)*19595 + uint32(n.G)*38470 + uint32(n.B)*7471 + 0x8000) >> 16)
}

// downsampleMask is F.interpolate(mask, size=(H/f, W/f)) in mode
// "nearest": latent pixel (i, j) takes image pixel (i*f, j*f). The result
// is repeated channels times.
func downsampleMask(mask []float32, r *run, channels int) []float32 {
	h, w := r.shape[2], r.shape[3]
	f := r.req.Width / w
	plane := make([]float32, h*w)
	for i := 0; i < h; i++ {
		for j := 0; j < w; j++ {
			plane[i*w+j] = mask[i*f*r.req.Width+j*f]
		}
	}
	out := make([]float32, 0, channels*h*w)
	for range channels {
		out = append(out, plane...)
	}
	return out
}

func fill(v []float32, x float32) {
	for i := range v {
		v[i] = x
	}
}
