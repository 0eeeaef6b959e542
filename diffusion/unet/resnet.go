package unet

import (
	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// resnet is diffusers' ResnetBlock2D with additive time conditioning:
// norm1-SiLU-conv1, + time projection, norm2-SiLU-conv2, + (shortcut) input,
// divided by the output scale factor.
type resnet struct {
	norm1, norm2 nn.GroupNorm
	conv1, conv2 nn.Conv2d
	timeProj     nn.Linear
	shortcut     *nn.Conv2d // 1x1, only when the channel count changes
	invScale     float32    // 1 / output_scale_factor
}

func loadResnet(l weightLoader, prefix string, in, out, temb int, cfg Config, scale float64) resnet {
	eps := float32(cfg.NormEps)
	r := resnet{
		norm1:    l.GroupNorm(prefix+".norm1", in, cfg.NormNumGroups, eps),
		conv1:    l.Conv2d(prefix+".conv1", in, out, 3, 1, 1),
		timeProj: l.Linear(prefix+".time_emb_proj", temb, out, true),
		norm2:    l.GroupNorm(prefix+".norm2", out, cfg.NormNumGroups, eps),
		conv2:    l.Conv2d(prefix+".conv2", out, out, 3, 1, 1),
		invScale: float32(1 / scale),
	}
	if in != out {
		sc := l.Conv2d(prefix+".conv_shortcut", in, out, 1, 1, 0)
		r.shortcut = &sc
	}
	return r
}

// forward runs the block on x [N, C, H, W]; tembAct is SiLU(time embedding)
// [N, temb], shared by every resnet of the UNet. x is left alone.
func (r resnet) forward(b backend.Backend, x, tembAct *backend.Tensor) *backend.Tensor {
	h := r.norm1.Forward(b, x, true)
	h2 := r.conv1.Forward(b, h)
	b.Release(h)
	t := r.timeProj.Forward(b, tembAct)
	h = b.AddChannels(h2, t)
	b.Release(h2)
	b.Release(t)
	h2 = r.norm2.Forward(b, h, true)
	b.Release(h)
	h = r.conv2.Forward(b, h2)
	b.Release(h2)
	skip := x
	if r.shortcut != nil {
		skip = r.shortcut.Forward(b, x)
	}
	out := b.Add(skip, h)
	b.Release(h)
	if skip != x {
		b.Release(skip)
	}
	if r.invScale != 1 {
		scaled := b.Scale(out, r.invScale)
		b.Release(out)
		out = scaled
	}
	return out
}

// downsample is diffusers' Downsample2D with a convolution: 3x3, stride 2.
type downsample struct{ conv nn.Conv2d }

func loadDownsample(l weightLoader, prefix string, ch, pad int) downsample {
	return downsample{conv: l.Conv2d(prefix+".conv", ch, ch, 3, 2, pad)}
}

func (d downsample) forward(b backend.Backend, x *backend.Tensor) *backend.Tensor {
	return d.conv.Forward(b, x)
}

// upsample is diffusers' Upsample2D with a convolution: nearest-neighbour
// resize, then 3x3 conv.
type upsample struct{ conv nn.Conv2d }

func loadUpsample(l weightLoader, prefix string, ch int) upsample {
	return upsample{conv: l.Conv2d(prefix+".conv", ch, ch, 3, 1, 1)}
}

// forward resizes x [N, C, h, w] to [N, C, outH, outW] and convolves. The
// output is 2h x 2w, or the skip connection's size when the input was odd
// (outH = 2h - 1): torch's nearest resize from h to 2h-1 picks source row
// floor(i * h / (2h-1)) = floor(i/2), i.e. the 2x upsample with its last row
// dropped, so doubling then cropping matches diffusers' upsample_size path.
func (u upsample) forward(b backend.Backend, x *backend.Tensor, outH, outW int) *backend.Tensor {
	h := b.UpsampleNearest2x(x)
	if outH < h.Dim(2) {
		c := b.Slice(h, 2, 0, outH)
		b.Release(h)
		h = c
	}
	if outW < h.Dim(3) {
		c := b.Slice(h, 3, 0, outW)
		b.Release(h)
		h = c
	}
	out := u.conv.Forward(b, h)
	b.Release(h)
	return out
}
