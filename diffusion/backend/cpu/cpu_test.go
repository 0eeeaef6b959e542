package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/conformance"
)

func TestCPU_Conformance(t *testing.T) {
	conformance.Run(t, New(), 2e-5)
}

// TestAttention_CausalAcrossBlocks covers causal rows in a later block of
// queries (Attention works on blocks of 256), which the conformance shapes
// do not reach, against a float64 reference.
func TestAttention_CausalAcrossBlocks(t *testing.T) {
	const lq, heads, dh = 300, 2, 8
	w := heads * dh
	r := rand.New(rand.NewPCG(9, 9))
	vals := func() []float32 {
		v := make([]float32, lq*w)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	c := New()
	qv, kv, vv := vals(), vals(), vals()
	got := c.ToFloat32(c.Attention(c.FromFloat32(qv, 1, lq, w), c.FromFloat32(kv, 1, lq, w), c.FromFloat32(vv, 1, lq, w),
		backend.AttentionOptions{Heads: heads, Causal: true}))
	for h := range heads {
		for i := range lq {
			p := make([]float64, i+1)
			mx := math.Inf(-1)
			for j := range p {
				for d := range dh {
					p[j] += float64(qv[i*w+h*dh+d]) * float64(kv[j*w+h*dh+d])
				}
				p[j] /= math.Sqrt(dh)
				mx = math.Max(mx, p[j])
			}
			var sum float64
			for j := range p {
				p[j] = math.Exp(p[j] - mx)
				sum += p[j]
			}
			for d := range dh {
				var want float64
				for j := range p {
					want += p[j] / sum * float64(vv[j*w+h*dh+d])
				}
				if g := float64(got[i*w+h*dh+d]); math.Abs(g-want) > 1e-5*(1+math.Abs(want)) {
					t.Fatalf("head %d row %d dim %d: %g, want %g", h, i, d, g, want)
				}
			}
		}
	}
}
