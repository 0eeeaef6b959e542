//go:build cuda && bench

// SD1.5-shaped measurements on a GPU for scripts/bench-gpu.sh, built with
// -tags 'cuda bench' (random weights, no download):
//
//	go test -c -tags 'cuda bench' -o bin/gpu/cuda-bench.test ./diffusion/backend/cuda
//	bin/gpu/cuda-bench.test -test.run 'TestBench' -test.v
//
// Each test prints one RESULT line that scripts/bench-gpu.sh tabulates.
package cuda

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/clip"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/diffusion/tokenizer"
	"github.com/latentfarm/latentfarm/diffusion/unet"
	"github.com/latentfarm/latentfarm/diffusion/vae"
)

// benchSD15 is built once per binary: f16 storage and f16 uploads, so the
// weights take 1.7 GB as in PyTorch's .half().
var benchSD15 struct {
	once sync.Once
	b    *Backend
	u    *unet.UNet
	err  error
	load time.Duration
}

func sd15(t *testing.T) (*Backend, *unet.UNet) {
	t.Helper()
	benchSD15.once.Do(func() {
		start := time.Now()
		b, err := New(Options{}.WithUploads(backend.F16))
		if err != nil {
			benchSD15.err = err
			return
		}
		w, err := unet.RandomWeights(b, unet.SD15(), 1)
		if err == nil {
			benchSD15.u, err = unet.New(unet.SD15(), w)
		}
		benchSD15.b, benchSD15.err, benchSD15.load = b, err, time.Since(start)
	})
	if benchSD15.err != nil {
		t.Fatal(benchSD15.err)
	}
	return benchSD15.b, benchSD15.u
}

func benchRuns() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 5
}

func gib(n int64) float64 { return float64(n) / (1 << 30) }

// deviceUsed is total minus free device memory now: this process's context,
// cuBLAS workspace and pool (the GPU machine runs nothing else).
func deviceUsed(t *testing.T, b *Backend) int64 {
	info, err := b.Device()
	if err != nil {
		t.Fatal(err)
	}
	return info.TotalBytes - info.FreeBytes
}

func randomInput(b *Backend, seed uint64, scale float32, shape ...int) *backend.Tensor {
	v := unet.RandomValues(unet.Param{Name: "input", Shape: shape, Kind: unet.KindBias}, seed)
	for i := range v {
		v[i] *= scale / 0.02
	}
	return b.FromFloat32(v, shape...)
}

func finite(t *testing.T, what string, v []float32) {
	for i, f := range v {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			t.Fatalf("%s: element %d is %v", what, i, f)
		}
	}
}

// TestBench_SD15UNet times the UNet forward, batch 2, 64x64 latents.
func TestBench_SD15UNet(t *testing.T) {
	b, u := sd15(t)
	info, _ := b.Device()
	fmt.Printf("device %s (cc %s), cuBLAS %d; SD1.5 random weights built in %.1f s\n",
		info.Name, info.ComputeCapability(), info.CuBLAS, benchSD15.load.Seconds())
	x := randomInput(b, 2, 1, 2, 4, 64, 64)
	ctx := randomInput(b, 3, 1, 2, 77, 768)
	ts := []float64{999, 748.5}
	var times []float64
	var used int64
	for i := range 1 + benchRuns() {
		start := time.Now()
		out := u.Forward(b, x, ts, ctx)
		if err := b.Synchronize(); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start).Seconds()
		used = max(used, deviceUsed(t, b))
		if i == 0 {
			finite(t, "unet output", b.ToFloat32(out))
			fmt.Printf("go-cuda forward warm-up: %.4f s\n", d)
			continue
		}
		times = append(times, d)
	}
	_, peakRes, _, peakLive := b.MemStats()
	best, mean := stats(times)
	fmt.Printf("RESULT engine=go-cuda what=unet batch=2 best_s=%.4f mean_s=%.4f peak_live_gib=%.3f peak_reserved_gib=%.3f device_used_gib=%.3f\n",
		best, mean, gib(peakLive), gib(peakRes), gib(used))
}

// TestBench_SD15Denoise times 20 guided Euler steps of the UNet alone (the
// loop bench-gpu.sh's PyTorch baseline runs), then a full 512x512 image
// (text encoder, 20 steps, VAE decode) through the pipeline.
func TestBench_SD15Denoise(t *testing.T) {
	b, u := sd15(t)
	cond := randomInput(b, 4, 1, 2, 77, 768)
	sampler, err := scheduler.New("euler", "default", scheduler.SD15(), 20)
	if err != nil {
		t.Fatal(err)
	}
	loop := func() float64 {
		start := time.Now()
		lat := b.Scale(randomInput(b, 5, 1, 1, 4, 64, 64), float32(sampler.InitNoiseSigma()))
		for i, ts := range sampler.Timesteps() {
			x := sampler.ScaleModelInput(b, lat, i)
			out := u.Forward(b, b.Concat(0, x, x), []float64{ts, ts}, cond)
			eps := b.LinComb([]float32{1 - 7.5, 7.5}, b.Slice(out, 0, 0, 1), b.Slice(out, 0, 1, 2))
			lat = sampler.Step(b, eps, i, lat, nil)
		}
		finite(t, "latents", b.ToFloat32(lat))
		return time.Since(start).Seconds()
	}
	loop() // warm-up
	var times []float64
	for range max(1, benchRuns()/2) {
		times = append(times, loop())
	}
	best, mean := stats(times)
	_, peakRes, _, peakLive := b.MemStats()
	fmt.Printf("RESULT engine=go-cuda what=denoise20 batch=2 best_s=%.4f mean_s=%.4f it_s=%.2f peak_live_gib=%.3f peak_reserved_gib=%.3f device_used_gib=%.3f\n",
		best, mean, 20/best, gib(peakLive), gib(peakRes), gib(deviceUsed(t, b)))

	m := sd15Model(t, b, u)
	p := pipeline.New(b, m)
	req := pipeline.Request{Prompt: "a photo of an astronaut riding a horse on mars", Width: 512, Height: 512,
		Steps: 20, CFGScale: 7.5, Sampler: "euler", Seed: 42}
	times = times[:0]
	for i := range 3 {
		start := time.Now()
		res, err := p.TextToImage(context.Background(), req, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Image.Rect.Dx() != 512 || res.Image.Rect.Dy() != 512 {
			t.Fatalf("image is %v", res.Image.Rect)
		}
		if i > 0 { // the first image warms up the text encoder and the VAE
			times = append(times, time.Since(start).Seconds())
		}
	}
	best, mean = stats(times)
	_, peakRes, _, peakLive = b.MemStats()
	fmt.Printf("RESULT engine=go-cuda what=image512 steps=20 best_s=%.4f mean_s=%.4f peak_live_gib=%.3f peak_reserved_gib=%.3f device_used_gib=%.3f\n",
		best, mean, gib(peakLive), gib(peakRes), gib(deviceUsed(t, b)))
}

// sd15Model assembles an SD1.5-shaped model around u: random CLIP ViT-L/14
// text encoder and VAE, and a small tokenizer of its own.
func sd15Model(t *testing.T, b *Backend, u *unet.UNet) *checkpoint.Model {
	dir := t.TempDir()
	if err := tokenizer.WriteFolder(dir, []string{"a", "photo", "of", "an", "astronaut", "riding", "horse", "on", "mars"}); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tc := clip.SD15()
	tc.BOSTokenID, tc.EOSTokenID, tc.PadTokenID = tok.BOS(), tok.EOS(), tok.Pad()
	te, err := clip.New(tc, nn.NewRandomWeights(b, 11))
	if err != nil {
		t.Fatal(err)
	}
	vc := vae.SD15()
	v, err := vae.New(vc, nn.NewRandomWeights(b, 12))
	if err != nil {
		t.Fatal(err)
	}
	return &checkpoint.Model{Name: "sd15-random", Family: checkpoint.SD1, Tokenizer: tok,
		TextConfig: tc, TextEncoder: te, UNetConfig: unet.SD15(), UNet: u, VAEConfig: vc, VAE: v,
		Scheduler: scheduler.SD15()}
}

func stats(v []float64) (best, mean float64) {
	best = math.Inf(1)
	for _, x := range v {
		best = math.Min(best, x)
		mean += x
	}
	return best, mean / float64(len(v))
}
