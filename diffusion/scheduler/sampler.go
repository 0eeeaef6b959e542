package scheduler

import (
	"fmt"
	"math"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// Sampler turns a model's predictions into the next latents, one step at a
// time. A Sampler belongs to one denoising run: it may keep state between
// steps (DPM++ 2M keeps the previous prediction), so it is not safe for
// concurrent use; create one per run. Steps are called in order; a step that
// does not follow the previous one restarts the multistep history.
type Sampler interface {
	// Timesteps returns the model timesteps, one per step.
	Timesteps() []float64
	// InitNoiseSigma is the factor that scales N(0,1) noise into the first latents.
	InitNoiseSigma() float64
	// ScaleModelInput returns the UNet input for latents x at step.
	ScaleModelInput(b backend.Backend, x *backend.Tensor, step int) *backend.Tensor
	// Step returns the latents after step, given the model output for x.
	// noise is called only by ancestral samplers, for a fresh N(0,1) tensor
	// of x's shape.
	Step(b backend.Backend, modelOut *backend.Tensor, step int, x *backend.Tensor, noise func() *backend.Tensor) *backend.Tensor
}

// NoiseAdder is implemented by every sampler of this package: img2img and
// inpainting start from a clean latent noised to the level of a step.
type NoiseAdder interface {
	// AddNoise returns x0 noised to the level the latents have before step
	// (diffusers' add_noise at timesteps[step]); noise is N(0,1) of x0's shape.
	AddNoise(b backend.Backend, x0, noise *backend.Tensor, step int) *backend.Tensor
}

// Sampler names accepted by New.
const (
	NameEuler   = "euler"
	NameEulerA  = "euler_a"
	NameDDIM    = "ddim"
	NameDPMPP2M = "dpmpp_2m"
)

// Sampling defaults: the one definition that farm render, job specs and the
// engine's Request.Defaults share, so that the same seed gives the same
// image whichever way it is asked for.
const (
	DefaultSampler  = NameEuler
	DefaultSchedule = ScheduleDefault
	DefaultSteps    = 20
	DefaultCFGScale = 7.5
	// DefaultSize is an image's side when none is given: SD1.5's training
	// resolution.
	DefaultSize = 512
)

// Names lists the sampler names New accepts.
func Names() []string { return []string{NameEuler, NameEulerA, NameDDIM, NameDPMPP2M} }

// Schedules lists the schedule names New accepts.
func Schedules() []string { return []string{ScheduleDefault, ScheduleKarras, ScheduleAYS} }

// New returns the sampler called name (one of Names) with the noise
// schedule called schedule (one of Schedules; "" means "default") for a run
// of steps steps under cfg. "karras" spaces the noise levels as Karras et
// al. (rho 7); "ays" uses the SD1.5 Align Your Steps levels whatever cfg
// says. DDIM has no sigma schedule and accepts only "default".
func New(name, schedule string, cfg Config, steps int) (Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkSteps(cfg, steps); err != nil {
		return nil, err
	}
	if schedule == "" {
		schedule = ScheduleDefault
	}
	switch schedule {
	case ScheduleDefault, ScheduleKarras, ScheduleAYS:
	default:
		return nil, fmt.Errorf("scheduler: unknown schedule %q (want one of %v)", schedule, Schedules())
	}
	switch name {
	case NameEuler, NameEulerA, NameDDIM, NameDPMPP2M:
	default:
		return nil, fmt.Errorf("scheduler: unknown sampler %q (want one of %v)", name, Names())
	}
	tr, err := newTrain(cfg)
	if err != nil {
		return nil, err
	}
	switch name {
	case NameEuler:
		return newEuler(cfg, tr, schedule, steps), nil
	case NameEulerA:
		return newEulerAncestral(cfg, tr, schedule, steps), nil
	case NameDDIM:
		return newDDIM(cfg, tr, schedule, steps)
	}
	return newDPMPP2M(cfg, tr, schedule, steps), nil
}

// sigmaSchedule is the sigma-parametrised schedule shared by the Euler
// samplers: steps+1 noise levels (float32 values, the last 0) and the model
// timestep of each step.
type sigmaSchedule struct {
	timesteps []float64
	sigmas    []float64
	initSigma float64
}

// eulerSchedule reproduces EulerDiscreteScheduler.set_timesteps (0.27.2):
// timesteps by spacing (float32), sigmas interpolated linearly over the
// training timesteps; Karras and AYS replace the sigmas and map them back to
// fractional timesteps in log-sigma space.
func eulerSchedule(cfg Config, tr *train, schedule string, steps int) sigmaSchedule {
	spacing := cfg.spacing(SpacingLinspace)
	ts := spacedTimesteps(spacing, cfg, steps)
	sig := make([]float64, steps)
	for i := range ts {
		ts[i] = f32(ts[i])
		sig[i] = interpIndex(ts[i], tr.sigmas)
	}
	switch schedule {
	case ScheduleKarras:
		sig = karrasSigmas(sig[steps-1], sig[0], steps)
	case ScheduleAYS:
		sig = aysSigmas(steps)
	}
	if schedule != ScheduleDefault {
		for i, s := range sig {
			ts[i] = f32(sigmaToT(s, tr.logSigmas))
		}
	}
	s := sigmaSchedule{timesteps: ts, sigmas: make([]float64, steps+1)}
	for i, v := range sig {
		s.sigmas[i] = f32(v)
		s.initSigma = math.Max(s.initSigma, s.sigmas[i])
	}
	if spacing == SpacingLeading {
		s.initSigma = f32(math.Sqrt(f32(s.initSigma*s.initSigma + 1)))
	}
	return s
}

// scaleBySigma is the Euler samplers' scale_model_input: x / sqrt(sigma^2+1).
func scaleBySigma(b backend.Backend, x *backend.Tensor, sigma float64) *backend.Tensor {
	return b.Scale(x, float32(1/math.Sqrt(f32(sigma*sigma+1))))
}

// denoisedCoef returns (cx, cm) with the x0 prediction = cx*x + cm*modelOut
// at noise level sigma in the sigma parametrisation (x = x0 + sigma*eps).
func denoisedCoef(prediction string, sigma float64) (cx, cm float64) {
	if prediction == PredictV {
		// x0 = -sigma/sqrt(sigma^2+1) * v + x/(sigma^2+1)
		return 1 / (sigma*sigma + 1), -sigma / math.Sqrt(sigma*sigma+1)
	}
	return 1, -sigma
}

// stepIndex panics when step is outside the schedule: a programmer error,
// like a shape mismatch.
func stepIndex(who string, step, n int) {
	if step < 0 || step >= n {
		panic(fmt.Sprintf("scheduler: %s: step %d outside 0..%d", who, step, n-1))
	}
}
