package pipeline

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
)

// imageToImage is diffusers' StableDiffusionImg2ImgPipeline (0.27.2): the
// init image's latents, noised to the level of the first step that
// strength keeps, denoised over the rest of the schedule. Draws from Seed's
// generator, in order: the VAE posterior sample of the init image, the
// noise added to it, then any ancestral step noise.
func (p *Pipeline) imageToImage(ctx context.Context, req Request, progress Progress) (*backend.Tensor, error) {
	r, start, adder, cond, err := p.imageRun(req)
	if err != nil {
		return nil, err
	}
	img := p.imageTensor(toNRGBA(req.InitImage))
	init := p.encodeSample(img, r)
	latents := adder.AddNoise(p.b, init, p.randn(r), start)
	return p.denoise(ctx, p.loop(r, cond, nil), latents, start, progress)
}

// imageRun sets up a run that starts from an image: the run, the first
// step strength keeps, the sampler's add_noise and the text conditioning.
func (p *Pipeline) imageRun(req Request) (r *run, start int, adder scheduler.NoiseAdder, cond *backend.Tensor, err error) {
	if r, err = p.newRun(req); err != nil {
		return nil, 0, nil, nil, err
	}
	if start, adder, err = strengthStart(r); err != nil {
		return nil, 0, nil, nil, err
	}
	if cond, err = p.textConditioning(r); err != nil {
		return nil, 0, nil, nil, err
	}
	return r, start, adder, cond, nil
}

// strengthStart returns the first step strength keeps (diffusers'
// get_timesteps: t_start = steps - min(int(steps*strength), steps)) and the
// sampler's add_noise.
func strengthStart(r *run) (int, scheduler.NoiseAdder, error) {
	steps, s := r.req.Steps, r.req.Strength
	kept := min(int(float64(steps)*s), steps)
	if kept < 1 {
		return 0, nil, fmt.Errorf("pipeline: strength %v with %d steps runs no step: raise the strength to at least %.3g or the steps", s, steps, 1/float64(steps))
	}
	adder, ok := r.sampler.(scheduler.NoiseAdder)
	if !ok {
		return 0, nil, fmt.Errorf("pipeline: sampler %s cannot noise an init image", r.req.Sampler)
	}
	return steps - kept, adder, nil
}

// toNRGBA returns img's pixels with non-premultiplied colour, its origin
// moved to (0, 0). Image inputs are read as opaque: alpha is dropped and
// the colour kept, as PIL's convert("RGB") does for the images diffusers
// is given (a fully transparent pixel of a premultiplied image is black).
func toNRGBA(img image.Image) *image.NRGBA {
	b := img.Bounds()
	if n, ok := img.(*image.NRGBA); ok && b.Min == (image.Point{}) {
		return n
	}
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			out.SetNRGBA(x, y, color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA))
		}
	}
	return out
}

// imageTensor is diffusers' VaeImageProcessor.preprocess of an RGB image:
// [1, 3, H, W] holding 2*(u8/255)-1 in float32.
func (p *Pipeline) imageTensor(img *image.NRGBA) *backend.Tensor {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	vals := make([]float32, 3*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := img.NRGBAAt(x, y)
			for ch, u := range []uint8{c.R, c.G, c.B} {
				v := float32(u) / 255
				vals[ch*w*h+y*w+x] = 2*v - 1
			}
		}
	}
	return p.b.FromFloat32(vals, 1, 3, h, w)
}

// encodeSample is diffusers' _encode_vae_image: a sample of the VAE
// posterior of img, mean + exp(logvar/2) * noise with noise the run's next
// draw, times the scaling factor.
func (p *Pipeline) encodeSample(img *backend.Tensor, r *run) *backend.Tensor {
	b := p.b
	mean, logvar := p.m.VAE.Encode(b, img)
	m, lv := b.ToFloat32(mean), b.ToFloat32(logvar)
	noise := r.gen.Randn(len(m))
	z := make([]float32, len(m))
	for i := range m {
		std := float32(math.Exp(float64(0.5 * lv[i])))
		z[i] = m[i] + float32(std*noise[i])
	}
	zt := b.FromFloat32(z, mean.Shape()...)
	b.Release(mean)
	b.Release(logvar)
	out := p.m.VAE.ScaleLatents(b, zt)
	b.Release(zt)
	return out
}
