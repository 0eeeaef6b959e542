package main

import (
	"fmt"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// samplingFlags are the settings of an image that farm render and farm
// submit share, defined once with farm render's names, which are the
// documented ones. Samplers, schedules and defaults come from
// diffusion/scheduler. farm submit applies only the flags given, so the
// defaults are the spec's too.
type samplingFlags struct {
	negative, sampler, schedule    string
	initImage, mask, outpaint      string
	width, height, steps, clipSkip int
	cfg, strength                  float64
	seed                           uint64
}

func (f *samplingFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.negative, "negative-prompt", "", "negative prompt")
	fs.IntVar(&f.width, "width", 0, fmt.Sprintf("image width in pixels, a multiple of 8 (default: the init image's width plus --outpaint, else %d)", scheduler.DefaultSize))
	fs.IntVar(&f.height, "height", 0, fmt.Sprintf("image height in pixels, a multiple of 8 (default: the init image's height plus --outpaint, else %d)", scheduler.DefaultSize))
	fs.IntVar(&f.steps, "steps", scheduler.DefaultSteps, "denoising steps (with an init image, --strength of them run)")
	fs.Float64Var(&f.cfg, "cfg-scale", scheduler.DefaultCFGScale, "classifier-free guidance scale (1 or less turns guidance off)")
	fs.StringVar(&f.sampler, "sampler", scheduler.DefaultSampler, "sampler: "+strings.Join(scheduler.Names(), ", "))
	fs.StringVar(&f.schedule, "schedule", scheduler.DefaultSchedule, "sigma schedule: "+strings.Join(scheduler.Schedules(), ", "))
	fs.Uint64Var(&f.seed, "seed", 0, "seed of the initial noise, as torch.Generator(\"cpu\").manual_seed(seed)")
	fs.IntVar(&f.clipSkip, "clip-skip", 0, "skip the last N text encoder layers (diffusers' clip_skip; other tools print N+1)")
	fs.StringVar(&f.initImage, "init-image", "", "PNG or JPEG to start from (img2img; with --mask inpainting, with --outpaint outpainting)")
	fs.StringVar(&f.mask, "mask", "", "PNG or JPEG mask of the init image, the same size: white is repainted, black kept")
	fs.StringVar(&f.outpaint, "outpaint", "", "LEFT,TOP,RIGHT,BOTTOM: grow the init image by these pixels (multiples of 8) and paint the new area")
	fs.Float64Var(&f.strength, "strength", 0, fmt.Sprintf("share of the steps re-run over the init image, in (0, 1] (default %g; %g with --mask or --outpaint)",
		pipeline.DefaultStrengthImg2Img, pipeline.DefaultStrengthInpaint))
}

// completeSampling offers the samplers and schedules to shell completion.
func completeSampling(c *cobra.Command) {
	_ = c.RegisterFlagCompletionFunc("sampler", cobra.FixedCompletions(scheduler.Names(), cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("schedule", cobra.FixedCompletions(scheduler.Schedules(), cobra.ShellCompDirectiveNoFileComp))
}
