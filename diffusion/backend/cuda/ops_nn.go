//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// blockFor picks a reduction block size: a multiple of 32 up to 512 (the
// reductions in common.cuh need whole warps).
func blockFor(n int) int {
	bs := (n + 31) / 32 * 32
	return max(32, min(bs, 512))
}

// GroupNorm implements backend.Backend (kernels/norm.cu); the result keeps
// x's type, statistics are f32.
func (b *Backend) GroupNorm(x, gamma, beta *backend.Tensor, groups int, eps float32, silu bool) *backend.Tensor {
	if x.Rank() < 2 || groups <= 0 || x.Dim(1)%groups != 0 {
		panic(fmt.Sprintf("cuda: GroupNorm: %v cannot form %d groups", x.Shape(), groups))
	}
	ch := x.Dim(1)
	if gamma.Len() != ch || beta.Len() != ch {
		panic(fmt.Sprintf("cuda: GroupNorm: gamma %v, beta %v for %d channels", gamma.Shape(), beta.Shape(), ch))
	}
	b.enter()
	defer b.exit()
	res := b.alloc(x.DType, x.Shape()...)
	n := x.Dim(0)
	if res.Len() == 0 {
		return res
	}
	spatial := x.Len() / (n * ch)
	const op = "GroupNorm"
	b.launch("group_norm", n*groups, 1, blockFor(ch/groups*spatial), 0,
		ptr(op, res), res.DType, ptr(op, x), x.DType, ptr(op, gamma), gamma.DType, ptr(op, beta), beta.DType,
		ch, spatial, groups, eps, silu)
	return res
}

// LayerNorm implements backend.Backend (kernels/norm.cu).
func (b *Backend) LayerNorm(x, gamma, beta *backend.Tensor, eps float32) *backend.Tensor {
	d := x.Dim(-1)
	if gamma.Len() != d || beta.Len() != d {
		panic(fmt.Sprintf("cuda: LayerNorm: gamma %v, beta %v for last axis %d", gamma.Shape(), beta.Shape(), d))
	}
	b.enter()
	defer b.exit()
	res := b.alloc(x.DType, x.Shape()...)
	if res.Len() == 0 {
		return res
	}
	rows := x.Len() / d
	const op = "LayerNorm"
	b.launch("layer_norm", rows, 1, blockFor(d), 0,
		ptr(op, res), res.DType, ptr(op, x), x.DType, ptr(op, gamma), gamma.DType, ptr(op, beta), beta.DType,
		rows, d, eps)
	return res
}

// Softmax implements backend.Backend (kernels/softmax.cu).
func (b *Backend) Softmax(x *backend.Tensor) *backend.Tensor {
	if x.Rank() == 0 {
		panic("cuda: Softmax: scalar input")
	}
	b.enter()
	defer b.exit()
	res := b.alloc(x.DType, x.Shape()...)
	if res.Len() == 0 {
		return res
	}
	cols := x.Dim(-1)
	rows := x.Len() / cols
	b.launch("softmax", rows, 1, blockFor(min(cols, 256)), 0,
		ptr("Softmax", res), res.DType, ptr("Softmax", x), x.DType, rows, cols)
	return res
}

// Attention geometry of kernels/attention.cu.
const (
	attnRows    = 64 // BR: query rows per block
	attnThreads = 4 * attnRows
	attnKeys    = 32 // BC: keys per shared-memory tile
	maxHeadDim  = 160
)

// attentionKernel is the smallest kernel variant that takes head dim d.
func attentionKernel(d int) string {
	switch {
	case d <= 32:
		return "attention_d32"
	case d <= 64:
		return "attention_d64"
	case d <= 128:
		return "attention_d128"
	}
	return "attention_d160"
}

// Attention implements backend.Backend with the fused kernel of
// kernels/attention.cu: no score matrix in memory, f32 softmax (so
// opt.Upcast holds for every storage type), result in the storage type.
func (b *Backend) Attention(q, k, v *backend.Tensor, opt backend.AttentionOptions) *backend.Tensor {
	if q.Rank() != 3 || k.Rank() != 3 || v.Rank() != 3 || k.Dim(0) != q.Dim(0) || v.Dim(0) != q.Dim(0) ||
		k.Dim(1) != v.Dim(1) || k.Dim(2) != q.Dim(2) || v.Dim(2) != q.Dim(2) {
		panic(fmt.Sprintf("cuda: Attention: q %v, k %v, v %v", q.Shape(), k.Shape(), v.Shape()))
	}
	width := q.Dim(2)
	if opt.Heads <= 0 || width%opt.Heads != 0 {
		panic(fmt.Sprintf("cuda: Attention: width %d does not split into %d heads", width, opt.Heads))
	}
	dh := width / opt.Heads
	if dh > maxHeadDim {
		panic(fmt.Sprintf("cuda: Attention: head dim %d over the kernel's %d", dh, maxHeadDim))
	}
	batch, lq, lk := q.Dim(0), q.Dim(1), k.Dim(1)
	b.enter()
	defer b.exit()
	res := b.alloc(b.opts.Storage, batch, lq, width)
	if res.Len() == 0 {
		return res
	}
	if lk == 0 {
		b.zero("Attention", res)
		return res
	}
	const op = "Attention"
	grid := (lq + attnRows - 1) / attnRows
	shared := 2 * attnKeys * dh * 4
	scale := float32(1 / math.Sqrt(float64(dh)))
	b.launch(attentionKernel(dh), grid, batch*opt.Heads, attnThreads, shared,
		ptr(op, res), res.DType, ptr(op, q), q.DType, ptr(op, k), k.DType, ptr(op, v), v.DType,
		lq, lk, opt.Heads, dh, scale, opt.Causal)
	return res
}
