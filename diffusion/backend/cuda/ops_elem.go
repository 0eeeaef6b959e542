//go:build cuda

package cuda

import (
	"fmt"
	"slices"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// promote is the result type of an op over operands of types ds: their
// common type, or F32 when they differ (f32 latents meeting an f16 UNet
// output stay f32, as the schedulers want).
func promote(ds ...backend.DType) backend.DType {
	for _, d := range ds[1:] {
		if d != ds[0] {
			return backend.F32
		}
	}
	return ds[0]
}

func sameShape(op string, a, c *backend.Tensor) {
	if !slices.Equal(a.Shape(), c.Shape()) {
		panic(fmt.Sprintf("cuda: %s: shapes %v and %v differ", op, a.Shape(), c.Shape()))
	}
}

// Activate implements backend.Backend; the result keeps x's type.
func (b *Backend) Activate(x *backend.Tensor, a backend.Activation) *backend.Tensor {
	if a > backend.GELUTanh {
		panic(fmt.Sprintf("cuda: Activate: unknown activation %d", a))
	}
	b.enter()
	defer b.exit()
	res := b.alloc(x.DType, x.Shape()...)
	b.launch1D("activate", x.Len(), ptr("Activate", res), res.DType, ptr("Activate", x), x.DType, x.Len(), int(a))
	return res
}

// GEGLU implements backend.Backend.
func (b *Backend) GEGLU(x *backend.Tensor) *backend.Tensor {
	d := x.Dim(-1)
	if d%2 != 0 {
		panic(fmt.Sprintf("cuda: GEGLU: last axis %d is odd", d))
	}
	b.enter()
	defer b.exit()
	shape := slices.Clone(x.Shape())
	shape[len(shape)-1] = d / 2
	res := b.alloc(x.DType, shape...)
	rows := x.Len() / max(d, 1)
	b.launch1D("geglu", res.Len(), ptr("GEGLU", res), res.DType, ptr("GEGLU", x), x.DType, rows, d/2)
	return res
}

func (b *Backend) binary(op, kernel string, x, y *backend.Tensor) *backend.Tensor {
	sameShape(op, x, y)
	b.enter()
	defer b.exit()
	res := b.alloc(promote(x.DType, y.DType), x.Shape()...)
	b.launch1D(kernel, x.Len(), ptr(op, res), res.DType, ptr(op, x), x.DType, ptr(op, y), y.DType, x.Len())
	return res
}

// Add implements backend.Backend.
func (b *Backend) Add(x, y *backend.Tensor) *backend.Tensor { return b.binary("Add", "add", x, y) }

// Mul implements backend.Backend.
func (b *Backend) Mul(x, y *backend.Tensor) *backend.Tensor { return b.binary("Mul", "mul", x, y) }

// AddChannels implements backend.Backend; the result keeps x's type.
func (b *Backend) AddChannels(x, c *backend.Tensor) *backend.Tensor {
	if x.Rank() < 2 || c.Rank() != 2 || c.Dim(0) != x.Dim(0) || c.Dim(1) != x.Dim(1) {
		panic(fmt.Sprintf("cuda: AddChannels: %v does not broadcast over %v", c.Shape(), x.Shape()))
	}
	b.enter()
	defer b.exit()
	res := b.alloc(x.DType, x.Shape()...)
	spatial := 1
	for _, d := range x.Shape()[2:] {
		spatial *= d
	}
	const op = "AddChannels"
	b.launch1D("add_bcast", x.Len(), ptr(op, res), res.DType, ptr(op, x), x.DType, ptr(op, c), c.DType,
		x.Len(), spatial, c.Len())
	return res
}

// Scale implements backend.Backend; the result keeps x's type.
func (b *Backend) Scale(x *backend.Tensor, s float32) *backend.Tensor {
	b.enter()
	defer b.exit()
	res := b.alloc(x.DType, x.Shape()...)
	b.launch1D("scale", x.Len(), ptr("Scale", res), res.DType, ptr("Scale", x), x.DType, x.Len(), s)
	return res
}

// LinComb implements backend.Backend, four terms per launch.
func (b *Backend) LinComb(c []float32, ts ...*backend.Tensor) *backend.Tensor {
	if len(ts) == 0 || len(c) != len(ts) {
		panic(fmt.Sprintf("cuda: LinComb: %d coefficients for %d tensors", len(c), len(ts)))
	}
	ds := make([]backend.DType, len(ts))
	for i, t := range ts {
		sameShape("LinComb", ts[0], t)
		ds[i] = t.DType
	}
	b.enter()
	defer b.exit()
	res := b.alloc(promote(ds...), ts[0].Shape()...)
	n := res.Len()
	const op = "LinComb"
	for lo := 0; lo < len(ts); lo += 4 {
		hi := min(lo+4, len(ts))
		args := []any{ptr(op, res), res.DType, n, hi - lo, lo > 0}
		for j := lo; j < lo+4; j++ {
			if j < hi {
				args = append(args, ptr(op, ts[j]), ts[j].DType, c[j])
			} else { // unused slots: any valid pointer, never read
				args = append(args, ptr(op, ts[lo]), ts[lo].DType, float32(0))
			}
		}
		b.launch1D("lincomb4", n, args...)
	}
	return res
}
