package vae

import (
	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// attention is the single-head spatial self-attention of the mid block
// (diffusers' Attention with residual_connection): every pixel attends to
// every other, the head as wide as the channels.
type attention struct {
	norm         nn.GroupNorm
	q, k, v, out nn.Linear
}

// loadAttention reads prefix.{group_norm,to_q,to_k,to_v,to_out.0}, or the
// names diffusers used before 0.15 (query, key, value, proj_attn).
func loadAttention(l *nn.Loader, prefix string, ch, groups int) *attention {
	q, k, v, out := ".to_q", ".to_k", ".to_v", ".to_out.0"
	if !l.Has(prefix+q+".weight") && l.Has(prefix+".query.weight") {
		q, k, v, out = ".query", ".key", ".value", ".proj_attn"
	}
	return &attention{
		norm: l.GroupNorm(prefix+".group_norm", ch, groups, normEps),
		q:    l.Linear(prefix+q, ch, ch, true),
		k:    l.Linear(prefix+k, ch, ch, true),
		v:    l.Linear(prefix+v, ch, ch, true),
		out:  l.Linear(prefix+out, ch, ch, true),
	}
}

// forward maps x [N, C, H, W] to x + attention(norm(x)).
func (a *attention) forward(b backend.Backend, x *backend.Tensor) *backend.Tensor {
	n, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	normed := a.norm.Forward(b, x, false)
	seq := b.Permute(normed.Reshape(n, c, h*w), 0, 2, 1) // [N, HW, C]
	b.Release(normed)
	q, k, v := a.q.Forward(b, seq), a.k.Forward(b, seq), a.v.Forward(b, seq)
	b.Release(seq)
	att := b.Attention(q, k, v, backend.AttentionOptions{Heads: 1})
	b.Release(q)
	b.Release(k)
	b.Release(v)
	o := a.out.Forward(b, att)
	b.Release(att)
	img := b.Permute(o, 0, 2, 1).Reshape(n, c, h, w)
	b.Release(o)
	res := b.Add(x, img)
	b.Release(img)
	return res
}
