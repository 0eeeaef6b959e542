package clip

import (
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// encoderLayer is one pre-norm transformer block of the CLIP text tower
// (transformers' CLIPEncoderLayer): causal self-attention, then an MLP.
type encoderLayer struct {
	norm1, norm2 nn.LayerNorm
	q, k, v, out nn.Linear
	fc1, fc2     nn.Linear
	heads        int
	act          backend.Activation
}

// loadLayer reads text_model.encoder.layers.<i>.* from l.
func loadLayer(l *nn.Loader, cfg Config, act backend.Activation, i int) *encoderLayer {
	p := fmt.Sprintf("text_model.encoder.layers.%d.", i)
	d, ff, eps := cfg.HiddenSize, cfg.IntermediateSize, float32(cfg.LayerNormEps)
	return &encoderLayer{
		norm1: l.LayerNorm(p+"layer_norm1", d, eps),
		q:     l.Linear(p+"self_attn.q_proj", d, d, true),
		k:     l.Linear(p+"self_attn.k_proj", d, d, true),
		v:     l.Linear(p+"self_attn.v_proj", d, d, true),
		out:   l.Linear(p+"self_attn.out_proj", d, d, true),
		norm2: l.LayerNorm(p+"layer_norm2", d, eps),
		fc1:   l.Linear(p+"mlp.fc1", d, ff, true),
		fc2:   l.Linear(p+"mlp.fc2", ff, d, true),
		heads: cfg.NumAttentionHeads,
		act:   act,
	}
}

// forward maps x [B, L, D] to the layer's output [B, L, D].
func (m *encoderLayer) forward(b backend.Backend, x *backend.Tensor) *backend.Tensor {
	h := m.norm1.Forward(b, x)
	q, k, v := m.q.Forward(b, h), m.k.Forward(b, h), m.v.Forward(b, h)
	b.Release(h)
	a := b.Attention(q, k, v, backend.AttentionOptions{Heads: m.heads, Causal: true})
	b.Release(q)
	b.Release(k)
	b.Release(v)
	o := m.out.Forward(b, a)
	b.Release(a)
	x = b.Add(x, o)
	b.Release(o)

	h = m.norm2.Forward(b, x)
	f := m.fc1.Forward(b, h)
	b.Release(h)
	g := b.Activate(f, m.act)
	b.Release(f)
	o = m.fc2.Forward(b, g)
	b.Release(g)
	y := b.Add(x, o)
	b.Release(o)
	b.Release(x)
	return y
}
