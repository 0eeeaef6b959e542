// Package backend defines the tensor type and the Backend interface that every
// model in diffusion/ is written against. A backend owns the memory of its
// tensors and implements the operations Stable Diffusion needs; the CPU
// backend (backend/cpu) is the reference, the CUDA backend (build tag cuda)
// implements the same contract. This package must never import a concrete
// backend, a model or anything from the farm.
package backend

import (
	"fmt"
	"strings"
)

// DType is the element type a backend stores a tensor in.
type DType uint8

// Element types. The CPU backend stores everything as F32; f16/bf16 weights
// are converted when they are uploaded.
const (
	F32 DType = iota
	F16
	BF16
)

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Tensor is a dense, contiguous, row-major array owned by a Backend.
// Data is backend specific (the CPU backend keeps a []float32); model code
// never looks inside it.
type Tensor struct {
	shape []int
	DType DType
	Data  any
}

// NewTensor wraps backend data; only backends call it.
func NewTensor(data any, dtype DType, shape ...int) *Tensor {
	return &Tensor{shape: append([]int(nil), shape...), DType: dtype, Data: data}
}

// Shape returns the tensor's dimensions; callers must not modify it.
func (t *Tensor) Shape() []int { return t.shape }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Len is the number of elements.
func (t *Tensor) Len() int { return NumElements(t.shape) }

// Reshape returns a view of the same data with another shape of the same
// size. One dimension may be -1 and is inferred.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	s := append([]int(nil), shape...)
	infer, known := -1, 1
	for i, d := range s {
		if d == -1 {
			if infer >= 0 {
				panic("backend: reshape with two -1 dimensions")
			}
			infer = i
			continue
		}
		known *= d
	}
	if infer >= 0 {
		if known == 0 || t.Len()%known != 0 {
			panic(fmt.Sprintf("backend: cannot reshape %v to %v", t.shape, shape))
		}
		s[infer] = t.Len() / known
	}
	if NumElements(s) != t.Len() {
		panic(fmt.Sprintf("backend: cannot reshape %v to %v", t.shape, shape))
	}
	return &Tensor{shape: s, DType: t.DType, Data: t.Data}
}

func (t *Tensor) String() string {
	parts := make([]string, len(t.shape))
	for i, d := range t.shape {
		parts[i] = fmt.Sprint(d)
	}
	return fmt.Sprintf("Tensor[%s %s]", t.DType, strings.Join(parts, "x"))
}

// NumElements is the product of the dimensions.
func NumElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Activation selects an elementwise nonlinearity.
type Activation uint8

// Activations used by SD models.
const (
	SiLU      Activation = iota // x * sigmoid(x)
	GELU                        // exact, erf-based (torch's default)
	QuickGELU                   // x * sigmoid(1.702 x), CLIP ViT-L/14
	GELUTanh                    // tanh approximation
)

// Conv2DOptions configures Conv2D. Pad is top, bottom, left, right (the VAE
// encoder's downsampler pads only bottom and right).
type Conv2DOptions struct {
	Stride int
	Pad    [4]int
}

// AttentionOptions configures Attention.
type AttentionOptions struct {
	Heads  int
	Causal bool // mask keys after the query position (CLIP text encoder)
	// Upcast asks for f32 scores and softmax even when activations are f16
	// (SD2.x); the CPU backend always computes in f32.
	Upcast bool
}

// Backend allocates tensors and runs the operations the models need.
// Every operation returns a new tensor and leaves its inputs unchanged;
// inputs and outputs are contiguous and row-major. Shapes that do not fit an
// operation are programmer errors and panic with a message naming the op.
type Backend interface {
	// Name identifies the backend ("cpu", "cuda:0").
	Name() string

	// FromFloat32 copies host data into a new tensor of the given shape.
	FromFloat32(data []float32, shape ...int) *Tensor
	// ToFloat32 copies a tensor's elements back to the host.
	ToFloat32(t *Tensor) []float32
	// Zeros returns a tensor filled with zeros.
	Zeros(shape ...int) *Tensor
	// Release frees a tensor's memory early; using it afterwards is an error.
	// Backends with garbage-collected memory may do nothing.
	Release(t *Tensor)

	// Linear returns x·wᵀ + b over the last axis: x [..., in], w [out, in],
	// b [out] or nil; the result is [..., out].
	Linear(x, w, b *Tensor) *Tensor
	// MatMul returns a·b for a [B, M, K] and b [B, K, N] (or b [B, N, K] when
	// transB), scaled by alpha: [B, M, N].
	MatMul(a, b *Tensor, transB bool, alpha float32) *Tensor
	// Conv2D convolves x [N, Cin, H, W] with w [Cout, Cin, kh, kw] and adds
	// b [Cout] (or nil).
	Conv2D(x, w, b *Tensor, opt Conv2DOptions) *Tensor
	// GroupNorm normalises x [N, C, ...] over groups of channels and the
	// spatial axes, then applies gamma, beta [C]; silu fuses a SiLU after it.
	GroupNorm(x, gamma, beta *Tensor, groups int, eps float32, silu bool) *Tensor
	// LayerNorm normalises over the last axis and applies gamma, beta.
	LayerNorm(x, gamma, beta *Tensor, eps float32) *Tensor
	// Attention computes softmax(q·kᵀ/sqrt(d))·v per head for q [B, Lq, H*d],
	// k and v [B, Lk, H*d]; the result is [B, Lq, H*d].
	Attention(q, k, v *Tensor, opt AttentionOptions) *Tensor
	// Softmax over the last axis.
	Softmax(x *Tensor) *Tensor

	// Activate applies an elementwise nonlinearity.
	Activate(x *Tensor, a Activation) *Tensor
	// GEGLU splits the last axis in halves h, g and returns h * gelu(g).
	GEGLU(x *Tensor) *Tensor
	// Add returns a + b for equal shapes.
	Add(a, b *Tensor) *Tensor
	// Mul returns a * b elementwise for equal shapes.
	Mul(a, b *Tensor) *Tensor
	// AddChannels adds b [N, C] to x [N, C, ...] broadcast over the trailing
	// axes (the time embedding in a UNet resnet).
	AddChannels(x, b *Tensor) *Tensor
	// Scale returns s * x.
	Scale(x *Tensor, s float32) *Tensor
	// LinComb returns sum_i c[i] * ts[i] for tensors of equal shape; the
	// schedulers and classifier-free guidance are written with it.
	LinComb(c []float32, ts ...*Tensor) *Tensor

	// UpsampleNearest2x doubles H and W of x [N, C, H, W].
	UpsampleNearest2x(x *Tensor) *Tensor
	// Concat joins tensors along axis; other dimensions must match.
	Concat(axis int, ts ...*Tensor) *Tensor
	// Slice returns x[..., start:end, ...] along axis.
	Slice(x *Tensor, axis, start, end int) *Tensor
	// Permute reorders the axes: result dim i is x dim perm[i].
	Permute(x *Tensor, perm ...int) *Tensor
	// Embedding gathers rows of table [V, D] for ids: [len(ids), D].
	Embedding(table *Tensor, ids []int) *Tensor
}
