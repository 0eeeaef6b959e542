package scheduler

import "github.com/latentfarm/latentfarm/diffusion/backend"

// Euler is diffusers' EulerDiscreteScheduler (Karras et al. 2022, Algorithm
// 2 with s_churn = 0): one Euler step of the probability-flow ODE in sigma.
type Euler struct {
	cfg Config
	sigmaSchedule
}

var (
	_ Sampler    = (*Euler)(nil)
	_ NoiseAdder = (*Euler)(nil)
)

func newEuler(cfg Config, tr *train, schedule string, steps int) *Euler {
	return &Euler{cfg: cfg, sigmaSchedule: eulerSchedule(cfg, tr, schedule, steps)}
}

// Timesteps implements Sampler.
func (e *Euler) Timesteps() []float64 { return append([]float64(nil), e.timesteps...) }

// Sigmas returns the steps+1 noise levels, the last 0.
func (e *Euler) Sigmas() []float64 { return append([]float64(nil), e.sigmas...) }

// InitNoiseSigma implements Sampler.
func (e *Euler) InitNoiseSigma() float64 { return e.initSigma }

// ScaleModelInput implements Sampler: x / sqrt(sigma^2 + 1).
func (e *Euler) ScaleModelInput(b backend.Backend, x *backend.Tensor, step int) *backend.Tensor {
	stepIndex("euler", step, len(e.timesteps))
	return scaleBySigma(b, x, e.sigmas[step])
}

// Step implements Sampler: x + (x - x0)/sigma * (sigma_next - sigma), folded
// into one linear combination of x and the model output.
func (e *Euler) Step(b backend.Backend, modelOut *backend.Tensor, step int, x *backend.Tensor, _ func() *backend.Tensor) *backend.Tensor {
	stepIndex("euler", step, len(e.timesteps))
	sigma, next := e.sigmas[step], e.sigmas[step+1]
	cx, cm := denoisedCoef(e.cfg.PredictionType, sigma)
	dt := (next - sigma) / sigma
	return b.LinComb([]float32{float32(1 + (1-cx)*dt), float32(-cm * dt)}, x, modelOut)
}

// AddNoise implements NoiseAdder: x0 + sigma * noise.
func (e *Euler) AddNoise(b backend.Backend, x0, noise *backend.Tensor, step int) *backend.Tensor {
	stepIndex("euler", step, len(e.timesteps))
	return b.LinComb([]float32{1, float32(e.sigmas[step])}, x0, noise)
}
