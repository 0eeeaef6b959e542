package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// submitFlags is the flag form of a batch job; set flags override the file.
type submitFlags struct {
	samplingFlags
	name, model, family, precision, backend, promptsFile string
	priority, seeds                                      string
	prompts                                              []string
	seedStart                                            int64
	count, framesPerTask, retries                        int
	allowPendingModel                                    bool
}

func (sf *submitFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&sf.name, "name", "", "a label for the job")
	fs.StringVar(&sf.model, "model", "", "model name (in the nodes' model dir or the model store)")
	fs.StringVar(&sf.family, "model-family", "", "sd1, sd2, sdxl or tiny (default: guessed from the name)")
	fs.StringVar(&sf.precision, "precision", "", "fp16 (default), bf16 or fp32")
	fs.StringVar(&sf.backend, "backend", "", "pin the backend: cpu or cuda (default either)")
	fs.StringArrayVar(&sf.prompts, "prompt", nil, "a prompt (repeatable)")
	fs.StringVar(&sf.promptsFile, "prompts-file", "", "file of prompts, one a line (# comments)")
	sf.samplingFlags.register(fs)
	// The old spellings, kept working, out of the help; no warning either,
	// since scripts read the command's first line.
	fs.StringVar(&sf.negative, "negative", "", "alias of --negative-prompt")
	fs.Float64Var(&sf.cfg, "cfg", sf.cfg, "alias of --cfg-scale")
	for _, alias := range []string{"negative", "cfg"} {
		_ = fs.MarkHidden(alias)
	}
	fs.StringVar(&sf.seeds, "seeds", "", "comma-separated seeds (instead of --seed or --seed-start/--count)")
	fs.Int64Var(&sf.seedStart, "seed-start", 0, "first seed of a range")
	fs.IntVar(&sf.count, "count", 0, "images per prompt: seeds --seed-start, +1, ... (random without --seed-start)")
	fs.StringVar(&sf.priority, "priority", "", "high, normal (default) or low")
	fs.IntVar(&sf.framesPerTask, "frames-per-task", 0, "frames per task (default 4)")
	fs.IntVar(&sf.retries, "max-retries", 0, "times a failed task runs again (default 3)")
	fs.BoolVar(&sf.allowPendingModel, "allow-pending-model", false, "accept a model that no registered node and not the model store has yet: the job waits for a node that brings it")
}

// apply copies every flag that was set onto spec.
func (sf *submitFlags) apply(fs *pflag.FlagSet, spec *wire.JobSpec) error {
	var seedFlags []string
	fs.Visit(func(f *pflag.Flag) {
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
	fs.Visit(func(f *pflag.Flag) {
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
			if sf.seed > wire.MaxSeed {
				keep(usagef("--seed %d: outside 0..%d", sf.seed, uint64(wire.MaxSeed)))
				return
			}
			spec.Seeds = wire.Seeds{List: []int64{int64(sf.seed)}}
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
		case "allow-pending-model":
			spec.AllowPendingModel = sf.allowPendingModel
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
	// A range from --seed-start (or the file's seeds.start) counts --count
	// seeds; without a start the coordinator picks a random one.
	if fs.Changed("count") && spec.Seeds.List == nil && spec.Seeds.Start != nil {
		spec.Seeds.Count = sf.count
	}
	return err
}

func newSubmitCmd() *cobra.Command {
	var (
		sf   submitFlags
		wait bool
	)
	c := &cobra.Command{
		Use:   "submit [JOB.yaml|JOB.json|-]",
		Short: "submit a job from JOB.yaml|JOB.json (- for stdin) or from flags",
		Long: "Submits a job from a spec file (- reads it from stdin), from flags, or from a file with flags\n" +
			"overriding its fields: a batch (prompts x seeds), an animation (kind: animation,\n" +
			"keyframes; spec file only), or image edits with --init-image, --mask, --outpaint.\n" +
			"Local images are checked, then uploaded before the job is sent.\n\n" +
			"The sampling flags are farm render's, with its defaults; only the ones given override\n" +
			"the file. --seed gives one seed, --seeds a list, --seed-start and --count a range.\n" +
			"--cfg and --negative still work as the old spellings of --cfg-scale and --negative-prompt.\n\n" +
			precedence,
		Example: `  farm submit --model sd15 --prompt 'a lighthouse at dusk' --seed-start 1 --count 64 --wait
  farm submit --model sd15 --prompt 'a castle' --init-image sketch.png --strength 0.6 --count 8
  farm submit animation.yaml --wait
  farm submit - --priority high < job.json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("want at most one job file, got %q", args)
			}
			return nil
		},
	}
	api := addAPIFlags(newSettings(c.Flags()))
	sf.register(c.Flags())
	completeSampling(c)
	c.Flags().BoolVar(&wait, "wait", false, "follow the job until it ends (exit status 1 unless it is done)")
	out := addOutputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		spec, err := submitSpec(c, &sf, args)
		if err != nil {
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
		cli, err := api.client()
		if err != nil {
			return err
		}
		if err := cli.UploadInputs(c.Context(), inputs, &spec); err != nil {
			return err
		}
		j, err := cli.Submit(c.Context(), spec)
		if err != nil {
			return submitError(err)
		}
		err = printRecord(stdout, *out, j, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "%s queued: %d frames in %d tasks, class %s, priority %s\n", j.ID, j.FramesTotal, j.TasksTotal, j.Class, j.Priority)
			return err
		})
		if err != nil || !wait {
			return err
		}
		final, err := watchJob(c.Context(), cli, j.ID, os.Stderr)
		if err != nil {
			return err
		}
		return jobOutcome(final)
	}
	return c
}

// submitSpec reads the spec file (or stdin for -), if any, and applies the
// flags given.
func submitSpec(c *cobra.Command, sf *submitFlags, args []string) (wire.JobSpec, error) {
	var (
		spec wire.JobSpec
		err  error
	)
	switch {
	case len(args) == 1 && args[0] == "-":
		spec, err = readJobStdin(c.InOrStdin())
	case len(args) == 1:
		spec, err = wire.ReadJobFile(args[0])
	}
	if err != nil {
		return spec, err
	}
	return spec, sf.apply(c.Flags(), &spec)
}

// readJobStdin reads a spec from stdin as wire.ReadJobFile reads a file;
// paths in it (prompts_file, init_image, mask) are relative to the working
// directory.
func readJobStdin(stdin io.Reader) (wire.JobSpec, error) {
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
