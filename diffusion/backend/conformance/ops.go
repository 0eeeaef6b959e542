package conformance

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

func (h *harness) testActivate(t *testing.T) {
	acts := []struct {
		a   backend.Activation
		ref func(float64) float64
	}{
		{backend.SiLU, refSiLU},
		{backend.GELU, refGELU},
		{backend.QuickGELU, refQuickGELU},
		{backend.GELUTanh, refGELUTanh},
	}
	for _, a := range acts {
		for _, shape := range [][]int{{9}, {1, 3, 7, 5}, {2, 77, 40}} {
			t.Run(fmt.Sprintf("%d_%v", a.a, shape), func(t *testing.T) {
				x := h.rand(6, shape...)
				want := f64(x.v)
				for i, v := range want {
					want[i] = a.ref(v)
				}
				h.expect(t, "Activate", h.b.Activate(x.t, a.a), shape, want, x)
			})
		}
		// Exact values where the approximations differ from each other.
		t.Run(fmt.Sprintf("%d_fixed", a.a), func(t *testing.T) {
			v := []float32{-10, -3, -1, -0.5, 0, 0.5, 1, 3, 10}
			x := input{t: h.b.FromFloat32(v, len(v)), v: v}
			want := f64(v)
			for i, w := range want {
				want[i] = a.ref(w)
			}
			h.expect(t, "Activate", h.b.Activate(x.t, a.a), []int{len(v)}, want, x)
		})
	}
}

func (h *harness) testGEGLU(t *testing.T) {
	for _, shape := range [][]int{{2}, {3, 10}, {2, 7, 18}, {1, 64, 640}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x := h.rand(4, shape...)
			d := shape[len(shape)-1]
			xv := f64(x.v)
			var want []float64
			for r := 0; r < len(xv)/d; r++ {
				for i := 0; i < d/2; i++ {
					want = append(want, xv[r*d+i]*refGELU(xv[r*d+d/2+i]))
				}
			}
			out := slices.Clone(shape)
			out[len(out)-1] = d / 2
			h.expect(t, "GEGLU", h.b.GEGLU(x.t), out, want, x)
		})
	}
}

func (h *harness) testElementwise(t *testing.T) {
	for _, shape := range [][]int{{1}, {7}, {1, 3, 7, 5}, {2, 320, 9, 7}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			a := h.rand(2, shape...)
			b := h.rand(2, shape...)
			av, bv := f64(a.v), f64(b.v)
			add, mul, scl := make([]float64, len(av)), make([]float64, len(av)), make([]float64, len(av))
			for i := range av {
				add[i] = av[i] + bv[i]
				mul[i] = av[i] * bv[i]
				scl[i] = float64(float32(-0.37)) * av[i]
			}
			h.expect(t, "Add", h.b.Add(a.t, b.t), shape, add, a, b)
			h.expect(t, "Mul", h.b.Mul(a.t, b.t), shape, mul, a, b)
			h.expect(t, "Scale", h.b.Scale(a.t, -0.37), shape, scl, a)
		})
	}
}

func (h *harness) testAddChannels(t *testing.T) {
	for _, shape := range [][]int{{1, 3, 7, 5}, {2, 4, 3, 3}, {2, 3, 7}, {2, 5}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x := h.rand(1, shape...)
			b := h.rand(1, shape[0], shape[1])
			xv, bv := f64(x.v), f64(b.v)
			spatial := prod(shape[2:])
			want := make([]float64, len(xv))
			for i := range xv {
				want[i] = xv[i] + bv[i/spatial]
			}
			h.expect(t, "AddChannels", h.b.AddChannels(x.t, b.t), shape, want, x, b)
		})
	}
}

func (h *harness) testLinComb(t *testing.T) {
	for n := 1; n <= 4; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			shape := []int{2, 3, 7, 5}
			coef := make([]float32, n)
			ins := make([]input, n)
			ts := make([]*backend.Tensor, n)
			want := make([]float64, prod(shape))
			for j := range ins {
				coef[j] = float32(2*h.rng.Float64() - 1)
				ins[j] = h.rand(3, shape...)
				ts[j] = ins[j].t
				for i, v := range ins[j].v {
					want[i] += float64(coef[j]) * float64(v)
				}
			}
			h.expect(t, "LinComb", h.b.LinComb(coef, ts...), shape, want, ins...)
		})
	}
}

func (h *harness) testUpsample(t *testing.T) {
	for _, shape := range [][]int{{1, 3, 7, 5}, {2, 2, 1, 1}, {1, 16, 8, 8}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x := h.rand(1, shape...)
			want := refUpsample(f64(x.v), shape[0]*shape[1], shape[2], shape[3])
			out := []int{shape[0], shape[1], 2 * shape[2], 2 * shape[3]}
			h.expect(t, "UpsampleNearest2x", h.b.UpsampleNearest2x(x.t), out, want, x)
		})
	}
}

func (h *harness) testConcat(t *testing.T) {
	cases := []struct {
		axis   int
		shapes [][]int
	}{
		{0, [][]int{{3}, {1}, {4}}},
		{0, [][]int{{2, 5}, {1, 5}}},
		{1, [][]int{{2, 5}, {2, 3}, {2, 1}}},
		{-1, [][]int{{2, 3, 4}, {2, 3, 2}}},
		{1, [][]int{{1, 3, 7, 5}, {1, 2, 7, 5}}},
		{2, [][]int{{2, 3, 7, 5}, {2, 3, 1, 5}, {2, 3, 2, 5}}},
		{3, [][]int{{2, 3, 7, 5}, {2, 3, 7, 4}}},
		{0, [][]int{{1, 77, 8}, {1, 77, 8}}},
		{1, [][]int{{2, 3, 4}}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("axis%d_%v", c.axis, c.shapes), func(t *testing.T) {
			ins := make([]input, len(c.shapes))
			ts := make([]*backend.Tensor, len(c.shapes))
			xs := make([][]float64, len(c.shapes))
			for i, s := range c.shapes {
				ins[i] = h.rand(1, s...)
				ts[i] = ins[i].t
				xs[i] = f64(ins[i].v)
			}
			axis := c.axis
			if axis < 0 {
				axis += len(c.shapes[0])
			}
			want, out := refConcat(axis, xs, c.shapes)
			h.expect(t, "Concat", h.b.Concat(c.axis, ts...), out, want, ins...)
		})
	}
}

func (h *harness) testSlice(t *testing.T) {
	cases := []struct {
		shape            []int
		axis, start, end int
	}{
		{[]int{9}, 0, 2, 7},
		{[]int{4, 6}, 0, 1, 3},
		{[]int{4, 6}, 1, 0, 6},
		{[]int{4, 6}, -1, 5, 6},
		{[]int{2, 3, 7, 5}, 1, 1, 3},
		{[]int{2, 3, 7, 5}, 2, 3, 7},
		{[]int{2, 3, 7, 5}, 3, 0, 2},
		{[]int{2, 77, 64}, 2, 32, 64},
		{[]int{2, 77, 64}, 0, 1, 2},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v_axis%d_%d:%d", c.shape, c.axis, c.start, c.end), func(t *testing.T) {
			x := h.rand(1, c.shape...)
			axis := c.axis
			if axis < 0 {
				axis += len(c.shape)
			}
			want, out := refSlice(f64(x.v), c.shape, axis, c.start, c.end)
			h.expect(t, "Slice", h.b.Slice(x.t, c.axis, c.start, c.end), out, want, x)
		})
	}
}

func (h *harness) testPermute(t *testing.T) {
	cases := []struct {
		shape, perm []int
	}{
		{[]int{5}, []int{0}},
		{[]int{3, 7}, []int{1, 0}},
		{[]int{3, 7}, []int{0, 1}},
		{[]int{2, 3, 5}, []int{0, 2, 1}},
		{[]int{2, 3, 5}, []int{2, 0, 1}},
		{[]int{2, 3, 5}, []int{1, 2, 0}},
		{[]int{2, 7, 3, 5}, []int{0, 2, 1, 3}},
		{[]int{2, 7, 3, 5}, []int{0, 2, 3, 1}},
		{[]int{2, 7, 3, 5}, []int{0, 3, 1, 2}},
		{[]int{2, 7, 3, 5}, []int{3, 2, 1, 0}},
		{[]int{1, 320, 9, 7}, []int{0, 2, 3, 1}},
		{[]int{2, 3, 1, 4, 5}, []int{4, 0, 3, 2, 1}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v_%v", c.shape, c.perm), func(t *testing.T) {
			x := h.rand(1, c.shape...)
			want, out := refPermute(f64(x.v), c.shape, c.perm)
			h.expect(t, "Permute", h.b.Permute(x.t, c.perm...), out, want, x)
		})
	}
}

func (h *harness) testEmbedding(t *testing.T) {
	for _, ids := range [][]int{{0}, {3, 0, 9, 3}, {9, 9, 1, 2, 5, 7, 8}} {
		t.Run(fmt.Sprint(ids), func(t *testing.T) {
			table := h.rand(1, 10, 6)
			tv := f64(table.v)
			var want []float64
			for _, id := range ids {
				want = append(want, tv[id*6:(id+1)*6]...)
			}
			h.expect(t, "Embedding", h.b.Embedding(table.t, ids), []int{len(ids), 6}, want, table)
		})
	}
}

// testPanics checks that shapes which do not fit an op panic, as the
// contract asks, instead of returning garbage.
func (h *harness) testPanics(t *testing.T) {
	b := h.b
	x := func(shape ...int) *backend.Tensor { return b.Zeros(shape...) }
	cases := []struct {
		name string
		fn   func()
	}{
		{"Add", func() { b.Add(x(2, 3), x(3, 2)) }},
		{"Mul", func() { b.Mul(x(2, 3), x(2, 4)) }},
		{"LinComb", func() { b.LinComb([]float32{1, 1}, x(2, 3), x(2, 2)) }},
		{"LinCombCount", func() { b.LinComb([]float32{1}, x(2, 3), x(2, 3)) }},
		{"MatMul", func() { b.MatMul(x(1, 2, 3), x(1, 4, 5), false, 1) }},
		{"MatMulTransB", func() { b.MatMul(x(1, 2, 3), x(1, 3, 5), true, 1) }},
		{"MatMulBatch", func() { b.MatMul(x(2, 2, 3), x(1, 3, 5), false, 1) }},
		{"Linear", func() { b.Linear(x(2, 3), x(4, 5), nil) }},
		{"LinearBias", func() { b.Linear(x(2, 3), x(4, 3), x(5)) }},
		{"Conv2D", func() { b.Conv2D(x(1, 3, 5, 5), x(2, 4, 3, 3), nil, backend.Conv2DOptions{}) }},
		{"Conv2DTooSmall", func() { b.Conv2D(x(1, 3, 2, 2), x(2, 3, 3, 3), nil, backend.Conv2DOptions{}) }},
		{"GroupNorm", func() { b.GroupNorm(x(1, 6, 2, 2), x(6), x(6), 4, 1e-5, false) }},
		{"GroupNormGamma", func() { b.GroupNorm(x(1, 6, 2, 2), x(3), x(6), 3, 1e-5, false) }},
		{"LayerNorm", func() { b.LayerNorm(x(2, 6), x(5), x(5), 1e-5) }},
		{"Conv2DBias", func() { b.Conv2D(x(1, 3, 5, 5), x(2, 3, 3, 3), x(3), backend.Conv2DOptions{}) }},
		{"AttentionBatch", func() { b.Attention(x(2, 3, 8), x(2, 4, 8), x(1, 4, 8), backend.AttentionOptions{Heads: 2}) }},
		{"Attention", func() { b.Attention(x(1, 3, 8), x(1, 4, 8), x(1, 5, 8), backend.AttentionOptions{Heads: 2}) }},
		{"AttentionHeads", func() { b.Attention(x(1, 3, 8), x(1, 4, 8), x(1, 4, 8), backend.AttentionOptions{Heads: 3}) }},
		{"GEGLU", func() { b.GEGLU(x(2, 5)) }},
		{"AddChannels", func() { b.AddChannels(x(2, 3, 4, 4), x(2, 4)) }},
		{"Concat", func() { b.Concat(1, x(2, 3), x(3, 3)) }},
		{"Slice", func() { b.Slice(x(2, 3), 1, 2, 4) }},
		{"Permute", func() { b.Permute(x(2, 3, 4), 0, 1) }},
		{"PermuteRepeated", func() { b.Permute(x(2, 3, 4), 0, 1, 1) }},
		{"Embedding", func() { b.Embedding(x(10, 4), []int{3, 10}) }},
		{"FromFloat32", func() { b.FromFloat32([]float32{1, 2, 3}, 2, 2) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("%s with shapes that do not fit did not panic", c.name)
				}
				if msg := fmt.Sprint(r); !strings.Contains(strings.ToLower(msg), strings.ToLower(c.name[:min(len(c.name), 4)])) {
					t.Errorf("panic message does not name the op: %q", msg)
				}
			}()
			c.fn()
		})
	}
}
