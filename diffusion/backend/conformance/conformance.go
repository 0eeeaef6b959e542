// Package conformance is the test suite every backend.Backend must pass: each
// operation of the interface is run on random inputs of several shapes (odd
// sizes included) and compared with a plain float64 reference implementation
// written in this package. Backends call Run from their own tests. It must
// never import a concrete backend or model code.
package conformance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// Run checks every operation of b against the reference implementations.
// tol is the allowed error relative to the magnitude of the expected tensor:
// an element passes when |got-want| <= tol*(|want| + max|want|).
func Run(t *testing.T, b backend.Backend, tol float64) {
	t.Helper()
	h := &harness{b: b, tol: tol, rng: rand.New(rand.NewPCG(1, 2))}
	t.Run("Memory", h.testMemory)
	t.Run("MatMul", h.testMatMul)
	t.Run("Linear", h.testLinear)
	t.Run("Conv2D", h.testConv2D)
	t.Run("GroupNorm", h.testGroupNorm)
	t.Run("LayerNorm", h.testLayerNorm)
	t.Run("Softmax", h.testSoftmax)
	t.Run("Attention", h.testAttention)
	t.Run("Activate", h.testActivate)
	t.Run("GEGLU", h.testGEGLU)
	t.Run("Elementwise", h.testElementwise)
	t.Run("AddChannels", h.testAddChannels)
	t.Run("LinComb", h.testLinComb)
	t.Run("UpsampleNearest2x", h.testUpsample)
	t.Run("Concat", h.testConcat)
	t.Run("Slice", h.testSlice)
	t.Run("Permute", h.testPermute)
	t.Run("Embedding", h.testEmbedding)
	t.Run("Panics", h.testPanics)
}

type harness struct {
	b   backend.Backend
	tol float64
	rng *rand.Rand
}

// input is a random tensor together with the values it was made from.
type input struct {
	t *backend.Tensor
	v []float32
}

// rand returns a tensor of uniform values in [-scale, scale).
func (h *harness) rand(scale float64, shape ...int) input {
	v := make([]float32, backend.NumElements(shape))
	for i := range v {
		v[i] = float32((2*h.rng.Float64() - 1) * scale)
	}
	return input{t: h.b.FromFloat32(v, shape...), v: v}
}

// expect compares a result with the reference values and shape, and checks
// that the op left its inputs unchanged.
func (h *harness) expect(t *testing.T, what string, got *backend.Tensor, shape []int, want []float64, ins ...input) {
	t.Helper()
	if !slices.Equal(got.Shape(), shape) {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape(), shape)
	}
	g := h.b.ToFloat32(got)
	if len(g) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(g), len(want))
	}
	var scale float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	bad := 0
	for i, w := range want {
		d := math.Abs(float64(g[i]) - w)
		if !(d <= h.tol*(math.Abs(w)+scale)) { // catches NaN too
			if bad < 5 {
				t.Errorf("%s: element %d (of shape %v) = %g, want %g (|diff| %.3g)", what, i, shape, g[i], w, d)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements out of tolerance %g", what, bad, len(want), h.tol)
	}
	for k, in := range ins {
		if !slices.Equal(h.b.ToFloat32(in.t), in.v) {
			t.Errorf("%s: input %d was modified", what, k)
		}
	}
}

func (h *harness) testMemory(t *testing.T) {
	if h.b.Name() == "" {
		t.Error("Name is empty")
	}
	src := []float32{1, -2, 3.5, 4, 5, 6}
	x := h.b.FromFloat32(src, 2, 3)
	src[0] = 100
	got := h.b.ToFloat32(x)
	if !slices.Equal(got, []float32{1, -2, 3.5, 4, 5, 6}) {
		t.Errorf("FromFloat32 did not copy its input: %v", got)
	}
	got[1] = 100
	if v := h.b.ToFloat32(x); v[1] != -2 {
		t.Errorf("ToFloat32 returned the tensor's own memory")
	}
	if !slices.Equal(x.Shape(), []int{2, 3}) || x.DType != backend.F32 {
		t.Errorf("FromFloat32: %v", x)
	}
	z := h.b.Zeros(3, 1, 4)
	if !slices.Equal(z.Shape(), []int{3, 1, 4}) {
		t.Errorf("Zeros shape %v", z.Shape())
	}
	for i, v := range h.b.ToFloat32(z) {
		if v != 0 {
			t.Fatalf("Zeros: element %d = %g", i, v)
		}
	}
	r := x.Reshape(3, -1)
	if !slices.Equal(h.b.ToFloat32(r), []float32{1, -2, 3.5, 4, 5, 6}) || !slices.Equal(r.Shape(), []int{3, 2}) {
		t.Errorf("Reshape view: %v %v", r, h.b.ToFloat32(r))
	}
	h.b.Release(h.b.Zeros(2, 2))
}

func (h *harness) testMatMul(t *testing.T) {
	cases := []struct {
		batch, m, n, k int
		transB         bool
		alpha          float32
	}{
		{1, 1, 1, 1, false, 1},
		{1, 3, 7, 5, false, 1},
		{2, 5, 3, 9, true, 0.5},
		{3, 17, 13, 1, false, -2},
		{1, 1, 33, 65, true, 1},
		{1, 64, 64, 64, false, 1},
		{2, 131, 67, 70, false, 0.125},
		{2, 131, 67, 70, true, 0.125},
		{1, 77, 300, 40, true, 1},
		{1, 200, 40, 300, false, 1},
		{1, 129, 257, 263, false, 1},
		{1, 129, 257, 263, true, 1},
		{1, 37, 520, 260, false, 1},
		{1, 37, 520, 260, true, 0.5},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%dx%dx%dx%d_transB=%v", c.batch, c.m, c.n, c.k, c.transB)
		t.Run(name, func(t *testing.T) {
			a := h.rand(1, c.batch, c.m, c.k)
			bshape := []int{c.batch, c.k, c.n}
			if c.transB {
				bshape = []int{c.batch, c.n, c.k}
			}
			b := h.rand(1, bshape...)
			want := refMatMul(f64(a.v), f64(b.v), c.batch, c.m, c.n, c.k, c.transB, float64(c.alpha))
			got := h.b.MatMul(a.t, b.t, c.transB, c.alpha)
			h.expect(t, "MatMul", got, []int{c.batch, c.m, c.n}, want, a, b)
		})
	}
}

func (h *harness) testLinear(t *testing.T) {
	cases := []struct {
		lead    []int
		in, out int
		bias    bool
	}{
		{nil, 5, 3, true},
		{[]int{1}, 1, 1, false},
		{[]int{3}, 5, 4, true},
		{[]int{2, 3}, 7, 6, false},
		{[]int{2, 77}, 33, 17, true},
		{[]int{2, 2, 9}, 8, 5, true},
		{[]int{130}, 96, 80, true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v_%dto%d_bias=%v", c.lead, c.in, c.out, c.bias), func(t *testing.T) {
			x := h.rand(1, append(slices.Clone(c.lead), c.in)...)
			w := h.rand(0.5, c.out, c.in)
			ins := []input{x, w}
			var bt *backend.Tensor
			var bv []float64
			if c.bias {
				b := h.rand(1, c.out)
				bt, bv = b.t, f64(b.v)
				ins = append(ins, b)
			}
			rows := prod(c.lead)
			want := refLinear(f64(x.v), f64(w.v), bv, rows, c.in, c.out)
			got := h.b.Linear(x.t, w.t, bt)
			h.expect(t, "Linear", got, append(slices.Clone(c.lead), c.out), want, ins...)
		})
	}
}

func (h *harness) testConv2D(t *testing.T) {
	cases := []struct {
		c    convShape
		bias bool
	}{
		{convShape{1, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1}, true},
		{convShape{1, 3, 7, 5, 4, 1, 1, 1, 0, 0, 0, 0}, true},
		{convShape{2, 3, 7, 5, 2, 1, 1, 1, 0, 0, 0, 0}, false},
		{convShape{2, 5, 9, 8, 6, 3, 3, 1, 1, 1, 1, 1}, false},
		{convShape{1, 3, 7, 5, 4, 3, 3, 2, 1, 1, 1, 1}, true},
		{convShape{2, 4, 8, 9, 3, 3, 3, 2, 0, 1, 0, 1}, true}, // VAE downsampler
		{convShape{1, 2, 6, 7, 3, 1, 1, 2, 0, 0, 0, 0}, true},
		{convShape{1, 2, 6, 7, 3, 3, 1, 1, 1, 1, 0, 0}, true},
		{convShape{1, 2, 5, 5, 3, 2, 3, 1, 0, 2, 1, 0}, true},
		{convShape{1, 3, 4, 4, 2, 3, 3, 1, 0, 0, 0, 0}, true},
		{convShape{1, 32, 17, 19, 24, 3, 3, 1, 1, 1, 1, 1}, true},
		{convShape{2, 16, 16, 16, 20, 1, 1, 1, 0, 0, 0, 0}, true},
	}
	for _, cs := range cases {
		c := cs.c
		name := fmt.Sprintf("%dx%dx%dx%d_k%dx%d_to%d_s%d_p%d%d%d%d", c.n, c.cin, c.h, c.w, c.kh, c.kw, c.cout, c.stride, c.pt, c.pb, c.pl, c.pr)
		t.Run(name, func(t *testing.T) {
			x := h.rand(1, c.n, c.cin, c.h, c.w)
			w := h.rand(0.5, c.cout, c.cin, c.kh, c.kw)
			ins := []input{x, w}
			var bt *backend.Tensor
			var bv []float64
			if cs.bias {
				b := h.rand(1, c.cout)
				bt, bv = b.t, f64(b.v)
				ins = append(ins, b)
			}
			want := refConv2D(f64(x.v), f64(w.v), bv, c)
			got := h.b.Conv2D(x.t, w.t, bt, backend.Conv2DOptions{Stride: c.stride, Pad: [4]int{c.pt, c.pb, c.pl, c.pr}})
			ho, wo := c.out()
			h.expect(t, "Conv2D", got, []int{c.n, c.cout, ho, wo}, want, ins...)
		})
	}
}

func (h *harness) testGroupNorm(t *testing.T) {
	cases := []struct {
		shape  []int
		groups int
		eps    float32
	}{
		{[]int{2, 6, 4, 5}, 3, 1e-5},
		{[]int{1, 3, 7, 5}, 1, 1e-6},
		{[]int{1, 3, 7, 5}, 3, 1e-6},
		{[]int{2, 8, 10}, 4, 1e-5},
		{[]int{3, 4}, 2, 1e-5},
		{[]int{1, 64, 16, 16}, 32, 1e-6},
	}
	for _, c := range cases {
		for _, silu := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v_g%d_silu=%v", c.shape, c.groups, silu), func(t *testing.T) {
				x := h.rand(2, c.shape...)
				// An offset makes the mean matter.
				for i := range x.v {
					x.v[i] += 0.7
				}
				x.t = h.b.FromFloat32(x.v, c.shape...)
				ch := c.shape[1]
				gamma := h.rand(1, ch)
				beta := h.rand(1, ch)
				spatial := prod(c.shape[2:])
				want := refGroupNorm(f64(x.v), f64(gamma.v), f64(beta.v), c.shape[0], ch, spatial, c.groups, float64(c.eps), silu)
				got := h.b.GroupNorm(x.t, gamma.t, beta.t, c.groups, c.eps, silu)
				h.expect(t, "GroupNorm", got, c.shape, want, x, gamma, beta)
			})
		}
	}
}

func (h *harness) testLayerNorm(t *testing.T) {
	for _, shape := range [][]int{{7}, {5, 7}, {2, 3, 33}, {2, 77, 64}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x := h.rand(3, shape...)
			d := shape[len(shape)-1]
			gamma := h.rand(1, d)
			beta := h.rand(1, d)
			want := refLayerNorm(f64(x.v), f64(gamma.v), f64(beta.v), d, 1e-5)
			got := h.b.LayerNorm(x.t, gamma.t, beta.t, 1e-5)
			h.expect(t, "LayerNorm", got, shape, want, x, gamma, beta)
		})
	}
}

func (h *harness) testSoftmax(t *testing.T) {
	for _, c := range []struct {
		shape []int
		scale float64
	}{{[]int{1}, 1}, {[]int{3, 7}, 3}, {[]int{2, 2, 77}, 5}, {[]int{4, 33}, 200}, {[]int{5, 1000}, 10}} {
		t.Run(fmt.Sprint(c.shape), func(t *testing.T) {
			x := h.rand(c.scale, c.shape...)
			want := refSoftmax(f64(x.v), c.shape[len(c.shape)-1])
			h.expect(t, "Softmax", h.b.Softmax(x.t), c.shape, want, x)
		})
	}
}

func (h *harness) testAttention(t *testing.T) {
	cases := []struct {
		b, lq, lk, heads, dh int
		causal               bool
	}{
		{1, 1, 1, 1, 4, false},
		{1, 5, 5, 1, 8, false},
		{2, 7, 3, 2, 5, false},
		{2, 77, 77, 4, 8, true},
		{1, 77, 77, 12, 4, true},
		{2, 130, 77, 8, 8, false},
		{1, 64, 64, 2, 16, false},
		{1, 300, 300, 1, 40, false},
		{1, 257, 77, 5, 64, false},
		{1, 3, 3, 3, 2, true},
		{1, 70, 5, 2, 4, true}, // Lq > Lk: rows past the last key see every key
		{2, 5, 40, 2, 4, true},
	}
	for _, c := range cases {
		name := fmt.Sprintf("b%d_q%d_k%d_h%d_d%d_causal=%v", c.b, c.lq, c.lk, c.heads, c.dh, c.causal)
		t.Run(name, func(t *testing.T) {
			w := c.heads * c.dh
			q := h.rand(2, c.b, c.lq, w)
			k := h.rand(2, c.b, c.lk, w)
			v := h.rand(1, c.b, c.lk, w)
			want := refAttention(f64(q.v), f64(k.v), f64(v.v), c.b, c.lq, c.lk, c.heads, c.dh, c.causal)
			got := h.b.Attention(q.t, k.t, v.t, backend.AttentionOptions{Heads: c.heads, Causal: c.causal})
			h.expect(t, "Attention", got, []int{c.b, c.lq, w}, want, q, k, v)
		})
	}
}
