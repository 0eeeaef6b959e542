package unet

import (
	"math"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// maxPeriod is the longest wavelength of the sinusoidal embedding
// (diffusers get_timestep_embedding, from "Attention Is All You Need").
const maxPeriod = 10000

// TimestepFeatures returns the sinusoidal timestep features [len(ts), dim]
// on the host, as diffusers' Timesteps module computes them: frequencies
// exp(-ln(10000) * i / (dim/2 - shift)), sin then cos (cos then sin when
// flip), a zero column when dim is odd. Timesteps may be fractional. The
// arithmetic is rounded to float32 at the same steps as torch's, and exp is
// torch's own float32 algorithm, so the result matches diffusers to about
// one ulp.
func TimestepFeatures(ts []float64, dim int, flip bool, shift float64) []float32 {
	half := dim / 2
	freqs := make([]float32, half)
	negLog := float32(-math.Log(maxPeriod))
	den := float32(float64(half) - shift)
	for i := range freqs {
		exponent := negLog * float32(i) / den
		freqs[i] = expf32(exponent)
	}
	out := make([]float32, len(ts)*dim)
	for n, t := range ts {
		row := out[n*dim : (n+1)*dim]
		sinAt, cosAt := 0, half
		if flip {
			sinAt, cosAt = half, 0
		}
		for i, f := range freqs {
			arg := float64(float32(t) * f)
			row[sinAt+i] = float32(math.Sin(arg))
			row[cosAt+i] = float32(math.Cos(arg))
		}
	}
	return out
}

// expf32 is exp in float32 the way torch's vectorised CPU kernel (SLEEF's
// expf_u10 with fused multiply-adds) computes it. A correctly rounded exp
// differs from it by one ulp for some frequencies, which at t=999 moves
// sin/cos by up to 2e-6 (30 float32 ulps).
func expf32(d float32) float32 {
	fma := func(a, b, c float32) float32 { return float32(math.FMA(float64(a), float64(b), float64(c))) }
	const (
		log2e  = 1.442695040888963407359924681001892137426645954152985934135449406931
		ln2Hi  = 0.693145751953125 // ln 2 split in two for an exact reduction
		ln2Lo  = 1.428606765330187045e-06
		negMin = -104 // exp underflows to 0 below this
		posMax = 100  // and overflows above this
	)
	if d < negMin {
		return 0
	}
	if d > posMax {
		return float32(math.Inf(1))
	}
	q := float32(math.RoundToEven(float64(d * log2e)))
	s := fma(q, -ln2Hi, d)
	s = fma(q, -ln2Lo, s)
	// Minimax polynomial for (exp(s) - 1 - s) / s^2 on [-ln2/2, ln2/2].
	u := float32(0.000198527617612853646278381)
	for _, c := range []float32{0.00139304355252534151077271, 0.00833336077630519866943359,
		0.0416664853692054748535156, 0.166666671633720397949219, 0.5} {
		u = fma(u, s, c)
	}
	u = 1 + fma(s*s, u, s)
	return float32(math.Ldexp(float64(u), int(q)))
}

// timeEmbedding is diffusers' TimestepEmbedding: linear, SiLU, linear.
type timeEmbedding struct {
	linear1, linear2 nn.Linear
}

func loadTimeEmbedding(l weightLoader, in, dim int) timeEmbedding {
	return timeEmbedding{
		linear1: l.Linear("time_embedding.linear_1", in, dim, true),
		linear2: l.Linear("time_embedding.linear_2", dim, dim, true),
	}
}

func (m timeEmbedding) forward(b backend.Backend, feats *backend.Tensor) *backend.Tensor {
	h := m.linear1.Forward(b, feats)
	a := b.Activate(h, backend.SiLU)
	b.Release(h)
	out := m.linear2.Forward(b, a)
	b.Release(a)
	return out
}
