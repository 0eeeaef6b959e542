package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/shared/wire"
)

func init() {
	register("submit", "submit a job from JOB.yaml|JOB.json (- for stdin) or from flags", runSubmit)
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ", ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// submitFlags is the flag form of a batch job; set flags override the file.
type submitFlags struct {
	name, model, family, precision, backend, negative, promptsFile string
	sampler, schedule, priority, seeds                             string
	initImage, mask, outpaint                                      string
	strength                                                       float64
	prompts                                                        stringList
	seedStart, seed                                                int64
	count, width, height, steps, clipSkip, framesPerTask, retries  int
	cfg                                                            float64
}

func (sf *submitFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&sf.name, "name", "", "a label for the job")
	fs.StringVar(&sf.model, "model", "", "model name (in the nodes' model dir or the model store)")
	fs.StringVar(&sf.family, "model-family", "", "sd1, sd2, sdxl or tiny (default: guessed from the name)")
	fs.StringVar(&sf.precision, "precision", "", "fp16 (default), bf16 or fp32")
	fs.StringVar(&sf.backend, "backend", "", "pin the backend: cpu or cuda (default either)")
	fs.Var(&sf.prompts, "prompt", "a prompt (repeatable)")
	fs.StringVar(&sf.promptsFile, "prompts-file", "", "file of prompts, one a line (# comments)")
	fs.StringVar(&sf.negative, "negative-prompt", "", "negative prompt")
	fs.StringVar(&sf.negative, "negative", "", "alias of --negative-prompt")
	fs.Int64Var(&sf.seed, "seed", 0, "one seed (instead of --seeds or --seed-start)")
	fs.StringVar(&sf.seeds, "seeds", "", "comma-separated seeds (instead of --seed-start/--count)")
	fs.Int64Var(&sf.seedStart, "seed-start", 0, "first seed of a range")
	fs.IntVar(&sf.count, "count", 0, "images per prompt (seeds seed-start, seed-start+1, ...)")
	fs.IntVar(&sf.width, "width", 0, "image width (default 512)")
	fs.IntVar(&sf.height, "height", 0, "image height (default 512)")
	fs.IntVar(&sf.steps, "steps", 0, fmt.Sprintf("denoising steps (default %d)", scheduler.DefaultSteps))
	fs.Float64Var(&sf.cfg, "cfg-scale", 0, fmt.Sprintf("classifier-free guidance scale (default %g)", scheduler.DefaultCFGScale))
	fs.Float64Var(&sf.cfg, "cfg", 0, "alias of --cfg-scale")
	fs.StringVar(&sf.sampler, "sampler", "", "sampler: "+strings.Join(scheduler.Names(), ", ")+" (default "+wire.SamplerEuler+")")
	fs.StringVar(&sf.schedule, "schedule", "", "sigma schedule: "+strings.Join(scheduler.Schedules(), ", "))
	fs.IntVar(&sf.clipSkip, "clip-skip", 0, "skip the last N text encoder layers (diffusers' clip_skip; other tools print N+1)")
	fs.StringVar(&sf.priority, "priority", "", "high, normal (default) or low")
	fs.IntVar(&sf.framesPerTask, "frames-per-task", 0, "frames per task (default 4)")
	fs.IntVar(&sf.retries, "max-retries", 0, "times a failed task runs again (default 3)")
	fs.StringVar(&sf.initImage, "init-image", "", "PNG or JPEG to start from (img2img; uploaded to the farm)")
	fs.StringVar(&sf.mask, "mask", "", "PNG or JPEG mask of the init image: white is repainted (inpainting)")
	fs.StringVar(&sf.outpaint, "outpaint", "", "LEFT,TOP,RIGHT,BOTTOM: grow the init image by these pixels (multiples of 8) and paint the new area")
	fs.Float64Var(&sf.strength, "strength", 0, fmt.Sprintf("share of the steps re-run over the init image, (0, 1] (default %g; %g with a mask or outpaint)", pipeline.DefaultStrengthImg2Img, pipeline.DefaultStrengthInpaint))
}

// apply copies every flag that was set onto spec.
func (sf *submitFlags) apply(fs *flag.FlagSet, spec *wire.JobSpec) error {
	var seedFlags []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seed" || f.Name == "seeds" || f.Name == "seed-start" {
			seedFlags = append(seedFlags, "--"+f.Name)
		}
	})
	if len(seedFlags) > 1 {
		return usagef("%s: give one of --seed, --seeds or --seed-start", strings.Join(seedFlags, " and "))
	}
	var err error
	keep := func(e error) { // the first error wins
		if err == nil {
			err = e
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "name":
			spec.Name = sf.name
		case "model":
			spec.Model = sf.model
		case "model-family":
			spec.ModelFamily = sf.family
		case "precision":
			spec.Precision = sf.precision
		case "backend":
			spec.Backend = sf.backend
		case "prompt":
			spec.Prompts = append([]string(nil), sf.prompts...)
		case "prompts-file":
			if e := spec.LoadPromptsFile(sf.promptsFile); e != nil {
				err = e
			}
		case "negative-prompt", "negative":
			spec.NegativePrompt = sf.negative
		case "seed":
			spec.Seeds = wire.Seeds{List: []int64{sf.seed}}
		case "seeds":
			spec.Seeds = wire.Seeds{}
			for _, s := range strings.Split(sf.seeds, ",") {
				v, e := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
				if e != nil {
					err = usagef("--seeds: %q is not a number", s)
					return
				}
				spec.Seeds.List = append(spec.Seeds.List, v)
			}
		case "seed-start":
			start := sf.seedStart
			spec.Seeds.List, spec.Seeds.Start = nil, &start
		case "count":
			spec.ImagesPerPrompt = sf.count
			if spec.Seeds.List == nil {
				spec.Seeds.Count = sf.count
			}
		case "width":
			keep(positiveFlag(f.Name, sf.width, &spec.Width))
		case "height":
			keep(positiveFlag(f.Name, sf.height, &spec.Height))
		case "steps":
			keep(positiveFlag(f.Name, sf.steps, &spec.Steps))
		case "cfg-scale", "cfg":
			spec.CFGScale = wire.GuidanceScale(sf.cfg)
		case "sampler":
			spec.Sampler = sf.sampler
		case "schedule":
			spec.Schedule = sf.schedule
		case "clip-skip":
			spec.ClipSkip = sf.clipSkip
		case "priority":
			spec.Priority = wire.Priority(sf.priority)
		case "frames-per-task":
			spec.FramesPerTask = sf.framesPerTask
		case "max-retries":
			r := sf.retries
			spec.MaxRetries = &r
		case "init-image":
			spec.InitImage = sf.initImage
		case "mask":
			spec.Mask = sf.mask
		case "strength":
			spec.Strength = sf.strength
		case "outpaint":
			p, e := wire.ParsePadding(sf.outpaint)
			if e != nil {
				keep(usagef("--outpaint: %v", e))
				return
			}
			spec.Outpaint = &p
		}
	})
	return err
}

func runSubmit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var sf submitFlags
	sf.register(fs)
	wait := fs.Bool("wait", false, "follow the job until it ends (exit status 1 unless it is done)")
	asJSON := fs.Bool("json", false, "print the accepted job as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm submit [JOB.yaml|JOB.json|-] [flags]\n\n"+
			"Submits a job from a spec file (- reads it from stdin), from flags, or from a file with flags\n"+
			"overriding its fields: a batch (prompts x seeds), an animation (kind: animation,\n"+
			"keyframes; spec file only), or image edits with --init-image, --mask, --outpaint.\n"+
			"Local images are checked, then uploaded before the job is sent. Examples:\n"+
			"  farm submit --model sd15 --prompt 'a lighthouse at dusk' --seed-start 1 --count 64 --wait\n"+
			"  farm submit --model sd15 --prompt 'a castle' --init-image sketch.png --strength 0.6 --count 8\n"+
			"  farm submit animation.yaml --wait\n"+
			"  farm submit - --priority high < job.json\n\n"+
			"The sampling flags are farm render's; --cfg and --negative are aliases of\n"+
			"--cfg-scale and --negative-prompt.\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var spec wire.JobSpec
	switch len(pos) {
	case 0:
	case 1:
		if pos[0] == "-" {
			spec, err = readJobStdin()
		} else {
			spec, err = wire.ReadJobFile(pos[0])
		}
		if err != nil {
			return err
		}
	default:
		return usagef("want at most one job file, got %q", pos)
	}
	if err := sf.apply(fs, &spec); err != nil {
		return err
	}
	inputs, fe := spec.ReadLocalInputs()
	if len(fe) > 0 {
		return submitError(fe)
	}
	// The coordinator's own checks, here first: nothing is uploaded for a
	// job it would refuse, and fields a file gives as 0 (which JSON does not
	// carry across) are refused rather than sent as defaults.
	check := spec
	check.Normalize()
	if err := check.Validate(); err != nil {
		return submitError(err)
	}
	cli, err := cf.client()
	if err != nil {
		return err
	}
	if err := cli.UploadInputs(ctx, inputs, &spec); err != nil {
		return err
	}
	j, err := cli.Submit(ctx, spec)
	if err != nil {
		return submitError(err)
	}
	if *asJSON {
		if err := printJSON(stdout, j); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%s queued: %d frames in %d tasks, class %s, priority %s\n", j.ID, j.FramesTotal, j.TasksTotal, j.Class, j.Priority)
	}
	if !*wait {
		return nil
	}
	final, err := watchJob(ctx, cli, j.ID, os.Stderr)
	if err != nil {
		return err
	}
	return jobOutcome(final)
}

// readJobStdin reads a spec from stdin as wire.ReadJobFile reads a file;
// paths in it (prompts_file, init_image, mask) are relative to the working
// directory.
func readJobStdin() (wire.JobSpec, error) {
	data, err := io.ReadAll(stdin)
	if err != nil {
		return wire.JobSpec{}, fmt.Errorf("stdin: %w", err)
	}
	s, err := wire.ParseJobSpec(data)
	if err != nil {
		return wire.JobSpec{}, fmt.Errorf("stdin: %w", err)
	}
	if s.PromptsFile != "" {
		if err := s.LoadPromptsFile(s.PromptsFile); err != nil {
			return wire.JobSpec{}, err
		}
	}
	return s, nil
}

// submitError lists every field error of a refused job.
func submitError(err error) error {
	var ae *client.APIError
	fields, local := wire.AsFieldErrors(err)
	if !local {
		if !errors.As(err, &ae) || ae.Code != wire.CodeInvalidJob || len(ae.Fields) == 0 {
			return err
		}
		fields = ae.Fields
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the job was refused (%d problems):", len(fields))
	for _, f := range fields {
		fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Reason)
	}
	return errors.New(b.String())
}

// positiveFlag stores a flag that must be at least 1: zero in a job spec
// means "the default", but typed on the command line it is a mistake.
func positiveFlag(name string, v int, dst *int) error {
	if v < 1 {
		return usagef("--%s %d: must be at least 1", name, v)
	}
	*dst = v
	return nil
}
