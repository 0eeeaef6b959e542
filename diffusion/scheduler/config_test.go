package scheduler

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

func TestParseConfig_ModelFolders(t *testing.T) {
	for _, c := range []struct {
		rel  string
		want Config
	}{
		{"model/scheduler/scheduler_config.json", SD15()},
		{"model-v/scheduler/scheduler_config.json", func() Config { c := SD15(); c.PredictionType = PredictV; return c }()},
	} {
		data, err := os.ReadFile(testfixtures.Path(t, c.rel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseConfig(data)
		if err != nil {
			t.Fatalf("%s: %v", c.rel, err)
		}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.rel, got, c.want)
		}
	}
}

func TestParseConfig_PythonLiterals(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"lambda_min_clipped": -Infinity, "x": NaN, "y": Infinity,
		"note": "a \"NaN\" -Infinity in a string", "beta_schedule": "scaled_linear",
		"beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BetaSchedule != BetaScaledLinear || cfg.StepsOffset != 1 || !cfg.SetAlphaToOne {
		t.Errorf("got %+v", cfg)
	}
}

func TestParseConfig_Errors(t *testing.T) {
	cases := []struct{ json, want string }{
		{`{`, "scheduler: config:"},
		{`{"beta_schedule": "squaredcos_cap_v2"}`, `beta_schedule "squaredcos_cap_v2"`},
		{`{"prediction_type": "sample"}`, `prediction_type "sample"`},
		{`{"timestep_spacing": "even"}`, `timestep_spacing "even"`},
		{`{"trained_betas": [0.1, 0.2]}`, "trained_betas"},
		{`{"rescale_betas_zero_snr": true}`, "rescale_betas_zero_snr"},
		{`{"thresholding": true}`, "thresholding"},
		{`{"timestep_type": "continuous"}`, "timestep_type"},
		{`{"num_train_timesteps": 1}`, "num_train_timesteps 1"},
		{`{"num_train_timesteps": 1000000000}`, "num_train_timesteps 1000000000"},
		{`{"beta_start": 0.5, "beta_end": 0.1}`, "betas 0.5..0.1"},
		{`{"steps_offset": -1}`, "steps_offset -1"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseConfig(%s): error %v, want one containing %q", c.json, err, c.want)
		}
	}
}

func TestNew_Errors(t *testing.T) {
	clip := SD15()
	clip.ClipSample = true
	bad := SD15()
	bad.BetaSchedule = "cosine"
	cases := []struct {
		name, schedule string
		cfg            Config
		steps          int
		want           string
	}{
		{"heun", ScheduleDefault, SD15(), 10, `unknown sampler "heun"`},
		{NameEuler, "exponential", SD15(), 10, `unknown schedule "exponential"`},
		{NameDDIM, ScheduleKarras, SD15(), 10, `ddim: schedule "karras" is not supported`},
		{NameDDIM, ScheduleAYS, SD15(), 10, `ddim: schedule "ays" is not supported`},
		{NameDDIM, ScheduleDefault, clip, 10, "clip_sample"},
		{NameEuler, ScheduleDefault, SD15(), 0, "0 steps"},
		{NameEuler, ScheduleDefault, SD15(), 1001, "1001 steps"},
		{NameDDIM, ScheduleDefault, SD15(), 1000, "outside 0..999"},
		{NameEuler, ScheduleDefault, bad, 10, `beta_schedule "cosine"`},
		{NameEuler, ScheduleDefault, Config{NumTrainTimesteps: 1000, BetaStart: 0.5, BetaEnd: 0.9,
			BetaSchedule: BetaLinear, PredictionType: PredictEpsilon}, 10, "drive alphas_cumprod to 0"},
	}
	for _, c := range cases {
		_, err := New(c.name, c.schedule, c.cfg, c.steps)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "scheduler: ") {
			t.Errorf("New(%q, %q, %d): error %v, want one containing %q", c.name, c.schedule, c.steps, err, c.want)
		}
	}
}

// TestNew_AllCombinations builds every sampler with every schedule it
// supports for a range of step counts and checks the schedule's shape.
func TestNew_AllCombinations(t *testing.T) {
	for _, name := range Names() {
		for _, sched := range append(Schedules(), "") {
			for _, steps := range []int{1, 2, 3, 7, 10, 25, 50, 150} {
				s, err := New(name, sched, SD15(), steps)
				if name == NameDDIM && sched != ScheduleDefault && sched != "" {
					if err == nil {
						t.Errorf("ddim %q: no error", sched)
					}
					continue
				}
				if err != nil {
					t.Fatalf("New(%q, %q, %d): %v", name, sched, steps, err)
				}
				ts := s.Timesteps()
				if len(ts) != steps {
					t.Fatalf("%s %s %d: %d timesteps", name, sched, steps, len(ts))
				}
				for i := 1; i < steps; i++ {
					if !(ts[i] <= ts[i-1]) || ts[i] < 0 || ts[0] > 999 {
						t.Fatalf("%s %s %d: timesteps %v not descending in 0..999", name, sched, steps, ts)
					}
				}
				if ss, ok := s.(sigmaSampler); ok {
					sig := ss.Sigmas()
					if len(sig) != steps+1 || sig[steps] != 0 {
						t.Fatalf("%s %s %d: sigmas %v: want %d levels ending in 0", name, sched, steps, sig, steps+1)
					}
				}
				if _, ok := s.(NoiseAdder); !ok {
					t.Errorf("%s: no AddNoise", name)
				}
			}
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1}`))
	f.Add([]byte(`{"num_train_timesteps": 10, "timestep_spacing": "trailing", "lambda_min_clipped": -Infinity}`))
	f.Add([]byte(`{"a": "\"NaN\\"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "scheduler: config: ") {
				t.Fatalf("error without component: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted an invalid config: %v", err)
		}
		// A valid config builds every sampler or says why not, without
		// panicking, and what it builds has finite numbers.
		for _, name := range Names() {
			for _, steps := range []int{1, min(7, cfg.NumTrainTimesteps)} {
				s, err := New(name, ScheduleDefault, cfg, steps)
				if err != nil {
					if !strings.HasPrefix(err.Error(), "scheduler: ") {
						t.Fatalf("error without component: %v", err)
					}
					continue
				}
				for _, v := range append(s.Timesteps(), s.InitNoiseSigma()) {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("%s %d steps of %+v: non-finite schedule value", name, steps, cfg)
					}
				}
			}
		}
	})
}
