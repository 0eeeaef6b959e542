package vae

import (
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// downBlock is diffusers' DownEncoderBlock2D: resnets, then (except at the
// deepest level) a stride-2 convolution that halves H and W.
type downBlock struct {
	resnets []*resnet
	down    *nn.Conv2d
}

// encoder is diffusers' Encoder: image [N, in, H, W] to the moments
// [N, 2*latent, H/f, W/f] (mean and log-variance stacked on channels).
type encoder struct {
	convIn  nn.Conv2d
	down    []downBlock
	mid     *midBlock
	normOut nn.GroupNorm
	convOut nn.Conv2d
}

// loadEncoder reads encoder.* for cfg.
func loadEncoder(l *nn.Loader, cfg Config) *encoder {
	g, ch := cfg.NormNumGroups, cfg.BlockOutChannels
	e := &encoder{convIn: l.Conv2d("encoder.conv_in", cfg.InChannels, ch[0], 3, 1, 1)}
	in := ch[0]
	for i, out := range ch {
		p := fmt.Sprintf("encoder.down_blocks.%d", i)
		var blk downBlock
		for j := range cfg.LayersPerBlock {
			blk.resnets = append(blk.resnets, loadResnet(l, fmt.Sprintf("%s.resnets.%d", p, j), in, out, g))
			in = out
		}
		if i < len(ch)-1 {
			// Downsample2D with padding=0: the input is padded on the
			// bottom and right only, then convolved with stride 2.
			conv := l.Conv2d(p+".downsamplers.0.conv", out, out, 3, 2, 0)
			conv.Opt.Pad = [4]int{0, 1, 0, 1}
			blk.down = &conv
		}
		e.down = append(e.down, blk)
	}
	last := ch[len(ch)-1]
	e.mid = loadMidBlock(l, "encoder.mid_block", last, g, cfg.MidBlockAddAttention)
	e.normOut = l.GroupNorm("encoder.conv_norm_out", last, g, normEps)
	e.convOut = l.Conv2d("encoder.conv_out", last, 2*cfg.LatentChannels, 3, 1, 1)
	return e
}

// forward maps image [N, in, H, W] to moments [N, 2*latent, H/f, W/f].
func (e *encoder) forward(b backend.Backend, image *backend.Tensor) *backend.Tensor {
	x := e.convIn.Forward(b, image)
	for _, blk := range e.down {
		for _, r := range blk.resnets {
			y := r.forward(b, x)
			b.Release(x)
			x = y
		}
		if blk.down != nil {
			y := blk.down.Forward(b, x)
			b.Release(x)
			x = y
		}
	}
	y := e.mid.forward(b, x)
	b.Release(x)
	x = e.normOut.Forward(b, y, true)
	b.Release(y)
	out := e.convOut.Forward(b, x)
	b.Release(x)
	return out
}
