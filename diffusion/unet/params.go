package unet

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// weightLoader is what the block constructors load layers from: *nn.Loader
// when building a model, a shapeRecorder when listing its parameters, so the
// list can never drift from what New loads.
type weightLoader interface {
	Linear(prefix string, in, out int, bias bool) nn.Linear
	Conv2d(prefix string, in, out, kernel, stride, pad int) nn.Conv2d
	GroupNorm(prefix string, channels, groups int, eps float32) nn.GroupNorm
	LayerNorm(prefix string, dim int, eps float32) nn.LayerNorm
	Err() error
}

var _ weightLoader = (*nn.Loader)(nil)

// ParamKind says what a parameter is, which decides its random init.
type ParamKind uint8

// Parameter kinds.
const (
	KindWeight    ParamKind = iota // Linear or Conv2d weight
	KindBias                       // Linear or Conv2d bias
	KindNormScale                  // GroupNorm or LayerNorm gamma
	KindNormShift                  // GroupNorm or LayerNorm beta
)

// Param is one weight of the UNet: its diffusers name and shape.
type Param struct {
	Name  string
	Shape []int
	Kind  ParamKind
}

// shapeRecorder lists the parameters the constructors ask for, in the
// naming convention of nn.Loader (prefix.weight, prefix.bias).
type shapeRecorder struct{ params []Param }

func (r *shapeRecorder) add(name string, kind ParamKind, shape ...int) {
	r.params = append(r.params, Param{Name: name, Shape: shape, Kind: kind})
}

func (r *shapeRecorder) Linear(prefix string, in, out int, bias bool) nn.Linear {
	r.add(prefix+".weight", KindWeight, out, in)
	if bias {
		r.add(prefix+".bias", KindBias, out)
	}
	return nn.Linear{}
}

func (r *shapeRecorder) Conv2d(prefix string, in, out, kernel, stride, pad int) nn.Conv2d {
	r.add(prefix+".weight", KindWeight, out, in, kernel, kernel)
	r.add(prefix+".bias", KindBias, out)
	return nn.Conv2d{Opt: backend.Conv2DOptions{Stride: stride, Pad: [4]int{pad, pad, pad, pad}}}
}

func (r *shapeRecorder) GroupNorm(prefix string, channels, groups int, eps float32) nn.GroupNorm {
	r.add(prefix+".weight", KindNormScale, channels)
	r.add(prefix+".bias", KindNormShift, channels)
	return nn.GroupNorm{Groups: groups, Eps: eps}
}

func (r *shapeRecorder) LayerNorm(prefix string, dim int, eps float32) nn.LayerNorm {
	r.add(prefix+".weight", KindNormScale, dim)
	r.add(prefix+".bias", KindNormShift, dim)
	return nn.LayerNorm{Eps: eps}
}

func (r *shapeRecorder) Err() error { return nil }

// Params lists every weight a UNet built from cfg loads, in load order.
func Params(cfg Config) ([]Param, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &shapeRecorder{}
	build(cfg, r)
	return r.params, nil
}

// NumParams is the number of scalar weights of a UNet built from cfg.
func NumParams(cfg Config) (int64, error) {
	ps, err := Params(cfg)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range ps {
		n += int64(backend.NumElements(p.Shape))
	}
	return n, nil
}

// RandomValues returns the deterministic random init of p for seed: weights
// uniform with variance 1/fan_in (activations keep their scale), biases and
// norm shifts uniform in ±0.02, norm scales 1 ± 0.1. Each tensor draws from
// its own stream keyed by seed and name, so the order of calls is free.
func RandomValues(p Param, seed uint64) []float32 {
	h := fnv.New64a()
	h.Write([]byte(p.Name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	n := backend.NumElements(p.Shape)
	out := make([]float32, n)
	var center, half float64
	switch p.Kind {
	case KindWeight:
		fanIn := 1
		if len(p.Shape) > 1 {
			fanIn = n / p.Shape[0]
		}
		half = math.Sqrt(3 / float64(fanIn))
	case KindNormScale:
		center, half = 1, 0.1
	default:
		half = 0.02
	}
	for i := range out {
		out[i] = float32(center + half*(2*rng.Float64()-1))
	}
	return out
}

// RandomWeights builds the full weight set of cfg with RandomValues on b.
// Tensors are generated in parallel, one host buffer per tensor at a time.
func RandomWeights(b backend.Backend, cfg Config, seed uint64) (nn.TensorMap, error) {
	ps, err := Params(cfg)
	if err != nil {
		return nil, fmt.Errorf("unet: random weights: %w", err)
	}
	m := make(nn.TensorMap, len(ps))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan Param)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				v := RandomValues(p, seed)
				mu.Lock()
				m[p.Name] = b.FromFloat32(v, p.Shape...)
				mu.Unlock()
			}
		}()
	}
	for _, p := range ps {
		next <- p
	}
	close(next)
	wg.Wait()
	return m, nil
}
