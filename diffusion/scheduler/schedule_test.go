package scheduler

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

func to32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func mustNew(t *testing.T, name, schedule string, cfg Config, steps int) Sampler {
	t.Helper()
	s, err := New(name, schedule, cfg, steps)
	if err != nil {
		t.Fatalf("New(%q, %q, %d): %v", name, schedule, steps, err)
	}
	return s
}

func TestTrainSchedule_Golden(t *testing.T) {
	g := testfixtures.Golden(t, "schedulers")
	tr, err := newTrain(SD15())
	if err != nil {
		t.Fatal(err)
	}
	betas, _ := g.Tensor("betas")
	acp, _ := g.Tensor("alphas_cumprod")
	testfixtures.AssertClose(t, "betas", tr.betas, betas, 1e-6)
	testfixtures.AssertClose(t, "alphas_cumprod", tr.alphasCumprod, acp, 1e-6)
	// torchLinspace32 and the double-accumulated cumprod are bit-exact.
	for i := range betas {
		if betas[i] != tr.betas[i] || acp[i] != tr.alphasCumprod[i] {
			t.Fatalf("index %d: beta %v alphas_cumprod %v, want bit-equal %v %v",
				i, tr.betas[i], tr.alphasCumprod[i], betas[i], acp[i])
		}
	}
}

// sigmaSampler is what the sigma-based samplers expose besides Sampler.
type sigmaSampler interface {
	Sampler
	Sigmas() []float64
}

func TestSchedules_Golden(t *testing.T) {
	g := testfixtures.Golden(t, "schedulers")
	configs := goldenConfigs(t, "golden/scheduler_configs.json")
	cases := []struct{ prefix, name, schedule string }{
		{"euler", NameEuler, ScheduleDefault},
		{"euler_a", NameEulerA, ScheduleDefault},
		{"ddim", NameDDIM, ScheduleDefault},
		{"dpmpp_2m", NameDPMPP2M, ScheduleDefault},
		{"dpmpp_2m_karras", NameDPMPP2M, ScheduleKarras},
	}
	for _, c := range cases {
		for _, steps := range []int{20, 30} {
			t.Run(fmt.Sprintf("%s_%d", c.prefix, steps), func(t *testing.T) {
				cfg, err := ParseConfig(configs[c.prefix])
				if err != nil {
					t.Fatalf("ParseConfig(scheduler_configs.json %s): %v", c.prefix, err)
				}
				s := mustNew(t, c.name, c.schedule, cfg, steps)
				key := fmt.Sprintf("%s_%d_", c.prefix, steps)
				want, _ := g.Tensor(key + "timesteps")
				testfixtures.AssertClose(t, "timesteps", to32(s.Timesteps()), want, 1e-5)
				if ss, ok := s.(sigmaSampler); ok {
					want, _ := g.Tensor(key + "sigmas")
					testfixtures.AssertClose(t, "sigmas", to32(ss.Sigmas()), want, 1e-5)
				}
				if d, ok := s.(*DDIM); ok {
					want, _ := g.Tensor(key + "alphas_cumprod_t")
					testfixtures.AssertClose(t, "alphas_cumprod_t", to32(d.AlphasCumprod()), want, 1e-5)
				}
				if steps == 20 {
					want, _ := g.Tensor(c.prefix + "_init_noise_sigma_at_20")
					testfixtures.AssertClose(t, "init_noise_sigma", []float32{float32(s.InitNoiseSigma())}, want, 1e-5)
				}
			})
		}
	}
}

func TestAYS_TenStepsIsTable(t *testing.T) {
	for _, name := range []string{NameEuler, NameEulerA, NameDPMPP2M} {
		s := mustNew(t, name, ScheduleAYS, SD15(), 10).(sigmaSampler)
		sig := s.Sigmas()
		if len(sig) != 11 || sig[10] != 0 {
			t.Fatalf("%s: ays sigmas %v: want 10 levels then 0", name, sig)
		}
		testfixtures.AssertClose(t, name+" ays sigmas", to32(sig[:10]), to32(aysSD15[:10]), 1e-7)
		// The sigma table maps back onto NVIDIA's published AYS SD1.5
		// timesteps (diffusers' AysSchedules["StableDiffusionTimesteps"]).
		want := []float64{999, 850, 736, 645, 545, 455, 343, 233, 124, 24}
		for i, ts := range s.Timesteps() {
			if math.Abs(ts-want[i]) > 1e-3 {
				t.Errorf("%s: ays timesteps %v, want %v", name, s.Timesteps(), want)
				break
			}
		}
	}
}

func TestAYS_Interpolated(t *testing.T) {
	for _, steps := range []int{1, 5, 20, 50} {
		sig := aysSigmas(steps)
		if len(sig) != steps {
			t.Fatalf("%d steps: %d sigmas", steps, len(sig))
		}
		if math.Abs(sig[0]-aysSD15[0]) > 1e-9 {
			t.Errorf("%d steps: first sigma %v, want sigma_max %v", steps, sig[0], aysSD15[0])
		}
		for i := 1; i < steps; i++ {
			if !(sig[i] < sig[i-1]) {
				t.Errorf("%d steps: sigmas not decreasing at %d: %v", steps, i, sig)
			}
		}
	}
	// 20 steps lands on every table level at even indexes (log-linear
	// interpolation between the same points).
	sig := aysSigmas(20)
	for i := 0; i < 10; i++ {
		if math.Abs(sig[2*i]-aysSD15[i]) > 1e-9*aysSD15[i] {
			t.Errorf("20 steps: sigma[%d] = %v, want table %v", 2*i, sig[2*i], aysSD15[i])
		}
	}
	// Between two table levels the interpolated level is their geometric mean.
	if want := math.Sqrt(aysSD15[0] * aysSD15[1]); math.Abs(sig[1]-want) > 1e-9*want {
		t.Errorf("20 steps: sigma[1] = %v, want geometric mean %v", sig[1], want)
	}
}

func TestKarras_Euler(t *testing.T) {
	g := testfixtures.Golden(t, "txt2img_euler_karras")
	s := mustNew(t, NameEuler, ScheduleKarras, SD15(), 10).(sigmaSampler)
	want, _ := g.Tensor("sigmas")
	testfixtures.AssertClose(t, "sigmas", to32(s.Sigmas()), want, 1e-5)
	want, _ = g.Tensor("timesteps")
	testfixtures.AssertClose(t, "timesteps", to32(s.Timesteps()), want, 1e-5)
}

// goldenConfigs reads a JSON object of scheduler configs by name.
func goldenConfigs(t *testing.T, rel string) map[string]json.RawMessage {
	t.Helper()
	data, err := os.ReadFile(testfixtures.Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(pythonJSON(data), &m); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return m
}

// TestSpacing checks the leading and trailing spacings against the values
// diffusers 0.27.2 gives for 10 steps of a 1000-step schedule.
func TestSpacing(t *testing.T) {
	seq := func(first, step float64) []float64 {
		out := make([]float64, 10)
		for i := range out {
			out[i] = first - float64(i)*step
		}
		return out
	}
	cases := []struct {
		name, spacing string
		want          []float64
	}{
		{NameEuler, SpacingLeading, seq(901, 100)},
		{NameEuler, SpacingTrailing, seq(999, 100)},
		{NameEuler, SpacingLinspace, seq(999, 111)},
		{NameDDIM, SpacingLinspace, []float64{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}},
		{NameDDIM, SpacingTrailing, seq(999, 100)},
		{NameDPMPP2M, SpacingLeading, seq(901, 90)}, // 1000//11 = 90: 900..90, + steps_offset
		{NameDPMPP2M, SpacingTrailing, seq(999, 100)},
	}
	for _, c := range cases {
		cfg := SD15()
		cfg.TimestepSpacing = c.spacing
		s := mustNew(t, c.name, ScheduleDefault, cfg, 10)
		got := s.Timesteps()
		for i := range c.want {
			if math.Abs(got[i]-c.want[i]) > 1e-3 {
				t.Errorf("%s %s: timesteps %v, want %v", c.name, c.spacing, got, c.want)
				break
			}
		}
	}
	// "leading" Euler starts from sqrt(sigma_max^2 + 1) instead of sigma_max.
	cfg := SD15()
	cfg.TimestepSpacing = SpacingLeading
	e := mustNew(t, NameEuler, ScheduleDefault, cfg, 10).(*Euler)
	if want := math.Sqrt(e.sigmas[0]*e.sigmas[0] + 1); math.Abs(e.InitNoiseSigma()-want) > 1e-5 {
		t.Errorf("leading init noise sigma %v, want %v", e.InitNoiseSigma(), want)
	}
}

func TestLinearBetas(t *testing.T) {
	cfg := SD15()
	cfg.BetaSchedule = BetaLinear
	cfg.BetaStart, cfg.BetaEnd = 0.0001, 0.02
	tr, err := newTrain(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tr.betas[0] != float32(0.0001) || tr.betas[999] != float32(0.02) {
		t.Errorf("linear betas run %v..%v, want 0.0001..0.02", tr.betas[0], tr.betas[999])
	}
	if d := float64(tr.betas[500] - tr.betas[499]); math.Abs(d-0.0199/999) > 1e-8 {
		t.Errorf("linear beta step %v, want %v", d, 0.0199/999)
	}
}
