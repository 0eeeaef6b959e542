package unet

import (
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// Fixed epsilons of diffusers' Transformer2DModel: its input GroupNorm uses
// 1e-6, the LayerNorms of BasicTransformerBlock keep the default 1e-5.
const (
	transformerNormEps = 1e-6
	layerNormEps       = 1e-5
)

// attention is diffusers' Attention with the classic processor: bias-free
// q/k/v projections, scaled dot-product attention per head, output Linear.
type attention struct {
	toQ, toK, toV, toOut nn.Linear
	opt                  backend.AttentionOptions
}

func loadAttention(l weightLoader, prefix string, dim, ctxDim, inner, heads int, upcast bool) attention {
	return attention{
		toQ:   l.Linear(prefix+".to_q", dim, inner, false),
		toK:   l.Linear(prefix+".to_k", ctxDim, inner, false),
		toV:   l.Linear(prefix+".to_v", ctxDim, inner, false),
		toOut: l.Linear(prefix+".to_out.0", inner, dim, true),
		opt:   backend.AttentionOptions{Heads: heads, Upcast: upcast},
	}
}

// forward attends from x [N, L, dim] to ctx [N, Lc, ctxDim] (ctx = x for
// self-attention).
func (a attention) forward(b backend.Backend, x, ctx *backend.Tensor) *backend.Tensor {
	q := a.toQ.Forward(b, x)
	k := a.toK.Forward(b, ctx)
	v := a.toV.Forward(b, ctx)
	o := b.Attention(q, k, v, a.opt)
	b.Release(q)
	b.Release(k)
	b.Release(v)
	out := a.toOut.Forward(b, o)
	b.Release(o)
	return out
}

// transformerBlock is diffusers' BasicTransformerBlock (layer_norm variant):
// self-attention, cross-attention and a GEGLU feed-forward, each pre-normed
// and residual.
type transformerBlock struct {
	norm1, norm2, norm3 nn.LayerNorm
	attn1, attn2        attention
	ffIn, ffOut         nn.Linear // ff.net.0.proj (to 2 x 4*dim, GEGLU), ff.net.2
}

func loadTransformerBlock(l weightLoader, prefix string, dim, ctxDim, heads int, upcast bool) transformerBlock {
	ff := 4 * dim
	return transformerBlock{
		norm1: l.LayerNorm(prefix+".norm1", dim, layerNormEps),
		attn1: loadAttention(l, prefix+".attn1", dim, dim, dim, heads, upcast),
		norm2: l.LayerNorm(prefix+".norm2", dim, layerNormEps),
		attn2: loadAttention(l, prefix+".attn2", dim, ctxDim, dim, heads, upcast),
		norm3: l.LayerNorm(prefix+".norm3", dim, layerNormEps),
		ffIn:  l.Linear(prefix+".ff.net.0.proj", dim, 2*ff, true),
		ffOut: l.Linear(prefix+".ff.net.2", ff, dim, true),
	}
}

// forward runs the block on x [N, L, dim]; x is left alone.
func (t transformerBlock) forward(b backend.Backend, x, ctx *backend.Tensor) *backend.Tensor {
	n := t.norm1.Forward(b, x)
	a := t.attn1.forward(b, n, n)
	b.Release(n)
	h := b.Add(a, x)
	b.Release(a)

	n = t.norm2.Forward(b, h)
	a = t.attn2.forward(b, n, ctx)
	b.Release(n)
	h2 := b.Add(a, h)
	b.Release(a)
	b.Release(h)

	n = t.norm3.Forward(b, h2)
	f := t.ffIn.Forward(b, n)
	b.Release(n)
	g := b.GEGLU(f)
	b.Release(f)
	f = t.ffOut.Forward(b, g)
	b.Release(g)
	out := b.Add(f, h2)
	b.Release(f)
	b.Release(h2)
	return out
}

// transformer is diffusers' Transformer2DModel for continuous inputs:
// GroupNorm, proj_in (1x1 conv, or Linear on tokens when linear), the
// transformer blocks over H*W tokens, proj_out, plus the input.
type transformer struct {
	norm            nn.GroupNorm
	linear          bool
	projInConv      nn.Conv2d
	projOutConv     nn.Conv2d
	projIn, projOut nn.Linear
	blocks          []transformerBlock
	inner           int
}

func loadTransformer(l weightLoader, prefix string, ch, heads, depth int, cfg Config) *transformer {
	inner := heads * (ch / heads) // diffusers: heads x (channels // heads)
	t := &transformer{
		norm:   l.GroupNorm(prefix+".norm", ch, cfg.NormNumGroups, transformerNormEps),
		linear: cfg.UseLinearProjection,
		inner:  inner,
	}
	if t.linear {
		t.projIn = l.Linear(prefix+".proj_in", ch, inner, true)
	} else {
		t.projInConv = l.Conv2d(prefix+".proj_in", ch, inner, 1, 1, 0)
	}
	for k := range depth {
		t.blocks = append(t.blocks, loadTransformerBlock(l, fmt.Sprintf("%s.transformer_blocks.%d", prefix, k), inner, cfg.CrossAttentionDim, heads, cfg.UpcastAttention))
	}
	if t.linear {
		t.projOut = l.Linear(prefix+".proj_out", inner, ch, true)
	} else {
		t.projOutConv = l.Conv2d(prefix+".proj_out", inner, ch, 1, 1, 0)
	}
	return t
}

// projectIn normalises x [N, C, H, W] and returns its tokens [N, H*W, inner].
func (t *transformer) projectIn(b backend.Backend, x *backend.Tensor) *backend.Tensor {
	n, h, w := x.Dim(0), x.Dim(2), x.Dim(3)
	g := t.norm.Forward(b, x, false)
	if t.linear {
		p := b.Permute(g, 0, 2, 3, 1)
		b.Release(g)
		out := t.projIn.Forward(b, p.Reshape(n, h*w, -1))
		b.Release(p)
		return out
	}
	c := t.projInConv.Forward(b, g)
	b.Release(g)
	p := b.Permute(c, 0, 2, 3, 1)
	b.Release(c)
	return p.Reshape(n, h*w, t.inner)
}

// projectOut turns tokens [N, H*W, inner] back into [N, C, H, W].
func (t *transformer) projectOut(b backend.Backend, tok *backend.Tensor, h, w int) *backend.Tensor {
	n := tok.Dim(0)
	if t.linear {
		o := t.projOut.Forward(b, tok)
		p := b.Permute(o.Reshape(n, h, w, -1), 0, 3, 1, 2)
		b.Release(o)
		return p
	}
	p := b.Permute(tok.Reshape(n, h, w, t.inner), 0, 3, 1, 2)
	o := t.projOutConv.Forward(b, p)
	b.Release(p)
	return o
}

// forward runs the transformer on x [N, C, H, W] with context ctx
// [N, L, cross_attention_dim]; x is left alone.
func (t *transformer) forward(b backend.Backend, x, ctx *backend.Tensor) *backend.Tensor {
	tok := t.projectIn(b, x)
	for _, blk := range t.blocks {
		next := blk.forward(b, tok, ctx)
		b.Release(tok)
		tok = next
	}
	o := t.projectOut(b, tok, x.Dim(2), x.Dim(3))
	b.Release(tok)
	out := b.Add(o, x)
	b.Release(o)
	return out
}
