package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
)

func init() {
	register("render", "render images locally with the engine, no farm needed", runRender)
}

func runRender(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm render --model PATH --prompt TEXT --output FILE.png [flags]\n\n"+
			"Renders text-to-image locally on the CPU. PATH is a diffusers folder or a .safetensors checkpoint.\n\n")
		fs.PrintDefaults()
	}
	var (
		model    = fs.String("model", "", "diffusers model folder or single-file .safetensors checkpoint (required)")
		prompt   = fs.String("prompt", "", "text prompt (required)")
		negative = fs.String("negative-prompt", "", "negative prompt")
		width    = fs.Int("width", 512, "image width in pixels, a multiple of 8")
		height   = fs.Int("height", 512, "image height in pixels, a multiple of 8")
		steps    = fs.Int("steps", 20, "denoising steps")
		cfg      = fs.Float64("cfg-scale", 7.5, "classifier-free guidance scale (1 or less turns guidance off)")
		sampler  = fs.String("sampler", "euler_a", "sampler: euler, euler_a, ddim, dpmpp_2m")
		schedule = fs.String("schedule", "default", "sigma schedule: default, karras, ays")
		seed     = fs.Uint64("seed", 0, "seed of the initial noise, as torch.Generator(\"cpu\").manual_seed(seed)")
		batch    = fs.Int("batch", 1, "number of images; image i uses seed+i")
		clipSkip = fs.Int("clip-skip", 0, "skip the last N text encoder layers (diffusers' clip_skip; other tools print N+1)")
		config   = fs.String("config", "", "LDM yaml or diffusers folder describing a single-file checkpoint")
		tokDir   = fs.String("tokenizer", "", "tokenizer folder (vocab.json, merges.txt) or bpe_simple_vocab_16e6.txt.gz, for checkpoints without one")
		vaePath  = fs.String("vae", "", "replacement VAE: diffusers vae folder or .safetensors file")
		output   = fs.String("output", "", "output PNG file; with --batch N, NAME-SEED.png for each image (required)")
		quiet    = fs.Bool("quiet", false, "print no progress")
	)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var problems []string
	if *model == "" {
		problems = append(problems, "--model is required")
	}
	if *prompt == "" {
		problems = append(problems, "--prompt is required")
	}
	if *output == "" {
		problems = append(problems, "--output is required")
	} else if !strings.EqualFold(filepath.Ext(*output), ".png") {
		problems = append(problems, fmt.Sprintf("--output %q: must end in .png", *output))
	}
	if !oneOf(*sampler, "euler", "euler_a", "ddim", "dpmpp_2m") {
		problems = append(problems, fmt.Sprintf("--sampler %q: want euler, euler_a, ddim or dpmpp_2m", *sampler))
	}
	if !oneOf(*schedule, "default", "karras", "ays") {
		problems = append(problems, fmt.Sprintf("--schedule %q: want default, karras or ays", *schedule))
	}
	if *batch < 1 {
		problems = append(problems, fmt.Sprintf("--batch %d: must be at least 1", *batch))
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	req := pipeline.Request{
		Prompt: *prompt, NegativePrompt: *negative, Width: *width, Height: *height, Steps: *steps,
		CFGScale: *cfg, Sampler: *sampler, Schedule: *schedule, Seed: *seed, ClipSkip: *clipSkip,
	}
	if err := req.Validate(); err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "pipeline: "))
	}
	if len(problems) > 0 {
		return usagef("%s", strings.Join(problems, "; "))
	}

	b := cpu.New()
	start := time.Now()
	m, err := checkpoint.Load(b, *model, checkpoint.Options{Config: *config, Tokenizer: *tokDir, VAE: *vaePath})
	if err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprintf(os.Stderr, "loaded %s (%s, hash %s) in %.1fs\n", m.Name, m.Family, m.Hash, time.Since(start).Seconds())
	}
	p := pipeline.New(b, m)
	for i := 0; i < *batch; i++ {
		r := req
		r.Seed = req.Seed + uint64(i)
		path := *output
		if *batch > 1 {
			path = fmt.Sprintf("%s-%d.png", strings.TrimSuffix(*output, filepath.Ext(*output)), r.Seed)
		}
		if err := renderOne(ctx, p, r, path, *quiet); err != nil {
			return err
		}
	}
	return nil
}

func renderOne(ctx context.Context, p *pipeline.Pipeline, req pipeline.Request, path string, quiet bool) error {
	start := time.Now()
	res, err := p.TextToImage(ctx, req, func(step, total int) {
		if !quiet {
			fmt.Fprintf(os.Stderr, "\rseed %d: step %d/%d", req.Seed, step, total)
		}
	})
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	m := p.Model()
	if err := pipeline.EncodePNG(f, res.Image, pipeline.Parameters(res.Request, m.Name, m.Hash)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !quiet {
		fmt.Fprintf(os.Stderr, "\rseed %d: wrote %s in %.1fs\n", req.Seed, path, time.Since(start).Seconds())
	}
	return nil
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}
