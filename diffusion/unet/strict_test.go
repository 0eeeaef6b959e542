package unet

import (
	"fmt"
	"sync"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
)

// strictBackend is the CPU backend plus the rule a device backend enforces:
// a released tensor is gone. It remembers released buffers and panics when
// one is used or released twice, so the UNet's early releases (which the CPU
// backend ignores) are checked by the golden tests.
type strictBackend struct {
	*cpu.Backend
	mu       sync.Mutex
	released map[*float32]bool
}

var _ backend.Backend = (*strictBackend)(nil)

func newStrictBackend(t *testing.T) *strictBackend {
	t.Helper()
	return &strictBackend{Backend: cpu.New(), released: map[*float32]bool{}}
}

func key(t *backend.Tensor) *float32 {
	d := t.Data.([]float32)
	if len(d) == 0 {
		return nil
	}
	return &d[0]
}

func (s *strictBackend) check(op string, ts ...*backend.Tensor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range ts {
		if t != nil && s.released[key(t)] {
			panic(fmt.Sprintf("strict: %s: input %v was released", op, t))
		}
	}
}

func (s *strictBackend) Release(t *backend.Tensor) {
	s.check("Release", t)
	s.mu.Lock()
	s.released[key(t)] = true
	s.mu.Unlock()
}

func (s *strictBackend) ToFloat32(t *backend.Tensor) []float32 {
	s.check("ToFloat32", t)
	return s.Backend.ToFloat32(t)
}

func (s *strictBackend) Linear(x, w, b *backend.Tensor) *backend.Tensor {
	s.check("Linear", x, w, b)
	return s.Backend.Linear(x, w, b)
}

func (s *strictBackend) MatMul(a, b *backend.Tensor, transB bool, alpha float32) *backend.Tensor {
	s.check("MatMul", a, b)
	return s.Backend.MatMul(a, b, transB, alpha)
}

func (s *strictBackend) Conv2D(x, w, b *backend.Tensor, opt backend.Conv2DOptions) *backend.Tensor {
	s.check("Conv2D", x, w, b)
	return s.Backend.Conv2D(x, w, b, opt)
}

func (s *strictBackend) GroupNorm(x, g, be *backend.Tensor, groups int, eps float32, silu bool) *backend.Tensor {
	s.check("GroupNorm", x, g, be)
	return s.Backend.GroupNorm(x, g, be, groups, eps, silu)
}

func (s *strictBackend) LayerNorm(x, g, be *backend.Tensor, eps float32) *backend.Tensor {
	s.check("LayerNorm", x, g, be)
	return s.Backend.LayerNorm(x, g, be, eps)
}

func (s *strictBackend) Attention(q, k, v *backend.Tensor, opt backend.AttentionOptions) *backend.Tensor {
	s.check("Attention", q, k, v)
	return s.Backend.Attention(q, k, v, opt)
}

func (s *strictBackend) Softmax(x *backend.Tensor) *backend.Tensor {
	s.check("Softmax", x)
	return s.Backend.Softmax(x)
}

func (s *strictBackend) Activate(x *backend.Tensor, a backend.Activation) *backend.Tensor {
	s.check("Activate", x)
	return s.Backend.Activate(x, a)
}

func (s *strictBackend) GEGLU(x *backend.Tensor) *backend.Tensor {
	s.check("GEGLU", x)
	return s.Backend.GEGLU(x)
}

func (s *strictBackend) Add(a, b *backend.Tensor) *backend.Tensor {
	s.check("Add", a, b)
	return s.Backend.Add(a, b)
}

func (s *strictBackend) Mul(a, b *backend.Tensor) *backend.Tensor {
	s.check("Mul", a, b)
	return s.Backend.Mul(a, b)
}

func (s *strictBackend) AddChannels(x, b *backend.Tensor) *backend.Tensor {
	s.check("AddChannels", x, b)
	return s.Backend.AddChannels(x, b)
}

func (s *strictBackend) Scale(x *backend.Tensor, f float32) *backend.Tensor {
	s.check("Scale", x)
	return s.Backend.Scale(x, f)
}

func (s *strictBackend) LinComb(c []float32, ts ...*backend.Tensor) *backend.Tensor {
	s.check("LinComb", ts...)
	return s.Backend.LinComb(c, ts...)
}

func (s *strictBackend) UpsampleNearest2x(x *backend.Tensor) *backend.Tensor {
	s.check("UpsampleNearest2x", x)
	return s.Backend.UpsampleNearest2x(x)
}

func (s *strictBackend) Concat(axis int, ts ...*backend.Tensor) *backend.Tensor {
	s.check("Concat", ts...)
	return s.Backend.Concat(axis, ts...)
}

func (s *strictBackend) Slice(x *backend.Tensor, axis, start, end int) *backend.Tensor {
	s.check("Slice", x)
	return s.Backend.Slice(x, axis, start, end)
}

func (s *strictBackend) Permute(x *backend.Tensor, perm ...int) *backend.Tensor {
	s.check("Permute", x)
	return s.Backend.Permute(x, perm...)
}

func (s *strictBackend) Embedding(table *backend.Tensor, ids []int) *backend.Tensor {
	s.check("Embedding", table)
	return s.Backend.Embedding(table, ids)
}
