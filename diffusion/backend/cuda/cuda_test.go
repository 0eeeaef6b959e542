//go:build cuda

package cuda

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/conformance"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

func newBackend(t testing.TB, opts Options) *Backend {
	t.Helper()
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func TestConformance_F32(t *testing.T) {
	conformance.Run(t, newBackend(t, Options{}.WithStorage(backend.F32)), 1e-4)
}

// TestConformance_F16 runs the suite with f16 storage: the matrix products
// and attention compute on f16 copies of the f32 inputs.
func TestConformance_F16(t *testing.T) {
	conformance.Run(t, newBackend(t, Options{}), 1e-2)
}

func TestDevice(t *testing.T) {
	b := newBackend(t, Options{})
	info, err := b.Device()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %+v", b.Name(), info)
	if info.Name == "" || info.ComputeMajor < 8 || info.FreeBytes <= 0 || info.FreeBytes > info.TotalBytes || info.CuBLAS == 0 {
		t.Errorf("device info %+v", info)
	}
	all, err := Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Name != info.Name || all[0].TotalBytes != info.TotalBytes {
		t.Errorf("Devices() = %+v, backend says %+v", all, info)
	}
	if _, err := New(Options{Device: len(all)}); err == nil {
		t.Errorf("New on device %d of %d did not fail", len(all), len(all))
	}
}

// TestPool_ReusesBuffers checks that released and collected tensors give
// their device memory to the next allocation of the same size.
func TestPool_ReusesBuffers(t *testing.T) {
	b := newBackend(t, Options{})
	x := b.Zeros(1000, 37)
	p := buf("test", x).ptr
	b.Release(x)
	y := b.Zeros(1000, 37)
	if q := buf("test", y).ptr; q != p {
		t.Fatalf("after Release a same-size tensor got %v, want the freed %v", q, p)
	}
	held := make([]*backend.Tensor, 10)
	for i := range held {
		held[i] = b.Zeros(1 << 20) // 4 MiB each
	}
	_, _, live, _ := b.MemStats()
	held = nil
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		_, _, now, _ := b.MemStats()
		if live-now >= 10*(4<<20) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unreachable tensors were not returned: live %d bytes, was %d", now, live)
		}
		time.Sleep(10 * time.Millisecond)
	}
	reserved, _, _, _ := b.MemStats()
	for range 10 {
		b.Zeros(1 << 20)
	}
	if r, _, _, _ := b.MemStats(); r != reserved {
		t.Errorf("reserved grew from %d to %d bytes: the pool was not used", reserved, r)
	}
	runtime.KeepAlive(y)
}

// closeTo compares two results relative to the largest reference value.
func closeTo(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var scale float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	bad := 0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if !(d <= tol*(math.Abs(float64(want[i]))+scale)) {
			if bad < 3 {
				t.Errorf("%s: element %d = %g, want %g", what, i, got[i], want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements out of tolerance %g", what, bad, len(want), tol)
	}
}

// TestF16Inputs runs every op on f16 tensors (the conformance suite feeds
// f32 ones, which the element-wise ops keep in f32) and compares with the
// CPU backend on the same values rounded to f16.
func TestF16Inputs(t *testing.T) {
	g := newBackend(t, Options{})
	c := cpu.New()
	r := rand.New(rand.NewPCG(3, 4))
	type pair struct{ g, c *backend.Tensor }
	mk := func(scale float64, shape ...int) pair {
		v := make([]float32, backend.NumElements(shape))
		for i := range v {
			v[i] = float32((2*r.Float64() - 1) * scale)
		}
		h := g.Cast(g.FromFloat32(v, shape...), backend.F16)
		return pair{h, c.FromFloat32(g.ToFloat32(h), shape...)}
	}
	x := mk(3, 2, 64, 9, 7)
	y := mk(3, 2, 64, 9, 7)
	gamma, beta := mk(1, 64), mk(1, 64)
	seq := mk(2, 2, 77, 320)
	lnG, lnB := mk(1, 320), mk(1, 320)
	emb := mk(1, 2, 64)
	table := mk(1, 50, 24)
	cases := []struct {
		name string
		run  func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor
	}{
		{"SiLU", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.Activate(p(x), backend.SiLU)
		}},
		{"GELU", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.Activate(p(x), backend.GELU)
		}},
		{"QuickGELU", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.Activate(p(x), backend.QuickGELU)
		}},
		{"GEGLU", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor { return b.GEGLU(p(seq)) }},
		{"Add", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor { return b.Add(p(x), p(y)) }},
		{"Mul", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor { return b.Mul(p(x), p(y)) }},
		{"Scale", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor { return b.Scale(p(x), 0.3) }},
		{"LinComb", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.LinComb([]float32{0.5, -1.5, 2, 0.25, -1}, p(x), p(y), p(x), p(y), p(x))
		}},
		{"AddChannels", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.AddChannels(p(x), p(emb))
		}},
		{"GroupNormSiLU", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.GroupNorm(p(x), p(gamma), p(beta), 32, 1e-5, true)
		}},
		{"LayerNorm", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.LayerNorm(p(seq), p(lnG), p(lnB), 1e-5)
		}},
		{"Softmax", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor { return b.Softmax(p(seq)) }},
		{"Upsample", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.UpsampleNearest2x(p(x))
		}},
		{"Concat", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor { return b.Concat(1, p(x), p(y)) }},
		{"Slice", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor { return b.Slice(p(x), 2, 3, 8) }},
		{"Permute", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.Permute(p(x), 0, 2, 3, 1)
		}},
		{"Embedding", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.Embedding(p(table), []int{49, 0, 1, 2, 7, 7})
		}},
		{"Linear", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.Linear(p(seq), p(mk(0.1, 96, 320)), p(mk(1, 96)))
		}},
		{"Conv2D", func(b backend.Backend, p func(pair) *backend.Tensor) *backend.Tensor {
			return b.Conv2D(p(x), p(mk(0.05, 32, 64, 3, 3)), p(mk(1, 32)), backend.Conv2DOptions{Stride: 2, Pad: [4]int{0, 1, 0, 1}})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.run(g, func(p pair) *backend.Tensor { return p.g })
			want := tc.run(c, func(p pair) *backend.Tensor { return p.c })
			if got.DType != backend.F16 { // every op keeps f16, the compute ops produce the storage type
				t.Errorf("result type %v, want f16", got.DType)
			}
			closeTo(t, tc.name, g.ToFloat32(got), c.ToFloat32(want), 1e-2)
		})
	}
}

// TestAttention_HeadDims covers the SD head dims (40, 64, 80, 160) and
// long sequences that span several query blocks and key tiles.
func TestAttention_HeadDims(t *testing.T) {
	c := cpu.New()
	r := rand.New(rand.NewPCG(5, 6))
	for _, storage := range []backend.DType{backend.F32, backend.F16} {
		g := newBackend(t, Options{}.WithStorage(storage))
		tol := 1e-4
		if storage != backend.F32 {
			tol = 1e-2
		}
		for _, tc := range []struct {
			lq, lk, heads, dh int
			causal            bool
		}{
			{300, 77, 8, 40, false},
			{257, 257, 2, 64, true},
			{129, 77, 4, 80, false},
			{200, 200, 2, 128, false},
			{70, 300, 1, 160, false},
			{130, 130, 1, 160, true},
		} {
			t.Run(fmt.Sprintf("%v_q%d_k%d_d%d_causal=%v", storage, tc.lq, tc.lk, tc.dh, tc.causal), func(t *testing.T) {
				w := tc.heads * tc.dh
				vals := func(n int) []float32 {
					v := make([]float32, n)
					for i := range v {
						v[i] = float32(r.NormFloat64())
					}
					return v
				}
				q, k, v := vals(2*tc.lq*w), vals(2*tc.lk*w), vals(2*tc.lk*w)
				opt := backend.AttentionOptions{Heads: tc.heads, Causal: tc.causal}
				got := g.Attention(g.FromFloat32(q, 2, tc.lq, w), g.FromFloat32(k, 2, tc.lk, w), g.FromFloat32(v, 2, tc.lk, w), opt)
				want := c.Attention(c.FromFloat32(q, 2, tc.lq, w), c.FromFloat32(k, 2, tc.lk, w), c.FromFloat32(v, 2, tc.lk, w), opt)
				closeTo(t, "Attention", g.ToFloat32(got), c.ToFloat32(want), tol)
			})
		}
	}
}

// TestTextToImage_Golden renders the tiny model's euler golden on the GPU:
// within 1e-2 (relative, testfixtures.MaxRelErr) of the reference latents
// with f16 storage, 1e-3 with f32.
func TestTextToImage_Golden(t *testing.T) {
	dir := testfixtures.Dir(t)
	for _, tc := range []struct {
		name string
		opts Options
		tol  float64
	}{
		{"f32", Options{}.WithStorage(backend.F32), 1e-3},
		{"f16", Options{}, 1e-2},
		{"f16_uploads", Options{}.WithUploads(backend.F16), 1e-2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, tc.opts)
			m, err := checkpoint.Load(b, filepath.Join(dir, "model"), checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, run := range []struct{ file, sampler, schedule string }{
				{"txt2img_euler", "euler", "default"},
				{"txt2img_dpmpp_2m_karras", "dpmpp_2m", "karras"},
			} {
				res, err := pipeline.New(b, m).TextToImage(context.Background(), pipeline.Request{
					Prompt: "a photo of an astronaut riding a horse on mars", Width: 16, Height: 16,
					Steps: 10, CFGScale: 7.5, Sampler: run.sampler, Schedule: run.schedule, Seed: 1534,
				}, nil)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := testfixtures.Golden(t, run.file).Tensor("latents")
				t.Logf("%s: latents max relative error %.3g", run.file, testfixtures.MaxRelErr(res.Latents, want))
				testfixtures.AssertClose(t, run.file+" latents", res.Latents, want, tc.tol)
			}
		})
	}
}
