package scheduler

import (
	"math"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// EulerAncestral is diffusers' EulerAncestralDiscreteScheduler: an Euler
// step down to sigma_down followed by fresh noise of size sigma_up, so the
// variance matches sigma_next (k-diffusion's sample_euler_ancestral, eta 1).
type EulerAncestral struct {
	cfg Config
	sigmaSchedule
}

var (
	_ Sampler    = (*EulerAncestral)(nil)
	_ NoiseAdder = (*EulerAncestral)(nil)
)

// newEulerAncestral uses Euler's schedule: diffusers 0.27.2's ancestral
// scheduler computes the same default sigmas and has no Karras option, so
// Karras and AYS follow EulerDiscreteScheduler.
func newEulerAncestral(cfg Config, tr *train, schedule string, steps int) *EulerAncestral {
	return &EulerAncestral{cfg: cfg, sigmaSchedule: eulerSchedule(cfg, tr, schedule, steps)}
}

// Timesteps implements Sampler.
func (e *EulerAncestral) Timesteps() []float64 { return append([]float64(nil), e.timesteps...) }

// Sigmas returns the steps+1 noise levels, the last 0.
func (e *EulerAncestral) Sigmas() []float64 { return append([]float64(nil), e.sigmas...) }

// InitNoiseSigma implements Sampler.
func (e *EulerAncestral) InitNoiseSigma() float64 { return e.initSigma }

// ScaleModelInput implements Sampler: x / sqrt(sigma^2 + 1).
func (e *EulerAncestral) ScaleModelInput(b backend.Backend, x *backend.Tensor, step int) *backend.Tensor {
	stepIndex("euler_a", step, len(e.timesteps))
	return scaleBySigma(b, x, e.sigmas[step])
}

// Step implements Sampler. It calls noise once per step, also on the last
// step (where sigma_up is 0), as diffusers draws it.
func (e *EulerAncestral) Step(b backend.Backend, modelOut *backend.Tensor, step int, x *backend.Tensor, noise func() *backend.Tensor) *backend.Tensor {
	stepIndex("euler_a", step, len(e.timesteps))
	from, to := e.sigmas[step], e.sigmas[step+1]
	up, down := ancestralSigmas(from, to)
	cx, cm := denoisedCoef(e.cfg.PredictionType, from)
	dt := (down - from) / from
	cxs, cms := float32(1+(1-cx)*dt), float32(-cm*dt)
	if noise == nil {
		panic("scheduler: euler_a: Step needs a noise source")
	}
	n := noise()
	if up == 0 {
		return b.LinComb([]float32{cxs, cms}, x, modelOut)
	}
	return b.LinComb([]float32{cxs, cms, float32(up)}, x, modelOut, n)
}

// ancestralSigmas splits a step from sigma `from` to `to` into the
// deterministic part down and the noise part up, in float32 as diffusers
// computes them from its float32 sigmas.
func ancestralSigmas(from, to float64) (up, down float64) {
	f2, t2 := f32(from*from), f32(to*to)
	up = f32(math.Sqrt(f32(f32(t2*f32(f2-t2)) / f2)))
	down = f32(math.Sqrt(math.Max(0, f32(t2-f32(up*up)))))
	return up, down
}

// AddNoise implements NoiseAdder: x0 + sigma * noise.
func (e *EulerAncestral) AddNoise(b backend.Backend, x0, noise *backend.Tensor, step int) *backend.Tensor {
	stepIndex("euler_a", step, len(e.timesteps))
	return b.LinComb([]float32{1, float32(e.sigmas[step])}, x0, noise)
}
