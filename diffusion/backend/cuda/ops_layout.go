//go:build cuda

package cuda

import (
	"fmt"

	"gorgonia.org/cu"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// UpsampleNearest2x implements backend.Backend.
func (b *Backend) UpsampleNearest2x(x *backend.Tensor) *backend.Tensor {
	if x.Rank() != 4 {
		panic(fmt.Sprintf("cuda: UpsampleNearest2x: input %v is not [N, C, H, W]", x.Shape()))
	}
	b.enter()
	defer b.exit()
	n, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	res := b.alloc(x.DType, n, c, 2*h, 2*w)
	const op = "UpsampleNearest2x"
	b.launch1D("upsample2x", res.Len(), ptr(op, res), res.DType, ptr(op, x), x.DType, n*c, h, w)
	return res
}

// axisSplit returns the product of the dimensions before and after axis.
func axisSplit(shape []int, axis int) (outer, inner int) {
	outer, inner = 1, 1
	for i, d := range shape {
		switch {
		case i < axis:
			outer *= d
		case i > axis:
			inner *= d
		}
	}
	return outer, inner
}

// Concat implements backend.Backend; the result type is the operands'
// common type (f32 when they differ).
func (b *Backend) Concat(axis int, ts ...*backend.Tensor) *backend.Tensor {
	if len(ts) == 0 {
		panic("cuda: Concat: no tensors")
	}
	rank := ts[0].Rank()
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		panic(fmt.Sprintf("cuda: Concat: axis out of range for %v", ts[0].Shape()))
	}
	shape := append([]int(nil), ts[0].Shape()...)
	shape[axis] = 0
	ds := make([]backend.DType, len(ts))
	for i, t := range ts {
		if t.Rank() != rank {
			panic(fmt.Sprintf("cuda: Concat: shapes %v and %v", ts[0].Shape(), t.Shape()))
		}
		for d := range rank {
			if d != axis && t.Dim(d) != ts[0].Dim(d) {
				panic(fmt.Sprintf("cuda: Concat: shapes %v and %v differ off axis %d", ts[0].Shape(), t.Shape(), axis))
			}
		}
		shape[axis] += t.Dim(axis)
		ds[i] = t.DType
	}
	b.enter()
	defer b.exit()
	res := b.alloc(promote(ds...), shape...)
	outer, inner := axisSplit(shape, axis)
	off := 0
	for _, t := range ts {
		l := t.Dim(axis)
		b.launch1D("copy_axis", outer*l*inner, ptr("Concat", res), res.DType, shape[axis], off,
			ptr("Concat", t), t.DType, l, 0, outer, l, inner)
		off += l
	}
	return res
}

// Slice implements backend.Backend.
func (b *Backend) Slice(x *backend.Tensor, axis, start, end int) *backend.Tensor {
	if axis < 0 {
		axis += x.Rank()
	}
	if axis < 0 || axis >= x.Rank() || start < 0 || end > x.Dim(axis) || start > end {
		panic(fmt.Sprintf("cuda: Slice: [%d:%d] on axis %d of %v", start, end, axis, x.Shape()))
	}
	b.enter()
	defer b.exit()
	shape := append([]int(nil), x.Shape()...)
	shape[axis] = end - start
	res := b.alloc(x.DType, shape...)
	outer, inner := axisSplit(shape, axis)
	b.launch1D("copy_axis", res.Len(), ptr("Slice", res), res.DType, end-start, 0,
		ptr("Slice", x), x.DType, x.Dim(axis), start, outer, end-start, inner)
	return res
}

// maxPermuteRank is the rank kernels/layout.cu's permute6 handles.
const maxPermuteRank = 6

// Permute implements backend.Backend.
func (b *Backend) Permute(x *backend.Tensor, perm ...int) *backend.Tensor {
	rank := x.Rank()
	if len(perm) != rank || rank > maxPermuteRank {
		panic(fmt.Sprintf("cuda: Permute: %v of a rank-%d tensor (at most %d)", perm, rank, maxPermuteRank))
	}
	seen := make([]bool, rank)
	for _, p := range perm {
		if p < 0 || p >= rank || seen[p] {
			panic(fmt.Sprintf("cuda: Permute: %v is not a permutation of %d axes", perm, rank))
		}
		seen[p] = true
	}
	strides := make([]int, rank)
	s := 1
	for i := rank - 1; i >= 0; i-- {
		strides[i] = s
		s *= x.Dim(i)
	}
	// Pad to six axes at the front: dims 1, strides 0.
	dims := [maxPermuteRank]int{1, 1, 1, 1, 1, 1}
	var srcStr [maxPermuteRank]int
	shape := make([]int, rank)
	for i, p := range perm {
		shape[i] = x.Dim(p)
		dims[maxPermuteRank-rank+i] = x.Dim(p)
		srcStr[maxPermuteRank-rank+i] = strides[p]
	}
	b.enter()
	defer b.exit()
	res := b.alloc(x.DType, shape...)
	args := []any{ptr("Permute", res), res.DType, ptr("Permute", x), x.DType, res.Len()}
	for _, d := range dims {
		args = append(args, d)
	}
	for _, st := range srcStr {
		args = append(args, st)
	}
	b.launch1D("permute6", res.Len(), args...)
	return res
}

// Embedding implements backend.Backend with device-to-device row copies
// (runs of consecutive ids in one copy): the ids are launch parameters, so
// nothing but the command stream crosses the bus.
func (b *Backend) Embedding(table *backend.Tensor, ids []int) *backend.Tensor {
	if table.Rank() != 2 {
		panic(fmt.Sprintf("cuda: Embedding: table %v is not [V, D]", table.Shape()))
	}
	v, d := table.Dim(0), table.Dim(1)
	for _, id := range ids {
		if id < 0 || id >= v {
			panic(fmt.Sprintf("cuda: Embedding: id %d outside the table's %d rows", id, v))
		}
	}
	b.enter()
	defer b.exit()
	res := b.alloc(table.DType, len(ids), d)
	row := int64(d) * elemSize(table.DType)
	src, dst := ptr("Embedding", table), ptr("Embedding", res)
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && ids[j] == ids[j-1]+1 {
			j++
		}
		n := int64(j-i) * row
		if n > 0 {
			check("Embedding", cu.MemcpyDtoDAsync(dst+cu.DevicePtr(int64(i)*row), src+cu.DevicePtr(int64(ids[i])*row), n, b.stream))
		}
		i = j
	}
	return res
}
