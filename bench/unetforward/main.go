// Command unetforward times SD1.5-shaped UNet forwards on the CPU backend
// with random weights (no download): the Go half of `make bench`, run by
// scripts/bench.sh next to bench/unet_torch.py. It prints one RESULT line:
//
//	RESULT engine=go batch=2 best_s=... mean_s=... peak_rss_gib=... params=...
//
// It is a measuring tool only and must never be imported or used to render.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/unet"
)

type options struct {
	batch, size, runs, warmup int
	gcPercent                 int
	memLimitGiB               float64
	cpuProfile                string
}

func main() {
	var o options
	flag.IntVar(&o.batch, "batch", 2, "batch size")
	flag.IntVar(&o.size, "size", 64, "latent height and width")
	flag.IntVar(&o.runs, "runs", 2, "timed forwards after the warm-up")
	flag.IntVar(&o.warmup, "warmup", 1, "untimed forwards first")
	flag.IntVar(&o.gcPercent, "gc-percent", 25, "GOGC while building and running (the weights are ~3.4 GB of live heap; 100 would let the heap double)")
	flag.Float64Var(&o.memLimitGiB, "mem-limit-gib", 0, "soft memory limit (GOMEMLIMIT) in GiB, 0 for none")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed forwards to this file")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "unetforward:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.batch < 1 || o.size < 8 || o.runs < 1 || o.warmup < 0 {
		return fmt.Errorf("batch %d, size %d, runs %d, warmup %d: want batch >= 1, size >= 8, runs >= 1, warmup >= 0", o.batch, o.size, o.runs, o.warmup)
	}
	debug.SetGCPercent(o.gcPercent)
	if o.memLimitGiB > 0 {
		debug.SetMemoryLimit(int64(o.memLimitGiB * (1 << 30)))
	}
	b := cpu.New()
	cfg := unet.SD15()
	params, err := unet.NumParams(cfg)
	if err != nil {
		return err
	}
	start := time.Now()
	w, err := unet.RandomWeights(b, cfg, 1)
	if err != nil {
		return err
	}
	u, err := unet.New(cfg, w)
	if err != nil {
		return err
	}
	fmt.Printf("go %s, GOMAXPROCS %d, GOGC %d, %s, %d params, built in %.1f s, peak RSS after build %.2f GiB\n",
		runtime.Version(), runtime.GOMAXPROCS(0), o.gcPercent, cpu.BLAS(), params, time.Since(start).Seconds(), peakRSSGiB())

	x, ts, ctx := inputs(b, o.batch, o.size)
	var times []float64
	for i := range o.warmup + o.runs {
		if i == o.warmup && o.cpuProfile != "" {
			stop, err := startProfile(o.cpuProfile)
			if err != nil {
				return err
			}
			defer stop()
		}
		t0 := time.Now()
		out := u.Forward(b, x, ts, ctx)
		d := time.Since(t0).Seconds()
		if err := finite(b.ToFloat32(out)); err != nil {
			return err
		}
		b.Release(out)
		what := "run"
		if i < o.warmup {
			what = "warm-up"
		} else {
			times = append(times, d)
		}
		fmt.Printf("go forward %d (%s): %.2f s\n", i+1, what, d)
	}
	best, sum := math.Inf(1), 0.0
	for _, t := range times {
		best = min(best, t)
		sum += t
	}
	fmt.Printf("RESULT engine=go batch=%d best_s=%.3f mean_s=%.3f peak_rss_gib=%.3f params=%d\n",
		o.batch, best, sum/float64(len(times)), peakRSSGiB(), params)
	return nil
}

// inputs are latents of unit scale, timesteps spread over the schedule and
// a unit-scale context, like a real denoising step.
func inputs(b backend.Backend, batch, size int) (*backend.Tensor, []float64, *backend.Tensor) {
	x := unet.RandomValues(unet.Param{Name: "latents", Shape: []int{batch, 4, size, size}, Kind: unet.KindNormShift}, 2)
	ctx := unet.RandomValues(unet.Param{Name: "context", Shape: []int{batch, 77, 768}, Kind: unet.KindNormShift}, 3)
	for _, v := range [][]float32{x, ctx} {
		for i := range v {
			v[i] *= 50 // uniform in ±1
		}
	}
	ts := make([]float64, batch)
	for i := range ts {
		ts[i] = 999 - 250.5*float64(i)
	}
	return b.FromFloat32(x, batch, 4, size, size), ts, b.FromFloat32(ctx, batch, 77, 768)
}

func finite(v []float32) error {
	for i, f := range v {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("output element %d is %v", i, f)
		}
	}
	return nil
}

func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// peakRSSGiB is the process's peak resident set size.
func peakRSSGiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return float64(ru.Maxrss) * 1024 / (1 << 30) // KiB on Linux
}
