// Package rng reproduces PyTorch's CPU random number generator
// (torch.Generator("cpu")) bit for bit, so that a seed gives the same
// starting noise as diffusers on CPU. It must never use another source of
// randomness, and never change a draw order torch defines: seeds that users
// share depend on it.
package rng

import "math"

// Generator is torch's CPU generator: an MT19937 engine plus the cached
// second Box-Muller value of the scalar normal path. It is not safe for
// concurrent use.
type Generator struct {
	mt         mt19937
	nextNormal float64
	hasNext    bool
}

// New returns a generator in the state of
// torch.Generator("cpu").manual_seed(seed). torch seeds mt19937 with the low
// 32 bits of the seed.
func New(seed uint64) *Generator {
	g := &Generator{}
	g.mt.seed(uint32(seed))
	return g
}

// Uint32 returns the next 32 random bits (torch's random()).
func (g *Generator) Uint32() uint32 { return g.mt.uint32() }

// Uint64 returns 64 random bits from two draws, the first in the high half
// (torch's random64()).
func (g *Generator) Uint64() uint64 {
	hi := g.mt.uint32()
	lo := g.mt.uint32()
	return uint64(hi)<<32 | uint64(lo)
}

// uniformFloat32 is at::uniform_real_distribution<float>(0, 1): 24 random
// bits scaled by 2^-24.
func (g *Generator) uniformFloat32() float32 {
	return float32(g.mt.uint32()&(1<<24-1)) * (1.0 / (1 << 24))
}

// uniformFloat64 is at::uniform_real_distribution<double>(0, 1): 53 random
// bits of random64() scaled by 2^-53.
func (g *Generator) uniformFloat64() float64 {
	return float64(g.Uint64()&(1<<53-1)) * (1.0 / (1 << 53))
}

// Rand returns n uniform values in [0, 1), equal to torch.rand(n).
func (g *Generator) Rand(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = g.uniformFloat32()
	}
	return out
}

// Randn returns n standard normal values, equal to torch.randn(n) (or any
// shape of n elements) on a CPU generator in the same state.
func (g *Generator) Randn(n int) []float32 {
	out := make([]float32, n)
	if n >= 16 {
		g.normalFill(out)
		return out
	}
	for i := range out {
		out[i] = float32(g.normalFloat64())
	}
	return out
}

// normalFill is torch's vectorised path for float tensors of 16 or more
// elements: fill with uniforms, transform each chunk of 16 with Box-Muller
// pairing element j with j+8, and for a ragged tail draw 16 fresh uniforms
// for the last 16 elements and transform those again.
func (g *Generator) normalFill(data []float32) {
	n := len(data)
	for i := range data {
		data[i] = g.uniformFloat32()
	}
	for i := 0; i+16 <= n; i += 16 {
		boxMuller16(data[i : i+16])
	}
	if n%16 != 0 {
		tail := data[n-16:]
		for i := range tail {
			tail[i] = g.uniformFloat32()
		}
		boxMuller16(tail)
	}
}

// twoPi is 2*pi rounded to float32, as torch's AVX2 kernel broadcasts it.
const twoPi = float32(2 * math.Pi)

// boxMuller16 transforms 16 uniforms in place like torch's
// normal_fill_16_AVX2: u1 = 1-u, radius = sqrt(-2 log u1), theta = 2pi u2,
// all in float32 with avx_mathfun's log and sincos.
func boxMuller16(d []float32) {
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		radius := float32(math.Sqrt(float64(float32(-2 * cephesLogf(u1)))))
		sin, cos := cephesSincosf(float32(twoPi * u2))
		d[j] = float32(radius*cos) + 0
		d[j+8] = float32(radius*sin) + 0
	}
}

// normalFloat64 is at::normal_distribution<double>(0, 1): Box-Muller on two
// 53-bit uniforms, returning the cosine value and caching the sine value
// for the next call.
func (g *Generator) normalFloat64() float64 {
	if g.hasNext {
		g.hasNext = false
		return g.nextNormal
	}
	u1 := g.uniformFloat64()
	u2 := g.uniformFloat64()
	r := math.Sqrt(-2 * math.Log(1-u2))
	theta := 2 * math.Pi * u1
	g.nextNormal, g.hasNext = r*math.Sin(theta), true
	return r * math.Cos(theta)
}
