package vae

import (
	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// normEps is the GroupNorm epsilon of every norm in the autoencoder
// (diffusers' Encoder/Decoder pass resnet_eps=1e-6).
const normEps = 1e-6

// resnet is diffusers' ResnetBlock2D without a time embedding:
// x + conv2(silu(norm2(conv1(silu(norm1(x)))))), with a 1x1 convolution on
// the shortcut when the channel count changes.
type resnet struct {
	norm1, norm2 nn.GroupNorm
	conv1, conv2 nn.Conv2d
	shortcut     *nn.Conv2d
}

// loadResnet reads prefix.{norm1,conv1,norm2,conv2,conv_shortcut}.
func loadResnet(l *nn.Loader, prefix string, in, out, groups int) *resnet {
	r := &resnet{
		norm1: l.GroupNorm(prefix+".norm1", in, groups, normEps),
		conv1: l.Conv2d(prefix+".conv1", in, out, 3, 1, 1),
		norm2: l.GroupNorm(prefix+".norm2", out, groups, normEps),
		conv2: l.Conv2d(prefix+".conv2", out, out, 3, 1, 1),
	}
	if in != out {
		sc := l.Conv2d(prefix+".conv_shortcut", in, out, 1, 1, 0)
		r.shortcut = &sc
	}
	return r
}

// forward maps x [N, in, H, W] to [N, out, H, W]; x is left intact.
func (r *resnet) forward(b backend.Backend, x *backend.Tensor) *backend.Tensor {
	h := r.norm1.Forward(b, x, true)
	t := r.conv1.Forward(b, h)
	b.Release(h)
	h = r.norm2.Forward(b, t, true)
	b.Release(t)
	t = r.conv2.Forward(b, h)
	b.Release(h)
	skip := x
	if r.shortcut != nil {
		skip = r.shortcut.Forward(b, x)
	}
	out := b.Add(skip, t)
	b.Release(t)
	if skip != x {
		b.Release(skip)
	}
	return out
}
