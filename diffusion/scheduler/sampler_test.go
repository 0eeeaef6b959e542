package scheduler

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// trajectory holds a golden txt2img loop, split per step.
type trajectory struct {
	initNoise   []float32
	shape       []int
	modelInput  [][]float32
	noisePred   [][]float32
	latents     [][]float32
	ancestral   [][]float32 // nil unless the sampler draws noise
	timesteps   []float32
	initSigma   float32
	stepsInFile int
}

func loadTrajectory(t *testing.T, file string) trajectory {
	t.Helper()
	g := testfixtures.Golden(t, file)
	var tr trajectory
	if _, ok := g.File().Info("init_noise"); ok {
		tr.initNoise, tr.shape = g.Tensor("init_noise")
	}
	tr.timesteps, _ = g.Tensor("timesteps")
	if _, ok := g.File().Info("init_noise_sigma"); ok {
		sig, _ := g.Tensor("init_noise_sigma")
		tr.initSigma = sig[0]
	}
	tr.stepsInFile = len(tr.timesteps)
	split := func(name string) [][]float32 {
		v, shape := g.Tensor(name)
		if shape[0] != tr.stepsInFile {
			t.Fatalf("%s: %s has %d steps, timesteps %d", file, name, shape[0], tr.stepsInFile)
		}
		per := len(v) / shape[0]
		out := make([][]float32, shape[0])
		for i := range out {
			out[i] = v[i*per : (i+1)*per]
		}
		return out
	}
	tr.modelInput = split("model_input_trajectory")
	tr.noisePred = split("noise_pred_trajectory")
	tr.latents = split("latents_trajectory")
	if _, ok := g.File().Info("ancestral_noise"); ok {
		tr.ancestral = split("ancestral_noise")
	}
	return tr
}

// TestSampler_GoldenTrajectories drives each sampler with the golden
// model outputs of a 10-step txt2img run and checks the UNet input and the
// latents after every step against diffusers'.
func TestSampler_GoldenTrajectories(t *testing.T) {
	cases := []struct {
		file, name, schedule, prediction string
	}{
		{"txt2img_euler", NameEuler, ScheduleDefault, PredictEpsilon},
		{"txt2img_euler_a", NameEulerA, ScheduleDefault, PredictEpsilon},
		{"txt2img_ddim", NameDDIM, ScheduleDefault, PredictEpsilon},
		{"txt2img_dpmpp_2m", NameDPMPP2M, ScheduleDefault, PredictEpsilon},
		{"txt2img_dpmpp_2m_karras", NameDPMPP2M, ScheduleKarras, PredictEpsilon},
		{"txt2img_euler_karras", NameEuler, ScheduleKarras, PredictEpsilon},
		{"txt2img_v_euler", NameEuler, ScheduleDefault, PredictV},
		{"txt2img_v_ddim", NameDDIM, ScheduleDefault, PredictV},
	}
	b := cpu.New()
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.file, "txt2img_"), func(t *testing.T) {
			tr := loadTrajectory(t, c.file)
			cfg := SD15()
			cfg.PredictionType = c.prediction
			s := mustNew(t, c.name, c.schedule, cfg, tr.stepsInFile)
			testfixtures.AssertClose(t, "timesteps", to32(s.Timesteps()), tr.timesteps, 1e-5)
			testfixtures.AssertClose(t, "init_noise_sigma", []float32{float32(s.InitNoiseSigma())}, []float32{tr.initSigma}, 1e-5)
			x := b.Scale(b.FromFloat32(tr.initNoise, tr.shape...), float32(s.InitNoiseSigma()))
			runTrajectory(t, b, s, tr, x, 0)
		})
	}
}

// runTrajectory runs the golden steps from latents x, the first of them
// being step start of the sampler's schedule.
func runTrajectory(t *testing.T, b backend.Backend, s Sampler, tr trajectory, x *backend.Tensor, start int) {
	t.Helper()
	worstIn, worstX := 0.0, 0.0
	defer func() { t.Logf("max relative error: model input %.2g, latents %.2g", worstIn, worstX) }()
	for i := range tr.timesteps {
		in := s.ScaleModelInput(b, x, start+i)
		got := b.ToFloat32(in)
		worstIn = math.Max(worstIn, testfixtures.MaxRelErr(got, tr.modelInput[i]))
		testfixtures.AssertClose(t, fmt.Sprintf("model input at step %d", i), got, tr.modelInput[i], 1e-4)
		calls := 0
		noise := func() *backend.Tensor {
			calls++
			if tr.ancestral == nil {
				t.Fatalf("step %d: deterministic sampler asked for noise", i)
			}
			return b.FromFloat32(tr.ancestral[i], tr.shape...)
		}
		x = s.Step(b, b.FromFloat32(tr.noisePred[i], tr.shape...), start+i, x, noise)
		if tr.ancestral != nil && calls != 1 {
			t.Fatalf("step %d: noise drawn %d times, want 1", i, calls)
		}
		got = b.ToFloat32(x)
		worstX = math.Max(worstX, testfixtures.MaxRelErr(got, tr.latents[i]))
		testfixtures.AssertClose(t, fmt.Sprintf("latents after step %d", i), got, tr.latents[i], 1e-4)
		if t.Failed() {
			return
		}
	}
}

// TestSampler_GoldenImg2Img checks AddNoise and a run that starts part way
// through the schedule (strength 0.6 of 10 steps: steps 4..9).
func TestSampler_GoldenImg2Img(t *testing.T) {
	const steps, start = 10, 4 // extra_settings.json: init_timestep 6, t_start 4
	b := cpu.New()
	for _, c := range []struct{ file, name string }{
		{"img2img_euler", NameEuler},
		{"img2img_ddim", NameDDIM},
	} {
		t.Run(c.file, func(t *testing.T) {
			g := testfixtures.Golden(t, c.file)
			tr := loadTrajectory(t, c.file)
			s := mustNew(t, c.name, ScheduleDefault, SD15(), steps)
			full, _ := g.Tensor("timesteps_full")
			testfixtures.AssertClose(t, "timesteps_full", to32(s.Timesteps()), full, 1e-5)
			testfixtures.AssertClose(t, "timesteps", to32(s.Timesteps()[start:]), tr.timesteps, 1e-5)
			x0, shape := g.Tensor("init_latents")
			noise, _ := g.Tensor("add_noise")
			want, _ := g.Tensor("noisy_latents")
			x := s.(NoiseAdder).AddNoise(b, b.FromFloat32(x0, shape...), b.FromFloat32(noise, shape...), start)
			testfixtures.AssertClose(t, "noisy_latents", b.ToFloat32(x), want, 1e-5)
			tr.shape = shape
			runTrajectory(t, b, s, tr, x, start)
		})
	}
}

// TestDPMPP2M_Reuse checks that a second run on the same sampler starts a
// fresh multistep history and gives the same numbers.
func TestDPMPP2M_Reuse(t *testing.T) {
	b := cpu.New()
	tr := loadTrajectory(t, "txt2img_dpmpp_2m")
	s := mustNew(t, NameDPMPP2M, ScheduleDefault, SD15(), tr.stepsInFile)
	for run := 0; run < 2; run++ {
		runTrajectory(t, b, s, tr, b.FromFloat32(tr.initNoise, tr.shape...), 0)
	}
}
