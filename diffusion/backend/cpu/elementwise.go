package cpu

import (
	"fmt"
	"math"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

func siluf(x float32) float32 { return x / (1 + expf(-x)) }

func geluf(x float32) float32 {
	return float32(0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2)))
}

func quickGeluf(x float32) float32 { return x / (1 + expf(-1.702*x)) }

func geluTanhf(x float32) float32 {
	xf := float64(x)
	return float32(0.5 * xf * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(xf+0.044715*xf*xf*xf))))
}

func activation(a backend.Activation) func(float32) float32 {
	switch a {
	case backend.SiLU:
		return siluf
	case backend.GELU:
		return geluf
	case backend.QuickGELU:
		return quickGeluf
	case backend.GELUTanh:
		return geluTanhf
	}
	panic(fmt.Sprintf("cpu: unknown activation %d", a))
}

// mapUnary applies f to every element in parallel.
func (c *Backend) mapUnary(x *backend.Tensor, f func(float32) float32) *backend.Tensor {
	src := data(x)
	res := make([]float32, len(src))
	c.parallelFor(len(src), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			res[i] = f(src[i])
		}
	})
	return wrap(res, x.Shape()...)
}

// Activate implements backend.Backend.
func (c *Backend) Activate(x *backend.Tensor, a backend.Activation) *backend.Tensor {
	if a == backend.GELU {
		src := data(x)
		res := make([]float32, len(src))
		c.parallelFor(len(src), func(lo, hi int) { geluTo(res[lo:hi], src[lo:hi]) })
		return wrap(res, x.Shape()...)
	}
	return c.mapUnary(x, activation(a))
}

// GEGLU implements backend.Backend.
func (c *Backend) GEGLU(x *backend.Tensor) *backend.Tensor {
	d := x.Dim(-1)
	if d%2 != 0 {
		panic(fmt.Sprintf("cpu: GEGLU: odd last dimension in %v", x.Shape()))
	}
	half := d / 2
	rows := x.Len() / d
	src := data(x)
	res := make([]float32, rows*half)
	c.parallelFor(rows, func(lo, hi int) {
		gegluRows(res[lo*half:hi*half], src[lo*d:hi*d], hi-lo, half)
	})
	shape := append([]int(nil), x.Shape()...)
	shape[len(shape)-1] = half
	return wrap(res, shape...)
}

// Add implements backend.Backend.
func (c *Backend) Add(a, b *backend.Tensor) *backend.Tensor {
	sameShape("Add", a, b)
	ad, bd := data(a), data(b)
	res := make([]float32, len(ad))
	c.parallelFor(len(ad), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			res[i] = ad[i] + bd[i]
		}
	})
	return wrap(res, a.Shape()...)
}

// Mul implements backend.Backend.
func (c *Backend) Mul(a, b *backend.Tensor) *backend.Tensor {
	sameShape("Mul", a, b)
	ad, bd := data(a), data(b)
	res := make([]float32, len(ad))
	c.parallelFor(len(ad), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			res[i] = ad[i] * bd[i]
		}
	})
	return wrap(res, a.Shape()...)
}

// AddChannels implements backend.Backend.
func (c *Backend) AddChannels(x, b *backend.Tensor) *backend.Tensor {
	n, ch := x.Dim(0), x.Dim(1)
	if b.Len() != n*ch {
		panic(fmt.Sprintf("cpu: AddChannels: %v to %v", b.Shape(), x.Shape()))
	}
	spatial := x.Len() / (n * ch)
	xd, bd := data(x), data(b)
	res := make([]float32, len(xd))
	c.parallelFor(n*ch, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			v := bd[p]
			src := xd[p*spatial : (p+1)*spatial]
			dst := res[p*spatial : (p+1)*spatial]
			for i, s := range src {
				dst[i] = s + v
			}
		}
	})
	return wrap(res, x.Shape()...)
}

// Scale implements backend.Backend.
func (c *Backend) Scale(x *backend.Tensor, s float32) *backend.Tensor {
	return c.mapUnary(x, func(v float32) float32 { return v * s })
}

// LinComb implements backend.Backend.
func (c *Backend) LinComb(coef []float32, ts ...*backend.Tensor) *backend.Tensor {
	if len(coef) != len(ts) || len(ts) == 0 {
		panic(fmt.Sprintf("cpu: LinComb: %d coefficients for %d tensors", len(coef), len(ts)))
	}
	srcs := make([][]float32, len(ts))
	for i, t := range ts {
		sameShape("LinComb", ts[0], t)
		srcs[i] = data(t)
	}
	res := make([]float32, ts[0].Len())
	c.parallelFor(len(res), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			var s float32
			for j, src := range srcs {
				s += coef[j] * src[i]
			}
			res[i] = s
		}
	})
	return wrap(res, ts[0].Shape()...)
}

// UpsampleNearest2x implements backend.Backend.
func (c *Backend) UpsampleNearest2x(x *backend.Tensor) *backend.Tensor {
	if x.Rank() != 4 {
		panic(fmt.Sprintf("cpu: UpsampleNearest2x: shape %v", x.Shape()))
	}
	n, ch, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	src := data(x)
	res := make([]float32, n*ch*4*h*w)
	c.parallelFor(n*ch, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			in := src[p*h*w : (p+1)*h*w]
			out := res[p*4*h*w : (p+1)*4*h*w]
			for y := 0; y < 2*h; y++ {
				line := in[(y/2)*w : (y/2+1)*w]
				dst := out[y*2*w : (y+1)*2*w]
				for xx := range dst {
					dst[xx] = line[xx/2]
				}
			}
		}
	})
	return wrap(res, n, ch, 2*h, 2*w)
}

// Concat implements backend.Backend.
func (c *Backend) Concat(axis int, ts ...*backend.Tensor) *backend.Tensor {
	if len(ts) == 0 {
		panic("cpu: Concat of nothing")
	}
	first := ts[0].Shape()
	if axis < 0 {
		axis += len(first)
	}
	outer := backend.NumElements(first[:axis])
	inner := backend.NumElements(first[axis+1:])
	total := 0
	for _, t := range ts {
		s := t.Shape()
		if len(s) != len(first) {
			panic(fmt.Sprintf("cpu: Concat: shapes %v and %v", first, s))
		}
		for i := range s {
			if i != axis && s[i] != first[i] {
				panic(fmt.Sprintf("cpu: Concat on axis %d: shapes %v and %v", axis, first, s))
			}
		}
		total += s[axis]
	}
	res := make([]float32, outer*total*inner)
	off := 0
	for _, t := range ts {
		src := data(t)
		span := t.Dim(axis) * inner
		for o := 0; o < outer; o++ {
			copy(res[o*total*inner+off:], src[o*span:(o+1)*span])
		}
		off += span
	}
	shape := append([]int(nil), first...)
	shape[axis] = total
	return wrap(res, shape...)
}

// Slice implements backend.Backend.
func (c *Backend) Slice(x *backend.Tensor, axis, start, end int) *backend.Tensor {
	s := x.Shape()
	if axis < 0 {
		axis += len(s)
	}
	if start < 0 || end > s[axis] || start > end {
		panic(fmt.Sprintf("cpu: Slice [%d:%d] of axis %d in %v", start, end, axis, s))
	}
	outer := backend.NumElements(s[:axis])
	inner := backend.NumElements(s[axis+1:])
	src := data(x)
	n := end - start
	res := make([]float32, outer*n*inner)
	for o := 0; o < outer; o++ {
		copy(res[o*n*inner:(o+1)*n*inner], src[(o*s[axis]+start)*inner:(o*s[axis]+end)*inner])
	}
	shape := append([]int(nil), s...)
	shape[axis] = n
	return wrap(res, shape...)
}

// Permute implements backend.Backend.
func (c *Backend) Permute(x *backend.Tensor, perm ...int) *backend.Tensor {
	s := x.Shape()
	seen := make([]bool, len(s))
	for _, p := range perm {
		if p < 0 || p >= len(s) || seen[p] {
			panic(fmt.Sprintf("cpu: Permute %v of %v", perm, s))
		}
		seen[p] = true
	}
	if len(perm) != len(s) {
		panic(fmt.Sprintf("cpu: Permute %v of %v", perm, s))
	}
	rank := len(s)
	inStride := make([]int, rank)
	st := 1
	for i := rank - 1; i >= 0; i-- {
		inStride[i] = st
		st *= s[i]
	}
	outShape := make([]int, rank)
	srcStride := make([]int, rank) // stride in the input of each output axis
	for i, p := range perm {
		outShape[i] = s[p]
		srcStride[i] = inStride[p]
	}
	src := data(x)
	res := make([]float32, len(src))
	last := outShape[rank-1]
	lastStride := srcStride[rank-1]
	rows := len(src) / max(last, 1)
	c.parallelFor(rows, func(lo, hi int) {
		idx := make([]int, rank-1)
		for r := lo; r < hi; r++ {
			rem, base := r, 0
			for i := rank - 2; i >= 0; i-- {
				idx[i] = rem % outShape[i]
				rem /= outShape[i]
				base += idx[i] * srcStride[i]
			}
			dst := res[r*last : (r+1)*last]
			for j := range dst {
				dst[j] = src[base+j*lastStride]
			}
		}
	})
	return wrap(res, outShape...)
}

// Embedding implements backend.Backend.
func (c *Backend) Embedding(table *backend.Tensor, ids []int) *backend.Tensor {
	v, d := table.Dim(0), table.Dim(1)
	src := data(table)
	res := make([]float32, len(ids)*d)
	for i, id := range ids {
		if id < 0 || id >= v {
			panic(fmt.Sprintf("cpu: Embedding: id %d outside vocabulary of %d", id, v))
		}
		copy(res[i*d:(i+1)*d], src[id*d:(id+1)*d])
	}
	return wrap(res, len(ids), d)
}
