package scheduler

import (
	"fmt"
	"math"
)

// Schedule names accepted by New.
const (
	ScheduleDefault = "default"
	ScheduleKarras  = "karras"
	ScheduleAYS     = "ays"
)

// karrasRho is rho of Karras et al. 2022 ("Elucidating the Design Space of
// Diffusion-Based Generative Models", eq. 5), as diffusers uses it.
const karrasRho = 7.0

// aysSD15 is the Align Your Steps 10-step schedule for SD1.5 (Sabour et al.
// 2024, NVIDIA's published sigma table): 11 noise levels from sigma_max to
// sigma_min.
var aysSD15 = []float64{
	14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177,
	1.3943805092, 0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662,
	0.0291671582,
}

// train holds the training noise schedule, in float32 as diffusers keeps it.
type train struct {
	betas         []float32
	alphasCumprod []float32
	sigmas        []float32 // sqrt((1-a)/a) per training timestep, ascending
	logSigmas     []float32
}

// newTrain computes betas as torch.linspace(...) in float32 (squared for
// scaled_linear), alphas_cumprod as torch.cumprod in float32 and the
// Karras-style sigmas from them, all rounded as diffusers rounds them. It
// fails when the betas drive alphas_cumprod to 0 in float32 (infinite sigma).
func newTrain(c Config) (*train, error) {
	n := c.NumTrainTimesteps
	var betas []float32
	switch c.BetaSchedule {
	case BetaLinear:
		betas = torchLinspace32(c.BetaStart, c.BetaEnd, n)
	default: // scaled_linear
		betas = torchLinspace32(math.Sqrt(c.BetaStart), math.Sqrt(c.BetaEnd), n)
		for i, b := range betas {
			betas[i] = b * b
		}
	}
	tr := &train{
		betas:         betas,
		alphasCumprod: make([]float32, n),
		sigmas:        make([]float32, n),
		logSigmas:     make([]float32, n),
	}
	// torch's CPU cumprod accumulates in double and stores float32.
	acc := 1.0
	for i, b := range betas {
		acc *= float64(1 - b)
		a := float32(acc)
		tr.alphasCumprod[i] = a
		s := float32(math.Sqrt(float64((1 - a) / a)))
		tr.sigmas[i] = s
		tr.logSigmas[i] = float32(math.Log(float64(s)))
		if a == 0 || math.IsInf(float64(s), 0) || math.IsNaN(float64(s)) {
			return nil, fmt.Errorf("scheduler: config: betas %g..%g (%s) drive alphas_cumprod to 0 at timestep %d",
				c.BetaStart, c.BetaEnd, c.BetaSchedule, i)
		}
	}
	return tr, nil
}

// torchLinspace32 reproduces torch.linspace(start, end, n, dtype=float32)
// on CPU bit for bit (torch 1.13, AVX2 kernel): the first half counts up
// from start and the second half down from end, in blocks of 8 lanes whose
// base is computed once and whose lanes add j*step, every a+b*c fused (FMA);
// blocks go in pairs and what is left after the last pair runs the scalar loop. Checked against the
// golden betas: all 1000 equal, and so are alphas_cumprod.
func torchLinspace32(start, end float64, n int) []float32 {
	out := make([]float32, n)
	if n == 1 {
		out[0] = float32(start)
		return out
	}
	s, e := float32(start), float32(end)
	step := (e - s) / float32(n-1)
	half := n / 2
	at := func(i int) float32 {
		if i < half {
			return fma32(step, float32(i), s)
		}
		return fma32(-step, float32(n-1-i), e)
	}
	const lanes = 8
	i := 0
	for ; i+2*lanes <= n; i += 2 * lanes {
		for _, b := range [2]int{i, i + lanes} {
			base := at(b)
			for j := 0; j < lanes; j++ {
				out[b+j] = fma32(float32(j), step, base)
			}
		}
	}
	for ; i < n; i++ {
		out[i] = at(i)
	}
	return out
}

// fma32 is a float32 fused multiply-add, a*b+c rounded once.
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// linspace is numpy.linspace(start, stop, n) in float64.
func linspace(start, stop float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (stop - start) / float64(n-1)
	for i := range out {
		out[i] = float64(i)*step + start
	}
	out[n-1] = stop
	return out
}

// interpIndex is numpy.interp(x, arange(len(fp)), fp) for 0 <= x <= len-1.
func interpIndex(x float64, fp []float32) float64 {
	if x <= 0 {
		return float64(fp[0])
	}
	last := len(fp) - 1
	if x >= float64(last) {
		return float64(fp[last])
	}
	j := int(math.Floor(x))
	if float64(j) == x {
		return float64(fp[j])
	}
	slope := float64(fp[j+1]) - float64(fp[j])
	return slope*(x-float64(j)) + float64(fp[j])
}

// interp is numpy.interp(x, xp, fp) for increasing xp.
func interp(x float64, xp, fp []float64) float64 {
	if x <= xp[0] {
		return fp[0]
	}
	last := len(xp) - 1
	if x >= xp[last] {
		return fp[last]
	}
	j := 0
	for j+1 < last && xp[j+1] <= x {
		j++
	}
	if x == xp[j] {
		return fp[j]
	}
	slope := (fp[j+1] - fp[j]) / (xp[j+1] - xp[j])
	return slope*(x-xp[j]) + fp[j]
}

// karrasSigmas is diffusers' _convert_to_karras: n noise levels from
// sigmaMax to sigmaMin evenly spaced in sigma^(1/rho).
func karrasSigmas(sigmaMin, sigmaMax float64, n int) []float64 {
	ramp := linspace(0, 1, n)
	minInv := math.Pow(sigmaMin, 1/karrasRho)
	maxInv := math.Pow(sigmaMax, 1/karrasRho)
	out := make([]float64, n)
	for i, r := range ramp {
		out[i] = math.Pow(maxInv+r*(minInv-maxInv), karrasRho)
	}
	return out
}

// aysSigmas returns the n nonzero noise levels of an n-step Align Your
// Steps schedule (the caller appends the final 0). The 10-step table is used
// as is; other step counts interpolate it log-linearly (the AYS paper's
// loglinear_interp over n+1 points) and drop its last level, sigma_min, so
// the final step goes to 0 as ComfyUI and later diffusers' AysSchedules do.
func aysSigmas(n int) []float64 {
	table := aysSD15
	m := len(table)
	levels := make([]float64, n+1)
	if n+1 == m {
		copy(levels, table)
	} else {
		xs := linspace(0, 1, m)
		ys := make([]float64, m)
		for i := range table {
			ys[i] = math.Log(table[m-1-i])
		}
		nx := linspace(0, 1, n+1)
		for i, x := range nx {
			levels[n-i] = math.Exp(interp(x, xs, ys))
		}
	}
	return levels[:n]
}

// sigmaToT is diffusers' _sigma_to_t: the fractional training timestep
// whose sigma is sigma, interpolating linearly in log sigma.
func sigmaToT(sigma float64, logSigmas []float32) float64 {
	logSigma := math.Log(math.Max(sigma, 1e-10))
	// low is the last index whose log sigma is <= logSigma (0 if none).
	low := 0
	for i, ls := range logSigmas {
		if logSigma-float64(ls) >= 0 {
			low = i
		}
	}
	if low > len(logSigmas)-2 {
		low = len(logSigmas) - 2
	}
	lo, hi := float64(logSigmas[low]), float64(logSigmas[low+1])
	w := (lo - logSigma) / (lo - hi)
	w = math.Min(math.Max(w, 0), 1)
	return (1-w)*float64(low) + w*float64(low+1)
}

// spacedTimesteps returns n descending training timesteps for a spacing, as
// diffusers' Euler and DDIM set_timesteps compute them before any rounding
// to an integer type: linspace(0, T-1, n) reversed; "leading" multiples of
// T//n plus steps_offset; "trailing" round(arange(T, 0, -T/n)) - 1.
func spacedTimesteps(spacing string, c Config, n int) []float64 {
	T := c.NumTrainTimesteps
	out := make([]float64, n)
	switch spacing {
	case SpacingLeading:
		ratio := T / n
		for i := range out {
			out[i] = float64((n-1-i)*ratio + c.StepsOffset)
		}
	case SpacingTrailing:
		ratio := float64(T) / float64(n)
		for i := range out {
			out[i] = math.RoundToEven(float64(T)-float64(i)*ratio) - 1
		}
	default: // linspace
		ls := linspace(0, float64(T-1), n)
		for i := range out {
			out[i] = ls[n-1-i]
		}
	}
	return out
}

// checkSteps validates a step count against the training schedule.
func checkSteps(c Config, steps int) error {
	if steps < 1 || steps > c.NumTrainTimesteps {
		return fmt.Errorf("scheduler: %d steps: need 1 to %d", steps, c.NumTrainTimesteps)
	}
	return nil
}

// f32 rounds to float32 and back, as a torch float32 tensor stores it.
func f32(x float64) float64 { return float64(float32(x)) }
