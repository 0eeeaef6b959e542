// Package nn holds the layers every Stable Diffusion model is built from
// (linear, conv, group norm, layer norm) and the weight lookup they load
// from. Layers run on any backend.Backend; this package knows nothing of
// files, checkpoints or the farm.
package nn

import (
	"errors"
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// ErrMissingWeight and ErrShape classify weight lookup failures.
var (
	ErrMissingWeight = errors.New("missing weight")
	ErrShape         = errors.New("weight has the wrong shape")
)

// Weights supplies named tensors, already on the backend that will run the
// model, under their diffusers names.
type Weights interface {
	// Tensor returns the named tensor; it fails with ErrMissingWeight.
	Tensor(name string) (*backend.Tensor, error)
}

// Maker is implemented by weight sources that make tensors to order, such
// as random initialisation for tests, benchmarks and new tiny models. The
// Loader asks a Maker for each weight with the shape the model expects.
type Maker interface {
	Make(name string, shape []int) (*backend.Tensor, error)
}

// TensorMap is a Weights held in memory.
type TensorMap map[string]*backend.Tensor

// Tensor implements Weights.
func (m TensorMap) Tensor(name string) (*backend.Tensor, error) {
	t, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("weight %q: %w", name, ErrMissingWeight)
	}
	return t, nil
}

// Loader fetches weights for a model and keeps the first error, so model
// constructors read as a list of layers and check once at the end.
type Loader struct {
	w   Weights
	err error
}

// NewLoader returns a Loader reading from w.
func NewLoader(w Weights) *Loader { return &Loader{w: w} }

// Err returns the first error met, or nil.
func (l *Loader) Err() error { return l.err }

// Get returns the named tensor checked against shape; on error it records
// it and returns nil.
func (l *Loader) Get(name string, shape ...int) *backend.Tensor {
	if l.err != nil {
		return nil
	}
	if mk, ok := l.w.(Maker); ok {
		t, err := mk.Make(name, shape)
		if err != nil {
			l.err = err
		}
		return t
	}
	t, err := l.w.Tensor(name)
	if err != nil {
		l.err = err
		return nil
	}
	if !equalShape(t.Shape(), shape) {
		l.err = fmt.Errorf("weight %q: model expects shape %v, checkpoint has %v: %w", name, shape, t.Shape(), ErrShape)
		return nil
	}
	return t
}

// Has reports whether the weight exists. Use it only to tell alternative
// naming schemes apart (old VAE attention names); which layers exist follows
// from the config. A Maker has none of the alternative names.
func (l *Loader) Has(name string) bool {
	_, err := l.w.Tensor(name)
	return err == nil
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Linear is y = x·Wᵀ + b.
type Linear struct {
	W, B *backend.Tensor
}

// Linear loads prefix.weight [out, in] and, when bias, prefix.bias [out].
func (l *Loader) Linear(prefix string, in, out int, bias bool) Linear {
	lin := Linear{W: l.Get(prefix+".weight", out, in)}
	if bias {
		lin.B = l.Get(prefix+".bias", out)
	}
	return lin
}

// Forward applies the layer over the last axis of x.
func (m Linear) Forward(b backend.Backend, x *backend.Tensor) *backend.Tensor {
	return b.Linear(x, m.W, m.B)
}

// Conv2d is a 2-D convolution with a square kernel.
type Conv2d struct {
	W, B *backend.Tensor
	Opt  backend.Conv2DOptions
}

// Conv2d loads prefix.weight [out, in, k, k] and prefix.bias [out] with the
// given stride and symmetric padding.
func (l *Loader) Conv2d(prefix string, in, out, kernel, stride, pad int) Conv2d {
	return Conv2d{
		W:   l.Get(prefix+".weight", out, in, kernel, kernel),
		B:   l.Get(prefix+".bias", out),
		Opt: backend.Conv2DOptions{Stride: stride, Pad: [4]int{pad, pad, pad, pad}},
	}
}

// Forward convolves x [N, C, H, W].
func (m Conv2d) Forward(b backend.Backend, x *backend.Tensor) *backend.Tensor {
	return b.Conv2D(x, m.W, m.B, m.Opt)
}

// GroupNorm normalises groups of channels.
type GroupNorm struct {
	Gamma, Beta *backend.Tensor
	Groups      int
	Eps         float32
}

// GroupNorm loads prefix.weight and prefix.bias [channels].
func (l *Loader) GroupNorm(prefix string, channels, groups int, eps float32) GroupNorm {
	if l.err == nil && (groups <= 0 || channels%groups != 0) {
		l.err = fmt.Errorf("%s: %d channels cannot form %d groups", prefix, channels, groups)
	}
	return GroupNorm{Gamma: l.Get(prefix+".weight", channels), Beta: l.Get(prefix+".bias", channels), Groups: groups, Eps: eps}
}

// Forward normalises x [N, C, ...]; silu fuses the SiLU that usually follows.
func (m GroupNorm) Forward(b backend.Backend, x *backend.Tensor, silu bool) *backend.Tensor {
	return b.GroupNorm(x, m.Gamma, m.Beta, m.Groups, m.Eps, silu)
}

// LayerNorm normalises the last axis.
type LayerNorm struct {
	Gamma, Beta *backend.Tensor
	Eps         float32
}

// LayerNorm loads prefix.weight and prefix.bias [dim].
func (l *Loader) LayerNorm(prefix string, dim int, eps float32) LayerNorm {
	return LayerNorm{Gamma: l.Get(prefix+".weight", dim), Beta: l.Get(prefix+".bias", dim), Eps: eps}
}

// Forward normalises x over its last axis.
func (m LayerNorm) Forward(b backend.Backend, x *backend.Tensor) *backend.Tensor {
	return b.LayerNorm(x, m.Gamma, m.Beta, m.Eps)
}
