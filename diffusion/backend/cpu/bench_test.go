//go:build bench

package cpu

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// BenchmarkSGEMMTable prints, for SD-sized matrix products, our backend's
// MatMul/Linear/Conv2D/Attention path next to one cblas_sgemm call with
// OpenBLAS threaded over all cores and the pure-Go kernel on all cores.
// Run it with bench/sgemm.sh.
func BenchmarkSGEMMTable(b *testing.B) {
	c := New()
	r := rand.New(rand.NewPCG(1, 1))
	fmt.Fprintf(os.Stdout, "threads %d, %s, elementwise kernels: %s\n", c.threads, BLAS(), simdLevel())
	fmt.Fprintf(os.Stdout, "%-34s %10s %10s %10s %8s %8s\n", "shape (MxNxK)", "ours", "openblas", "pure-go", "ours/ob", "go/ob")
	type shape struct {
		name    string
		m, n, k int
		transB  bool
	}
	shapes := []shape{
		{name: "MatMul 1024^3", m: 1024, n: 1024, k: 1024},
		{name: "conv3x3 320ch 64x64 (Conv2D GEMM)", m: 320, n: 4096, k: 2880},
		{name: "4096x320x2880", m: 4096, n: 320, k: 2880},
		{name: "attn q·kT 4096 tok d40", m: 4096, n: 4096, k: 40, transB: true},
		{name: "attn p·v 4096 tok d40", m: 4096, n: 40, k: 4096},
		{name: "Linear 4096x320<-320", m: 4096, n: 320, k: 320, transB: true},
		{name: "Linear 4096x2560<-320 (GEGLU)", m: 4096, n: 2560, k: 320, transB: true},
		{name: "Linear 77x768<-768 (CLIP)", m: 77, n: 768, k: 768, transB: true},
	}
	for _, s := range shapes {
		a := randSlice(r, s.m*s.k)
		bm := randSlice(r, s.k*s.n)
		out := make([]float32, s.m*s.n)
		ldb := s.n
		if s.transB {
			ldb = s.k
		}
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		at := c.FromFloat32(a, 1, s.m, s.k)
		var bt *backend.Tensor
		if s.transB {
			bt = c.FromFloat32(bm, 1, s.n, s.k)
		} else {
			bt = c.FromFloat32(bm, 1, s.k, s.n)
		}
		ours := gflops(flops, func() {
			if strings.HasPrefix(s.name, "Linear") {
				c.Linear(at.Reshape(s.m, s.k), bt.Reshape(s.n, s.k), nil)
				return
			}
			c.MatMul(at, bt, s.transB, 1)
		})
		ob := 0.0
		if blasGemm != nil {
			setBLASThreads(c.threads)
			ob = gflops(flops, func() { blasGemm(s.transB, s.m, s.n, s.k, 1, a, s.k, bm, ldb, 0, out, s.n) })
			setBLASThreads(1)
		}
		pg := gflops(flops, func() { c.gemmParallel(goGemm, s.transB, s.m, s.n, s.k, 1, a, s.k, bm, ldb, 0, out, s.n) })
		fmt.Fprintf(os.Stdout, "%-34s %10.1f %10.1f %10.1f %8.2f %8.2f\n", s.name, ours, ob, pg, ratio(ours, ob), ratio(pg, ob))
	}
	opTable(c)
}

// opTable times whole backend ops at SD1.5 sizes for one 512x512 image.
func opTable(c *Backend) {
	r := rand.New(rand.NewPCG(2, 2))
	t := func(shape ...int) *backend.Tensor {
		return c.FromFloat32(randSlice(r, backend.NumElements(shape)), shape...)
	}
	x := t(1, 320, 64, 64)
	w := t(320, 320, 3, 3)
	q, k, v := t(1, 4096, 320), t(1, 4096, 320), t(1, 4096, 320)
	ctx := t(1, 77, 320)
	gamma, beta := t(320), t(320)
	ops := []struct {
		name  string
		flops float64
		fn    func()
	}{
		{"Conv2D 320->320 3x3 @64x64", 2 * 320 * 2880 * 4096, func() {
			c.Conv2D(x, w, nil, backend.Conv2DOptions{Stride: 1, Pad: [4]int{1, 1, 1, 1}})
		}},
		{"Attention self 4096 tok 8x40", 4 * 4096 * 4096 * 320, func() { c.Attention(q, k, v, backend.AttentionOptions{Heads: 8}) }},
		{"Attention cross 4096x77 8x40", 4 * 4096 * 77 * 320, func() { c.Attention(q, ctx, ctx, backend.AttentionOptions{Heads: 8}) }},
		{"GroupNorm+SiLU 320x64x64 g32", 0, func() { c.GroupNorm(x, gamma, beta, 32, 1e-5, true) }},
		{"Softmax 320x4096", 0, func() { c.Softmax(q.Reshape(320, 4096)) }},
	}
	fmt.Fprintf(os.Stdout, "\n%-34s %10s %10s\n", "op (SD1.5, one 512x512 image)", "ms", "GFLOP/s")
	for _, o := range ops {
		d := best(o.fn)
		g := 0.0
		if o.flops > 0 {
			g = o.flops / d.Seconds() / 1e9
		}
		fmt.Fprintf(os.Stdout, "%-34s %10.1f %10.1f\n", o.name, float64(d.Microseconds())/1000, g)
	}
}

// best runs fn at least three times and for at least half a second and
// returns its fastest run: the machine is shared, the minimum is the signal.
func best(fn func()) time.Duration {
	fn() // warm up caches and pools
	var min time.Duration
	start := time.Now()
	for i := 0; i < 3 || time.Since(start) < 500*time.Millisecond; i++ {
		t0 := time.Now()
		fn()
		if d := time.Since(t0); i == 0 || d < min {
			min = d
		}
	}
	return min
}

func gflops(flops float64, fn func()) float64 { return flops / best(fn).Seconds() / 1e9 }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
