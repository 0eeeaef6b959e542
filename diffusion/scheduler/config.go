// Package scheduler holds the samplers of Stable Diffusion (Euler, Euler
// ancestral, DDIM, DPM++ 2M) with their default, Karras and Align-Your-Steps
// noise schedules, reproducing the numbers of diffusers 0.27.2. Schedules are
// host math in float64 (rounded where diffusers rounds to float32); all
// tensor work goes through backend ops so any backend can run it. This
// package must never call a model, read tensors back to the host inside a
// step, or draw random numbers itself: ancestral noise comes from the caller.
package scheduler

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// Beta schedules (diffusers' beta_schedule).
const (
	BetaScaledLinear = "scaled_linear"
	BetaLinear       = "linear"
)

// Prediction types (diffusers' prediction_type).
const (
	PredictEpsilon = "epsilon"
	PredictV       = "v_prediction"
)

// Timestep spacings (diffusers' timestep_spacing); "" picks the sampler's
// own default, as a scheduler_config.json without the key does.
const (
	SpacingLinspace = "linspace"
	SpacingLeading  = "leading"
	SpacingTrailing = "trailing"
)

// maxTrainTimesteps bounds the training schedule (every SD model uses 1000).
const maxTrainTimesteps = 100000

// Config is the subset of a diffusers scheduler_config.json that changes
// the numbers of the samplers in this package.
type Config struct {
	NumTrainTimesteps int     // training steps T (1000 for SD)
	BetaStart         float64 // first beta
	BetaEnd           float64 // last beta
	BetaSchedule      string  // BetaScaledLinear or BetaLinear
	PredictionType    string  // PredictEpsilon or PredictV
	StepsOffset       int     // added to "leading" timesteps (SD1.5: 1)
	TimestepSpacing   string  // SpacingLinspace, SpacingLeading, SpacingTrailing or "" (sampler default)
	SetAlphaToOne     bool    // DDIM: final alpha_cumprod is 1 instead of alphas_cumprod[0]
	ClipSample        bool    // DDIM clips x0 to [-1, 1]; not supported, refused by New("ddim")
}

// SD15 is the scheduler config shipped with runwayml/stable-diffusion-v1-5
// (scheduler/scheduler_config.json: scaled_linear 0.00085..0.012, 1000
// steps, steps_offset 1, set_alpha_to_one false, clip_sample false).
func SD15() Config {
	return Config{
		NumTrainTimesteps: 1000,
		BetaStart:         0.00085,
		BetaEnd:           0.012,
		BetaSchedule:      BetaScaledLinear,
		PredictionType:    PredictEpsilon,
		StepsOffset:       1,
		SetAlphaToOne:     false,
	}
}

// rawConfig mirrors the JSON keys; pointers tell a missing key from a zero.
type rawConfig struct {
	NumTrainTimesteps   *int      `json:"num_train_timesteps"`
	BetaStart           *float64  `json:"beta_start"`
	BetaEnd             *float64  `json:"beta_end"`
	BetaSchedule        *string   `json:"beta_schedule"`
	PredictionType      *string   `json:"prediction_type"`
	StepsOffset         *int      `json:"steps_offset"`
	TimestepSpacing     *string   `json:"timestep_spacing"`
	SetAlphaToOne       *bool     `json:"set_alpha_to_one"`
	ClipSample          *bool     `json:"clip_sample"`
	TrainedBetas        []float64 `json:"trained_betas"`
	RescaleBetasZeroSNR *bool     `json:"rescale_betas_zero_snr"`
	Thresholding        *bool     `json:"thresholding"`
	TimestepType        *string   `json:"timestep_type"`
}

// ParseConfig reads a diffusers scheduler_config.json. Keys it does not
// know are ignored (every diffusers scheduler writes its own extras);
// missing keys take diffusers' defaults (linear 0.0001..0.02, 1000 steps,
// epsilon, steps_offset 0, set_alpha_to_one true). Settings that would
// change the numbers in ways this package does not implement are errors.
func ParseConfig(data []byte) (Config, error) {
	var r rawConfig
	if err := json.Unmarshal(pythonJSON(data), &r); err != nil {
		return Config{}, fmt.Errorf("scheduler: config: %w", err)
	}
	c := Config{
		NumTrainTimesteps: 1000,
		BetaStart:         0.0001,
		BetaEnd:           0.02,
		BetaSchedule:      BetaLinear,
		PredictionType:    PredictEpsilon,
		SetAlphaToOne:     true,
	}
	setInt(&c.NumTrainTimesteps, r.NumTrainTimesteps)
	setFloat(&c.BetaStart, r.BetaStart)
	setFloat(&c.BetaEnd, r.BetaEnd)
	setString(&c.BetaSchedule, r.BetaSchedule)
	setString(&c.PredictionType, r.PredictionType)
	setInt(&c.StepsOffset, r.StepsOffset)
	setString(&c.TimestepSpacing, r.TimestepSpacing)
	if r.SetAlphaToOne != nil {
		c.SetAlphaToOne = *r.SetAlphaToOne
	}
	if r.ClipSample != nil {
		c.ClipSample = *r.ClipSample
	}
	switch {
	case len(r.TrainedBetas) > 0:
		return Config{}, fmt.Errorf("scheduler: config: trained_betas is not supported")
	case r.RescaleBetasZeroSNR != nil && *r.RescaleBetasZeroSNR:
		return Config{}, fmt.Errorf("scheduler: config: rescale_betas_zero_snr is not supported")
	case r.Thresholding != nil && *r.Thresholding:
		return Config{}, fmt.Errorf("scheduler: config: thresholding is not supported")
	case r.TimestepType != nil && *r.TimestepType != "discrete":
		return Config{}, fmt.Errorf("scheduler: config: timestep_type %q is not supported (only \"discrete\")", *r.TimestepType)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// pythonJSON replaces the NaN, Infinity and -Infinity literals that
// Python's json module writes (diffusers saves lambda_min_clipped as
// -Infinity) with null, outside strings, so encoding/json can read the rest.
func pythonJSON(data []byte) []byte {
	out := make([]byte, 0, len(data))
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			out = append(out, c)
			continue
		}
		matched := false
		for _, lit := range []string{"-Infinity", "Infinity", "NaN"} {
			if strings.HasPrefix(string(data[i:min(i+len(lit), len(data))]), lit) {
				out = append(out, "null"...)
				i += len(lit) - 1
				matched = true
				break
			}
		}
		if !matched {
			out = append(out, c)
		}
	}
	return out
}

func setInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

func setFloat(dst *float64, v *float64) {
	if v != nil {
		*dst = *v
	}
}

func setString(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

// Validate reports the first setting that is out of range or unsupported.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("scheduler: config: "+format, args...)
	}
	switch {
	case c.NumTrainTimesteps < 2 || c.NumTrainTimesteps > maxTrainTimesteps:
		return bad("num_train_timesteps %d: need 2 to %d", c.NumTrainTimesteps, maxTrainTimesteps)
	case !(c.BetaStart > 0 && c.BetaEnd >= c.BetaStart && c.BetaEnd < 1):
		return bad("betas %g..%g: need 0 < beta_start <= beta_end < 1", c.BetaStart, c.BetaEnd)
	case math.IsNaN(c.BetaStart) || math.IsNaN(c.BetaEnd):
		return bad("betas are NaN")
	case c.StepsOffset < 0 || c.StepsOffset >= c.NumTrainTimesteps:
		return bad("steps_offset %d: need 0 <= steps_offset < %d", c.StepsOffset, c.NumTrainTimesteps)
	}
	switch c.BetaSchedule {
	case BetaScaledLinear, BetaLinear:
	default:
		return bad("beta_schedule %q is not supported (want %q or %q)", c.BetaSchedule, BetaScaledLinear, BetaLinear)
	}
	switch c.PredictionType {
	case PredictEpsilon, PredictV:
	default:
		return bad("prediction_type %q is not supported (want %q or %q)", c.PredictionType, PredictEpsilon, PredictV)
	}
	switch c.TimestepSpacing {
	case "", SpacingLinspace, SpacingLeading, SpacingTrailing:
	default:
		return bad("timestep_spacing %q is not supported (want %q, %q or %q)",
			c.TimestepSpacing, SpacingLinspace, SpacingLeading, SpacingTrailing)
	}
	return nil
}

// spacing returns the configured spacing or the sampler's default.
func (c Config) spacing(def string) string {
	if c.TimestepSpacing == "" {
		return def
	}
	return c.TimestepSpacing
}
