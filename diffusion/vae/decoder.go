package vae

import (
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// upBlock is diffusers' UpDecoderBlock2D: layers_per_block+1 resnets, then
// (except at full resolution) nearest 2x upsampling and a 3x3 convolution.
type upBlock struct {
	resnets []*resnet
	up      *nn.Conv2d
}

// decoder is diffusers' Decoder: latents [N, latent, h, w] to the image
// [N, out, h*f, w*f].
type decoder struct {
	convIn  nn.Conv2d
	mid     *midBlock
	up      []upBlock
	normOut nn.GroupNorm
	convOut nn.Conv2d
}

// loadDecoder reads decoder.* for cfg.
func loadDecoder(l *nn.Loader, cfg Config) *decoder {
	g, ch := cfg.NormNumGroups, cfg.BlockOutChannels
	n := len(ch)
	d := &decoder{convIn: l.Conv2d("decoder.conv_in", cfg.LatentChannels, ch[n-1], 3, 1, 1)}
	d.mid = loadMidBlock(l, "decoder.mid_block", ch[n-1], g, cfg.MidBlockAddAttention)
	in := ch[n-1]
	for i := range n {
		out := ch[n-1-i] // up blocks walk block_out_channels backwards
		p := fmt.Sprintf("decoder.up_blocks.%d", i)
		var blk upBlock
		for j := range cfg.LayersPerBlock + 1 {
			blk.resnets = append(blk.resnets, loadResnet(l, fmt.Sprintf("%s.resnets.%d", p, j), in, out, g))
			in = out
		}
		if i < n-1 {
			conv := l.Conv2d(p+".upsamplers.0.conv", out, out, 3, 1, 1)
			blk.up = &conv
		}
		d.up = append(d.up, blk)
	}
	d.normOut = l.GroupNorm("decoder.conv_norm_out", ch[0], g, normEps)
	d.convOut = l.Conv2d("decoder.conv_out", ch[0], cfg.OutChannels, 3, 1, 1)
	return d
}

// forward maps z [N, latent, h, w] to the image [N, out, h*f, w*f].
func (d *decoder) forward(b backend.Backend, z *backend.Tensor) *backend.Tensor {
	x := d.convIn.Forward(b, z)
	y := d.mid.forward(b, x)
	b.Release(x)
	x = y
	for _, blk := range d.up {
		for _, r := range blk.resnets {
			y := r.forward(b, x)
			b.Release(x)
			x = y
		}
		if blk.up != nil {
			u := b.UpsampleNearest2x(x)
			b.Release(x)
			x = blk.up.Forward(b, u)
			b.Release(u)
		}
	}
	y = d.normOut.Forward(b, x, true)
	b.Release(x)
	out := d.convOut.Forward(b, y)
	b.Release(y)
	return out
}
