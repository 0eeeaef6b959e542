package scheduler

import (
	"math"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// DPMPP2M is diffusers' DPMSolverMultistepScheduler with algorithm_type
// dpmsolver++, solver_order 2 and solver_type midpoint (Lu et al. 2022,
// "DPM-Solver++", Algorithm 2), known as DPM++ 2M. It works on unscaled
// (variance-preserving) latents and keeps the previous step's x0
// prediction. The first step and the last are first order, as diffusers
// runs them with lower_order_final and a final sigma of 0.
type DPMPP2M struct {
	cfg       Config
	timesteps []float64
	sigmas    []float64 // steps+1 float32 noise levels, the last 0

	prevX0   *backend.Tensor // x0 prediction of step prevStep
	prevStep int
}

var (
	_ Sampler    = (*DPMPP2M)(nil)
	_ NoiseAdder = (*DPMPP2M)(nil)
)

// newDPMPP2M reproduces DPMSolverMultistepScheduler.set_timesteps (0.27.2):
// integer timesteps from linspace(0, T-1, steps+1) rounded (or the
// leading/trailing variants), sigmas interpolated at them; Karras and AYS
// sigmas are mapped back to rounded timesteps in log-sigma space.
func newDPMPP2M(cfg Config, tr *train, schedule string, steps int) *DPMPP2M {
	T := cfg.NumTrainTimesteps
	ts := make([]float64, steps)
	switch cfg.spacing(SpacingLinspace) {
	case SpacingLeading:
		ratio := T / (steps + 1)
		for i := range ts {
			ts[i] = float64((steps-i)*ratio + cfg.StepsOffset)
		}
	case SpacingTrailing:
		ratio := float64(T) / float64(steps)
		for i := range ts {
			ts[i] = math.RoundToEven(float64(T)-float64(i)*ratio) - 1
		}
	default:
		ls := linspace(0, float64(T-1), steps+1)
		for i := range ts {
			ts[i] = math.RoundToEven(ls[steps-i])
		}
	}
	var sig []float64
	switch schedule {
	case ScheduleKarras:
		sig = karrasSigmas(float64(tr.sigmas[0]), float64(tr.sigmas[T-1]), steps)
	case ScheduleAYS:
		sig = aysSigmas(steps)
	default:
		sig = make([]float64, steps)
		for i, t := range ts {
			sig[i] = interpIndex(t, tr.sigmas)
		}
	}
	if schedule != ScheduleDefault {
		for i, s := range sig {
			ts[i] = math.RoundToEven(sigmaToT(s, tr.logSigmas))
		}
	}
	d := &DPMPP2M{cfg: cfg, timesteps: ts, sigmas: make([]float64, steps+1), prevStep: -1}
	for i, s := range sig {
		d.sigmas[i] = f32(s)
	}
	return d
}

// Timesteps implements Sampler.
func (d *DPMPP2M) Timesteps() []float64 { return append([]float64(nil), d.timesteps...) }

// Sigmas returns the steps+1 noise levels, the last 0.
func (d *DPMPP2M) Sigmas() []float64 { return append([]float64(nil), d.sigmas...) }

// InitNoiseSigma implements Sampler: the latents are variance preserving.
func (d *DPMPP2M) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput implements Sampler: the latents go to the model unchanged.
func (d *DPMPP2M) ScaleModelInput(_ backend.Backend, x *backend.Tensor, step int) *backend.Tensor {
	stepIndex("dpmpp_2m", step, len(d.timesteps))
	return x
}

// vp returns alpha_t = 1/sqrt(sigma^2+1) and sigma_t = sigma*alpha_t, the
// variance-preserving coefficients of noise level sigma.
func vp(sigma float64) (alpha, sigmaT float64) {
	alpha = 1 / math.Sqrt(sigma*sigma+1)
	return alpha, sigma * alpha
}

// Step implements Sampler.
func (d *DPMPP2M) Step(b backend.Backend, modelOut *backend.Tensor, step int, x *backend.Tensor, _ func() *backend.Tensor) *backend.Tensor {
	n := len(d.timesteps)
	stepIndex("dpmpp_2m", step, n)
	if step == 0 || step != d.prevStep+1 {
		d.forget(b)
	}
	alphaS, sigmaS := vp(d.sigmas[step])
	// x0 = x0x*x + x0m*modelOut (convert_model_output, dpmsolver++).
	x0x, x0m := 1/alphaS, -sigmaS/alphaS
	if d.cfg.PredictionType == PredictV {
		x0x, x0m = alphaS, -sigmaS
	}
	next := d.sigmas[step+1]
	if next == 0 {
		// Final step to sigma 0: lambda_t is +inf and the update is x0.
		d.forget(b)
		return b.LinComb([]float32{float32(x0x), float32(x0m)}, x, modelOut)
	}
	alphaT, sigmaT := vp(next)
	lambdaT := math.Log(alphaT) - math.Log(sigmaT)
	lambdaS := math.Log(alphaS) - math.Log(sigmaS)
	h := lambdaT - lambdaS
	cs := sigmaT / sigmaS                // coefficient of x
	cd := -alphaT * (math.Exp(-h) - 1.0) // coefficient of D0 (and of 0.5*D1)
	x0 := b.LinComb([]float32{float32(x0x), float32(x0m)}, x, modelOut)
	var out *backend.Tensor
	if d.prevX0 == nil {
		// First order (DPM-Solver++ 1, i.e. DDIM in lambda).
		out = b.LinComb([]float32{float32(cs), float32(cd)}, x, x0)
	} else {
		// Second order, midpoint: D1 = (x0 - prevX0) / r0.
		alphaP, sigmaP := vp(d.sigmas[step-1])
		lambdaP := math.Log(alphaP) - math.Log(sigmaP)
		r0 := (lambdaS - lambdaP) / h
		c1 := 0.5 * cd / r0
		out = b.LinComb([]float32{float32(cs), float32(cd + c1), float32(-c1)}, x, x0, d.prevX0)
	}
	d.forget(b)
	d.prevX0, d.prevStep = x0, step
	return out
}

// forget drops the multistep history.
func (d *DPMPP2M) forget(b backend.Backend) {
	if d.prevX0 != nil {
		b.Release(d.prevX0)
	}
	d.prevX0, d.prevStep = nil, -1
}

// AddNoise implements NoiseAdder: alpha_t * x0 + sigma_t * noise at the
// step's noise level.
func (d *DPMPP2M) AddNoise(b backend.Backend, x0, noise *backend.Tensor, step int) *backend.Tensor {
	stepIndex("dpmpp_2m", step, len(d.timesteps))
	alpha, sigma := vp(d.sigmas[step])
	return b.LinComb([]float32{float32(alpha), float32(sigma)}, x0, noise)
}
