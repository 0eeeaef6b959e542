// Package clip implements the CLIP text encoders Stable Diffusion conditions
// on (OpenAI CLIP ViT-L/14 for SD1.x, OpenCLIP ViT-H/14 for SD2.x) with
// transformers' CLIPTextModel weight names. It turns token ids into prompt
// embeddings using backend operations only; it must never tokenize text,
// read files or know about checkpoints' on-disk layouts.
package clip

import (
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// TextEncoder is a CLIP text transformer (transformers' CLIPTextModel).
type TextEncoder struct {
	cfg       Config
	tokenEmb  *backend.Tensor // [vocab, D]
	posEmb    *backend.Tensor // [max positions, D]
	layers    []*encoderLayer
	finalNorm nn.LayerNorm
}

// Output holds what one forward pass can report.
type Output struct {
	// LastHidden is final_layer_norm(output of the last layer) [B, L, D]:
	// SD's prompt embedding.
	LastHidden *backend.Tensor
	// Pooled is LastHidden at each sequence's end-of-text position [B, D].
	Pooled *backend.Tensor
	// Hidden is transformers' hidden_states: the embeddings, then the
	// output of every layer before final_layer_norm; nil unless asked for.
	Hidden []*backend.Tensor
}

// New builds a text encoder from weights under transformers' names
// (text_model.embeddings.token_embedding.weight, ...). Tensors it does not
// use, such as text_model.embeddings.position_ids, are ignored.
func New(cfg Config, w nn.Weights) (*TextEncoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	act, _ := cfg.Activation()
	l := nn.NewLoader(w)
	d := cfg.HiddenSize
	e := &TextEncoder{
		cfg:      cfg,
		tokenEmb: l.Get("text_model.embeddings.token_embedding.weight", cfg.VocabSize, d),
		posEmb:   l.Get("text_model.embeddings.position_embedding.weight", cfg.MaxPositionEmbeddings, d),
	}
	for i := range cfg.NumHiddenLayers {
		e.layers = append(e.layers, loadLayer(l, cfg, act, i))
	}
	e.finalNorm = l.LayerNorm("text_model.final_layer_norm", d, float32(cfg.LayerNormEps))
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("clip: text encoder: %w", err)
	}
	return e, nil
}

// Config returns the configuration the encoder was built with.
func (e *TextEncoder) Config() Config { return e.cfg }

// Encode returns the prompt embedding [B, L, D] for ids (B sequences of the
// same length L, usually 77). clipSkip 0 gives last_hidden_state; clipSkip
// k >= 1 gives final_layer_norm(hidden_states[-(k+1)]), the output of all
// but the last k layers, as diffusers' clip_skip does (SD2's "penultimate"
// is k = 1 on a full OpenCLIP tower). Only the layers needed are run.
func (e *TextEncoder) Encode(b backend.Backend, ids [][]int, clipSkip int) (*backend.Tensor, error) {
	n := len(e.layers)
	if clipSkip < 0 || clipSkip > n {
		return nil, fmt.Errorf("clip: clip skip %d outside [0, %d] for a %d-layer encoder", clipSkip, n, n)
	}
	x, err := e.embed(b, ids)
	if err != nil {
		return nil, err
	}
	for _, layer := range e.layers[:n-clipSkip] {
		y := layer.forward(b, x)
		b.Release(x)
		x = y
	}
	out := e.finalNorm.Forward(b, x)
	b.Release(x)
	return out, nil
}

// Forward runs every layer and returns last_hidden_state and the pooled
// output, plus every hidden state when keepHidden is set.
func (e *TextEncoder) Forward(b backend.Backend, ids [][]int, keepHidden bool) (*Output, error) {
	x, err := e.embed(b, ids)
	if err != nil {
		return nil, err
	}
	out := &Output{}
	if keepHidden {
		out.Hidden = append(out.Hidden, x)
	}
	for _, layer := range e.layers {
		y := layer.forward(b, x)
		if keepHidden {
			out.Hidden = append(out.Hidden, y)
		} else {
			b.Release(x)
		}
		x = y
	}
	out.LastHidden = e.finalNorm.Forward(b, x)
	if !keepHidden {
		b.Release(x)
	}
	out.Pooled = e.pool(b, out.LastHidden, ids)
	return out, nil
}

// embed checks ids and returns token plus position embeddings [B, L, D].
func (e *TextEncoder) embed(b backend.Backend, ids [][]int) (*backend.Tensor, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("clip: no sequences to encode")
	}
	seq := len(ids[0])
	if seq == 0 || seq > e.cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("clip: sequence length %d outside [1, %d]", seq, e.cfg.MaxPositionEmbeddings)
	}
	flat := make([]int, 0, len(ids)*seq)
	pos := make([]int, 0, len(ids)*seq)
	for i, row := range ids {
		if len(row) != seq {
			return nil, fmt.Errorf("clip: sequence %d has %d tokens, sequence 0 has %d", i, len(row), seq)
		}
		for j, id := range row {
			if id < 0 || id >= e.cfg.VocabSize {
				return nil, fmt.Errorf("clip: sequence %d token %d: id %d outside vocabulary of %d", i, j, id, e.cfg.VocabSize)
			}
			flat = append(flat, id)
			pos = append(pos, j)
		}
	}
	tok := b.Embedding(e.tokenEmb, flat)
	p := b.Embedding(e.posEmb, pos)
	x := b.Add(tok, p)
	b.Release(tok)
	b.Release(p)
	return x.Reshape(len(ids), seq, e.cfg.HiddenSize), nil
}

// pool gathers hidden [B, L, D] at each sequence's end-of-text position.
func (e *TextEncoder) pool(b backend.Backend, hidden *backend.Tensor, ids [][]int) *backend.Tensor {
	rows := make([]*backend.Tensor, len(ids))
	for i, row := range ids {
		p := e.poolPosition(row)
		item := b.Slice(hidden, 0, i, i+1)
		rows[i] = b.Slice(item, 1, p, p+1).Reshape(1, e.cfg.HiddenSize)
		b.Release(item)
	}
	if len(rows) == 1 {
		return rows[0]
	}
	out := b.Concat(0, rows...)
	for _, r := range rows {
		b.Release(r)
	}
	return out
}

// poolPosition is transformers' choice: the first eos_token_id, or for
// legacy configs (eos_token_id 2) the first position of the largest id,
// which is the end-of-text token of CLIP's vocabulary. Without an eos the
// first position is used, as transformers' argmax over a mask does.
func (e *TextEncoder) poolPosition(row []int) int {
	if e.cfg.EOSTokenID == legacyEOS {
		best := 0
		for j, id := range row {
			if id > row[best] {
				best = j
			}
		}
		return best
	}
	for j, id := range row {
		if id == e.cfg.EOSTokenID {
			return j
		}
	}
	return 0
}
