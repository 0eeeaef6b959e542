// Package vae implements diffusers' AutoencoderKL, the variational
// autoencoder that maps images to Stable Diffusion's latent space and back,
// with diffusers' weight names. It runs on any backend.Backend; it must
// never read files, know checkpoint layouts, or sample noise itself.
package vae

import (
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// Log-variance bounds of diffusers' DiagonalGaussianDistribution.
const (
	logvarMin = -30
	logvarMax = 20
)

// VAE is an AutoencoderKL.
type VAE struct {
	cfg       Config
	enc       *encoder
	dec       *decoder
	quant     *nn.Conv2d // quant_conv, nil when use_quant_conv is false
	postQuant *nn.Conv2d // post_quant_conv, nil when use_post_quant_conv is false
}

// New builds the autoencoder from weights under diffusers' names
// (encoder.*, decoder.*, quant_conv, post_quant_conv).
func New(cfg Config, w nn.Weights) (*VAE, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := nn.NewLoader(w)
	v := &VAE{cfg: cfg, enc: loadEncoder(l, cfg), dec: loadDecoder(l, cfg)}
	lc := cfg.LatentChannels
	if cfg.UseQuantConv {
		c := l.Conv2d("quant_conv", 2*lc, 2*lc, 1, 1, 0)
		v.quant = &c
	}
	if cfg.UsePostQuantConv {
		c := l.Conv2d("post_quant_conv", lc, lc, 1, 1, 0)
		v.postQuant = &c
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	return v, nil
}

// Config returns the configuration the VAE was built with.
func (v *VAE) Config() Config { return v.cfg }

// Factor is how many image pixels one latent pixel spans per side (8 for SD).
func (v *VAE) Factor() int { return 1 << (len(v.cfg.BlockOutChannels) - 1) }

// Decode maps latents [N, latent_channels, h, w] to images
// [N, out_channels, h*Factor, w*Factor] in about [-1, 1]. The latents must
// already be divided by the scaling factor (see UnscaleLatents): Decode
// takes the encoder's latent space, not the UNet's.
func (v *VAE) Decode(b backend.Backend, latents *backend.Tensor) *backend.Tensor {
	if latents.Rank() != 4 || latents.Dim(1) != v.cfg.LatentChannels {
		panic(fmt.Sprintf("vae: Decode: latents %v, want [N, %d, h, w]", latents.Shape(), v.cfg.LatentChannels))
	}
	z := latents
	if v.postQuant != nil {
		z = v.postQuant.Forward(b, latents)
	}
	img := v.dec.forward(b, z)
	if z != latents {
		b.Release(z)
	}
	return img
}

// Encode maps images [N, in_channels, H, W] in [-1, 1] to the mean and the
// log-variance (clamped to [-30, 20]) of the latent distribution, each
// [N, latent_channels, H/Factor, W/Factor]. They are unscaled: multiply a
// sample by the scaling factor (ScaleLatents) before giving it to a UNet.
func (v *VAE) Encode(b backend.Backend, image *backend.Tensor) (mean, logvar *backend.Tensor) {
	if image.Rank() != 4 || image.Dim(1) != v.cfg.InChannels {
		panic(fmt.Sprintf("vae: Encode: image %v, want [N, %d, H, W]", image.Shape(), v.cfg.InChannels))
	}
	moments := v.enc.forward(b, image)
	if v.quant != nil {
		q := v.quant.Forward(b, moments)
		b.Release(moments)
		moments = q
	}
	lc := v.cfg.LatentChannels
	mean = b.Slice(moments, 1, 0, lc)
	raw := b.Slice(moments, 1, lc, 2*lc)
	b.Release(moments)
	// The Backend has no clamp; the log-variance is small (latent size),
	// so it is clamped on the host.
	vals := b.ToFloat32(raw)
	for i, x := range vals {
		vals[i] = min(max(x, logvarMin), logvarMax)
	}
	logvar = b.FromFloat32(vals, raw.Shape()...)
	b.Release(raw)
	return mean, logvar
}

// ScaleLatents maps encoder latents to UNet latents: (z - shift) * scale.
func (v *VAE) ScaleLatents(b backend.Backend, z *backend.Tensor) *backend.Tensor {
	if v.cfg.ShiftFactor == 0 {
		return b.Scale(z, float32(v.cfg.ScalingFactor))
	}
	s := float32(v.cfg.ScalingFactor)
	shift := constant(b, z.Shape(), -float32(v.cfg.ShiftFactor)*s)
	out := b.LinComb([]float32{s, 1}, z, shift)
	b.Release(shift)
	return out
}

// UnscaleLatents maps UNet latents back to the encoder's latent space, the
// input Decode expects: z / scale + shift.
func (v *VAE) UnscaleLatents(b backend.Backend, z *backend.Tensor) *backend.Tensor {
	inv := float32(1 / v.cfg.ScalingFactor)
	if v.cfg.ShiftFactor == 0 {
		return b.Scale(z, inv)
	}
	shift := constant(b, z.Shape(), float32(v.cfg.ShiftFactor))
	out := b.LinComb([]float32{inv, 1}, z, shift)
	b.Release(shift)
	return out
}

// constant returns a tensor of the given shape filled with c.
func constant(b backend.Backend, shape []int, c float32) *backend.Tensor {
	vals := make([]float32, backend.NumElements(shape))
	for i := range vals {
		vals[i] = c
	}
	return b.FromFloat32(vals, shape...)
}
