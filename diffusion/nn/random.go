package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// RandomWeights makes deterministic random weights for whatever model is
// built from it: normal(0, std) for matrices and kernels, scaled by fan-in,
// zeros for biases and ones for norm scales. It remembers what it made so
// the weights can be saved.
type RandomWeights struct {
	b     backend.Backend
	rng   *rand.Rand
	Names []string
	made  map[string]made
}

type made struct {
	shape  []int
	values []float32
	t      *backend.Tensor
}

var _ Maker = (*RandomWeights)(nil)

// NewRandomWeights returns a weight maker seeded with seed.
func NewRandomWeights(b backend.Backend, seed uint64) *RandomWeights {
	return &RandomWeights{b: b, rng: rand.New(rand.NewPCG(seed, 0x6c61_7465_6e74)), made: map[string]made{}}
}

// Tensor implements Weights for weights already made.
func (r *RandomWeights) Tensor(name string) (*backend.Tensor, error) {
	m, ok := r.made[name]
	if !ok {
		return nil, fmt.Errorf("weight %q: %w", name, ErrMissingWeight)
	}
	return m.t, nil
}

// Make implements Maker. Asking twice for one name returns the same tensor.
func (r *RandomWeights) Make(name string, shape []int) (*backend.Tensor, error) {
	if m, ok := r.made[name]; ok {
		if !equalShape(m.shape, shape) {
			return nil, fmt.Errorf("weight %q: asked for %v and %v: %w", name, m.shape, shape, ErrShape)
		}
		return m.t, nil
	}
	vals := make([]float32, backend.NumElements(shape))
	switch {
	case strings.HasSuffix(name, ".bias"):
	case len(shape) == 1:
		for i := range vals {
			vals[i] = 1
		}
	default:
		fanIn := backend.NumElements(shape[1:])
		if strings.Contains(name, "embedding") {
			fanIn = 1
		}
		std := 1 / math.Sqrt(float64(fanIn))
		for i := range vals {
			vals[i] = float32(r.rng.NormFloat64() * std)
		}
	}
	t := r.b.FromFloat32(vals, shape...)
	r.made[name] = made{shape: append([]int(nil), shape...), values: vals, t: t}
	r.Names = append(r.Names, name)
	return t, nil
}

// Values returns the host copy and shape of a weight made earlier.
func (r *RandomWeights) Values(name string) ([]float32, []int) {
	m := r.made[name]
	return m.values, m.shape
}
