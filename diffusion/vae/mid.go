package vae

import (
	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// midBlock is diffusers' UNetMidBlock2D without a time embedding:
// resnet, optional attention, resnet, at the deepest resolution.
type midBlock struct {
	res0, res1 *resnet
	attn       *attention // nil when mid_block_add_attention is false
}

// loadMidBlock reads prefix.resnets.{0,1} and prefix.attentions.0.
func loadMidBlock(l *nn.Loader, prefix string, ch, groups int, withAttention bool) *midBlock {
	m := &midBlock{res0: loadResnet(l, prefix+".resnets.0", ch, ch, groups)}
	if withAttention {
		m.attn = loadAttention(l, prefix+".attentions.0", ch, groups)
	}
	m.res1 = loadResnet(l, prefix+".resnets.1", ch, ch, groups)
	return m
}

// forward applies the block; x is left intact.
func (m *midBlock) forward(b backend.Backend, x *backend.Tensor) *backend.Tensor {
	h := m.res0.forward(b, x)
	if m.attn != nil {
		t := m.attn.forward(b, h)
		b.Release(h)
		h = t
	}
	out := m.res1.forward(b, h)
	b.Release(h)
	return out
}
