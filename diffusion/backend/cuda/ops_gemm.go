//go:build cuda

package cuda

import (
	"fmt"

	"gorgonia.org/cu"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// The matrix products run in cuBLAS on the storage type with f32
// accumulation; operands of another type are cast first. cuBLAS is
// column-major, so a row-major product C = A·B is computed as Cᵀ = Bᵀ·Aᵀ.

func (b *Backend) gemm(op string, g gemmArgs) {
	g.dt = b.opts.Storage
	check(op, b.blas.gemm(g))
}

// Linear implements backend.Backend.
func (b *Backend) Linear(x, w, bias *backend.Tensor) *backend.Tensor {
	in := x.Dim(-1)
	if w.Rank() != 2 || w.Dim(1) != in {
		panic(fmt.Sprintf("cuda: Linear: input %v does not fit weight %v", x.Shape(), w.Shape()))
	}
	out := w.Dim(0)
	if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != out) {
		panic(fmt.Sprintf("cuda: Linear: bias %v for %d outputs", bias.Shape(), out))
	}
	b.enter()
	defer b.exit()
	rows := x.Len() / max(in, 1)
	shape := append(append([]int(nil), x.Shape()[:x.Rank()-1]...), out)
	res := b.alloc(b.opts.Storage, shape...)
	if res.Len() == 0 {
		return res
	}
	xs, doneX := b.as(x, b.opts.Storage)
	ws, doneW := b.as(w, b.opts.Storage)
	b.gemm("Linear", gemmArgs{
		transA: true, m: out, n: rows, k: in, alpha: 1,
		a: ptr("Linear", ws), lda: in, b: ptr("Linear", xs), ldb: in,
		c: ptr("Linear", res), ldc: out, batch: 1,
	})
	doneX()
	doneW()
	if bias != nil {
		r := ptr("Linear", res)
		b.launch1D("add_bcast", res.Len(), r, res.DType, r, res.DType, ptr("Linear", bias), bias.DType, res.Len(), 1, out)
	}
	return res
}

// MatMul implements backend.Backend.
func (b *Backend) MatMul(a, m *backend.Tensor, transB bool, alpha float32) *backend.Tensor {
	if a.Rank() != 3 || m.Rank() != 3 || a.Dim(0) != m.Dim(0) {
		panic(fmt.Sprintf("cuda: MatMul: shapes %v and %v", a.Shape(), m.Shape()))
	}
	batch, rows, k := a.Dim(0), a.Dim(1), a.Dim(2)
	n := m.Dim(2)
	if transB {
		n = m.Dim(1)
	}
	if (transB && m.Dim(2) != k) || (!transB && m.Dim(1) != k) {
		panic(fmt.Sprintf("cuda: MatMul: shapes %v and %v (transB %v)", a.Shape(), m.Shape(), transB))
	}
	b.enter()
	defer b.exit()
	res := b.alloc(b.opts.Storage, batch, rows, n)
	if res.Len() == 0 {
		return res
	}
	if k == 0 {
		b.zero("MatMul", res)
		return res
	}
	as, doneA := b.as(a, b.opts.Storage)
	ms, doneM := b.as(m, b.opts.Storage)
	ldb := n
	if transB {
		ldb = k
	}
	b.gemm("MatMul", gemmArgs{
		transA: transB, m: n, n: rows, k: k, alpha: alpha,
		a: ptr("MatMul", ms), lda: ldb, strideA: k * n,
		b: ptr("MatMul", as), ldb: k, strideB: rows * k,
		c: ptr("MatMul", res), ldc: n, strideC: rows * n, batch: batch,
	})
	doneA()
	doneM()
	return res
}

// Conv2D implements backend.Backend: im2col (kernels/conv.cu) into the
// storage type, then one strided-batched GEMM over the images with the
// weights shared; 1x1 stride-1 convolutions skip im2col.
func (b *Backend) Conv2D(x, w, bias *backend.Tensor, opt backend.Conv2DOptions) *backend.Tensor {
	if x.Rank() != 4 || w.Rank() != 4 || w.Dim(1) != x.Dim(1) {
		panic(fmt.Sprintf("cuda: Conv2D: input %v does not fit weight %v", x.Shape(), w.Shape()))
	}
	n, c, h, wd := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	cout, kh, kw := w.Dim(0), w.Dim(2), w.Dim(3)
	stride := max(opt.Stride, 1)
	pt, pb, pl, pr := opt.Pad[0], opt.Pad[1], opt.Pad[2], opt.Pad[3]
	if pt < 0 || pb < 0 || pl < 0 || pr < 0 {
		panic(fmt.Sprintf("cuda: Conv2D: negative padding %v", opt.Pad))
	}
	ho, wo := (h+pt+pb-kh)/stride+1, (wd+pl+pr-kw)/stride+1
	if h+pt+pb < kh || wd+pl+pr < kw || ho <= 0 || wo <= 0 {
		panic(fmt.Sprintf("cuda: Conv2D: input %v with padding %v is smaller than kernel %dx%d", x.Shape(), opt.Pad, kh, kw))
	}
	if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != cout) {
		panic(fmt.Sprintf("cuda: Conv2D: bias %v for %d output channels", bias.Shape(), cout))
	}
	b.enter()
	defer b.exit()
	res := b.alloc(b.opts.Storage, n, cout, ho, wo)
	if res.Len() == 0 {
		return res
	}
	st := b.opts.Storage
	kk, plane := c*kh*kw, ho*wo
	var col *backend.Tensor
	var doneCol func()
	if kh == 1 && kw == 1 && stride == 1 && pt == 0 && pb == 0 && pl == 0 && pr == 0 {
		col, doneCol = b.as(x, st)
	} else {
		col = b.alloc(st, n, kk, plane)
		doneCol = func() { b.release(col) }
		b.launch1D("im2col", col.Len(), ptr("Conv2D", col), st, ptr("Conv2D", x), x.DType,
			n, c, h, wd, kh, kw, stride, pt, pl, ho, wo)
	}
	ws, doneW := b.as(w, st)
	b.gemm("Conv2D", gemmArgs{
		m: plane, n: cout, k: kk, alpha: 1,
		a: ptr("Conv2D", col), lda: plane, strideA: kk * plane,
		b: ptr("Conv2D", ws), ldb: kk, strideB: 0,
		c: ptr("Conv2D", res), ldc: plane, strideC: cout * plane, batch: n,
	})
	doneCol()
	doneW()
	if bias != nil {
		r := ptr("Conv2D", res)
		b.launch1D("add_bcast", res.Len(), r, st, r, st, ptr("Conv2D", bias), bias.DType, res.Len(), plane, cout)
	}
	return res
}

// zero clears t on the stream.
func (b *Backend) zero(op string, t *backend.Tensor) {
	check(op, cu.MemsetD8Async(ptr(op, t), 0, int64(t.Len())*elemSize(t.DType), b.stream))
}
