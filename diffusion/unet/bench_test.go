//go:build bench && linux

// Full-size SD1.5 UNet runs: minutes on the CPU backend and 3.4 GB of f32
// weights, so they only build with -tags bench:
//
//	go test -tags bench ./diffusion/unet -run TestSD15Forward -v -timeout 60m
//	go test -tags bench ./diffusion/unet -run '^$' -bench SD15 -benchtime 1x -timeout 60m
package unet

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// maxRSS is the process's peak resident set size in bytes.
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

func gib(n int64) string { return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30)) }

var sd15 struct {
	once sync.Once
	u    *UNet
	err  error
	load time.Duration
}

// sd15UNet builds the SD1.5 UNet with random weights once per test binary.
func sd15UNet(tb testing.TB, b backend.Backend) *UNet {
	tb.Helper()
	sd15.once.Do(func() {
		start := time.Now()
		var w nn.TensorMap
		w, sd15.err = RandomWeights(b, SD15(), 1)
		if sd15.err == nil {
			sd15.u, sd15.err = New(SD15(), w)
		}
		sd15.load = time.Since(start)
	})
	if sd15.err != nil {
		tb.Fatal(sd15.err)
	}
	return sd15.u
}

func sd15Inputs(b backend.Backend, batch int) (*backend.Tensor, []float64, *backend.Tensor) {
	x := RandomValues(Param{Name: "latents", Shape: []int{batch, 4, 64, 64}, Kind: KindNormShift}, 2)
	for i := range x {
		x[i] *= 50 // ±1 latents
	}
	ctx := RandomValues(Param{Name: "context", Shape: []int{batch, 77, 768}, Kind: KindNormShift}, 3)
	for i := range ctx {
		ctx[i] *= 50
	}
	ts := make([]float64, batch)
	for i := range ts {
		ts[i] = 999 - 250.5*float64(i)
	}
	return b.FromFloat32(x, batch, 4, 64, 64), ts, b.FromFloat32(ctx, batch, 77, 768)
}

// TestSD15Forward runs one SD1.5-shaped forward at 64x64 latents (512x512
// images), batch 1, and reports time and peak memory.
func TestSD15Forward(t *testing.T) {
	b := cpu.New()
	u := sd15UNet(t, b)
	n, _ := NumParams(SD15())
	t.Logf("SD15 random weights: %d params, built in %v, peak RSS %s", n, sd15.load.Round(time.Millisecond), gib(maxRSS()))
	x, ts, ctx := sd15Inputs(b, 1)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	out := u.Forward(b, x, ts, ctx)
	elapsed := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	v := b.ToFloat32(out)
	for _, f := range v {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			t.Fatalf("output holds %v", f)
		}
	}
	t.Logf("SD15 forward 1x4x64x64 on %s (GOMAXPROCS %d): %v; allocated %s during the forward; peak RSS %s; heap sys %s",
		b.Name(), runtime.GOMAXPROCS(0), elapsed.Round(time.Millisecond),
		gib(int64(after.TotalAlloc-before.TotalAlloc)), gib(maxRSS()), gib(int64(after.HeapSys)))
}

// BenchmarkSD15Forward times SD1.5-shaped forwards at 64x64 latents.
func BenchmarkSD15Forward(bm *testing.B) {
	b := cpu.New()
	u := sd15UNet(bm, b)
	for _, batch := range []int{1, 2} {
		bm.Run(fmt.Sprintf("batch=%d", batch), func(bm *testing.B) {
			x, ts, ctx := sd15Inputs(b, batch)
			bm.ResetTimer()
			for range bm.N {
				u.Forward(b, x, ts, ctx)
			}
			bm.StopTimer()
			bm.ReportMetric(float64(maxRSS())/(1<<30), "peakRSS-GiB")
		})
	}
}
