package scheduler

import (
	"fmt"
	"math"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// DDIM is diffusers' DDIMScheduler with eta 0 (Song et al. 2021,
// "Denoising Diffusion Implicit Models", eq. 12 without noise): the
// deterministic sampler in the alpha parametrisation.
type DDIM struct {
	cfg        Config
	timesteps  []float64
	alphas     []float64 // alphas_cumprod at each step's timestep
	prevAlphas []float64 // alphas_cumprod at each step's previous timestep
}

var (
	_ Sampler    = (*DDIM)(nil)
	_ NoiseAdder = (*DDIM)(nil)
)

// newDDIM reproduces DDIMScheduler.set_timesteps (0.27.2): integer
// timesteps by spacing ("leading" by default), and the previous timestep of
// each step is t - T//steps whatever the spacing, as diffusers computes it.
func newDDIM(cfg Config, tr *train, schedule string, steps int) (*DDIM, error) {
	if schedule != ScheduleDefault {
		return nil, fmt.Errorf("scheduler: ddim: schedule %q is not supported: DDIM steps through the training alphas, it has no sigma schedule (use euler or dpmpp_2m for %s)", schedule, schedule)
	}
	if cfg.ClipSample {
		return nil, fmt.Errorf("scheduler: ddim: clip_sample is not supported")
	}
	T := cfg.NumTrainTimesteps
	d := &DDIM{cfg: cfg}
	final := float64(tr.alphasCumprod[0])
	if cfg.SetAlphaToOne {
		final = 1
	}
	for _, t := range spacedTimesteps(cfg.spacing(SpacingLeading), cfg, steps) {
		ti := int(math.RoundToEven(t))
		if ti < 0 || ti >= T {
			return nil, fmt.Errorf("scheduler: ddim: timestep %d outside 0..%d (steps_offset %d too large for %d steps?)", ti, T-1, cfg.StepsOffset, steps)
		}
		d.timesteps = append(d.timesteps, float64(ti))
		d.alphas = append(d.alphas, float64(tr.alphasCumprod[ti]))
		prev := final
		if p := ti - T/steps; p >= 0 {
			prev = float64(tr.alphasCumprod[p])
		}
		d.prevAlphas = append(d.prevAlphas, prev)
	}
	return d, nil
}

// Timesteps implements Sampler.
func (d *DDIM) Timesteps() []float64 { return append([]float64(nil), d.timesteps...) }

// AlphasCumprod returns alphas_cumprod at each step's timestep.
func (d *DDIM) AlphasCumprod() []float64 { return append([]float64(nil), d.alphas...) }

// InitNoiseSigma implements Sampler: DDIM starts from unit-variance noise.
func (d *DDIM) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput implements Sampler: DDIM feeds the latents unchanged.
func (d *DDIM) ScaleModelInput(_ backend.Backend, x *backend.Tensor, step int) *backend.Tensor {
	stepIndex("ddim", step, len(d.timesteps))
	return x
}

// Step implements Sampler:
// x_prev = sqrt(a_prev) * x0 + sqrt(1 - a_prev) * eps, with x0 and eps from
// the model output, folded into one linear combination of x and it.
func (d *DDIM) Step(b backend.Backend, modelOut *backend.Tensor, step int, x *backend.Tensor, _ func() *backend.Tensor) *backend.Tensor {
	stepIndex("ddim", step, len(d.timesteps))
	a, ap := d.alphas[step], d.prevAlphas[step]
	sa, sb := math.Sqrt(a), math.Sqrt(f32(1-a))
	sap, sbp := math.Sqrt(ap), math.Sqrt(f32(1-ap))
	// x0 = x0x*x + x0m*m and eps = ex*x + em*m
	var x0x, x0m, ex, em float64
	if d.cfg.PredictionType == PredictV {
		x0x, x0m = sa, -sb
		ex, em = sb, sa
	} else {
		x0x, x0m = 1/sa, -sb/sa
		ex, em = 0, 1
	}
	cx := sap*x0x + sbp*ex
	cm := sap*x0m + sbp*em
	return b.LinComb([]float32{float32(cx), float32(cm)}, x, modelOut)
}

// AddNoise implements NoiseAdder: sqrt(a_t) * x0 + sqrt(1 - a_t) * noise.
func (d *DDIM) AddNoise(b backend.Backend, x0, noise *backend.Tensor, step int) *backend.Tensor {
	stepIndex("ddim", step, len(d.timesteps))
	a := d.alphas[step]
	return b.LinComb([]float32{float32(math.Sqrt(a)), float32(math.Sqrt(f32(1 - a)))}, x0, noise)
}
