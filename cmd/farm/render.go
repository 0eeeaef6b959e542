package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/localrender"
	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const renderHelp = `  farm render --model PATH --prompt TEXT --output FILE.png [flags]
  farm render --model PATH --from-png IMAGE.png --output FILE.png [flags]
  farm render --spec JOB.yaml --output DIR [--model PATH | --models DIR]

Renders locally, no farm needed: on a GPU with a binary built with -tags cuda,
else on the CPU (--backend, --device). PATH is a diffusers folder or a
single-file .safetensors checkpoint.

With --prompt it renders one image (--batch N for more seeds), from noise or
from an image: --init-image alone is img2img, with --mask it is inpainting
(white is repainted) and with --outpaint the canvas grows by that many pixels
and the new area is painted. The size then defaults to the image's plus
--outpaint. An inpainting model (9-channel UNet) conditions on the mask; any
other model blends the kept area back at every step.

With --from-png it renders again from the settings an image carries (farm's
or AUTOMATIC1111's "parameters" text, as farm png-info prints it), as the
webui's "Send to txt2img" does: the prompt, negative prompt, steps, sampler,
schedule, CFG scale, seed, size and clip skip, and with --init-image the
denoising strength. Flags given on the command line win over the image's.

With --spec it renders a whole job spec as farm submit takes it, a batch or an
animation, to DIR: frames/NNNNNN.png, manifest.json and, for an animation,
animation.gif and animation.mp4 (when ffmpeg is on PATH). The spec's model is
looked up as NAME in --models, or --model PATH renders with another model.`

// renderFlags are the flags of farm render.
type renderFlags struct {
	samplingFlags
	model, prompt, output  string
	config, tokenizer, vae string
	spec, models, fromPNG  string
	pngModel, pngHash      string // the model --from-png names
	batch                  int
	quiet                  bool
	compute                backendFlags
}

func (rf *renderFlags) register(s *settings) {
	fs := s.fs
	fs.StringVar(&rf.model, "model", "", "diffusers model folder or single-file .safetensors checkpoint (required without --spec; with it, replaces the spec's model)")
	fs.StringVar(&rf.prompt, "prompt", "", "text prompt (required without --spec)")
	rf.samplingFlags.register(fs)
	rf.batch = 1
	fs.IntVar(&rf.batch, "batch", rf.batch, "number of images; image i uses seed+i")
	fs.StringVar(&rf.config, "config", "", "LDM yaml or diffusers folder describing a single-file checkpoint")
	fs.StringVar(&rf.tokenizer, "tokenizer", "", "tokenizer folder (vocab.json, merges.txt) or bpe_simple_vocab_16e6.txt.gz, for checkpoints without one")
	fs.StringVar(&rf.vae, "vae", "", "replacement VAE: diffusers vae folder or .safetensors file")
	fs.StringVar(&rf.output, "output", "", "output PNG file (with --batch N, NAME-SEED.png for each image); with --spec, the output folder (required)")
	fs.StringVar(&rf.spec, "spec", "", "render this job spec (YAML or JSON, as farm submit takes) instead of one prompt")
	fs.StringVar(&rf.fromPNG, "from-png", "", "take the prompt and settings from this PNG's parameters text (farm's or AUTOMATIC1111's); flags given win")
	fs.StringVar(&rf.models, "models", "", "with --spec: folder holding the spec's model as NAME or NAME.safetensors (default ./"+localrender.DefaultModels+")")
	fs.BoolVar(&rf.quiet, "quiet", false, "print no progress")
	rf.compute.register(s)
}

func (rf *renderFlags) checkpointOptions() checkpoint.Options {
	return checkpoint.Options{Config: rf.config, Tokenizer: rf.tokenizer, VAE: rf.vae}
}

func newRenderCmd() *cobra.Command {
	var rf renderFlags
	c := &cobra.Command{
		Use:   "render",
		Short: "render images or a whole job spec locally with the engine, no farm needed",
		Long:  renderHelp,
		Example: `  farm render --model models/demo --prompt 'a lighthouse at dusk' --seed 1 --output out.png
  farm render --model models/demo --prompt 'a castle' --init-image sketch.png --strength 0.6 --output castle.png
  farm render --model models/sd15-inpaint --prompt 'a red bench' --init-image park.png --mask bench.png --output bench.png
  farm render --model models/demo --prompt 'a long beach' --init-image beach.png --outpaint 64,0,64,0 --output wide.png
  farm render --model models/demo --from-png out.png --seed 2 --output again.png
  farm render --spec animation.yaml --output out --models models`,
	}
	s := newSettings(c.Flags())
	rf.register(s)
	completeSampling(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		if err := s.apply(); err != nil {
			return err
		}
		if rf.spec != "" {
			return renderSpec(c.Context(), c.Flags(), &rf, args)
		}
		return renderImages(c.Context(), c.Flags(), &rf, args)
	}
	return c
}

// renderImages is farm render without --spec: one request, --batch seeds.
func renderImages(ctx context.Context, fs *pflag.FlagSet, rf *renderFlags, args []string) error {
	if rf.fromPNG != "" {
		if err := rf.applyPNG(fs); err != nil {
			return err
		}
	}
	req, problems := rf.request(args)
	if len(problems) > 0 {
		return usagef("%s", strings.Join(problems, "; "))
	}
	if err := rf.readImages(&req); err != nil {
		return err
	}
	if problems := rf.sizeProblems(req); len(problems) > 0 {
		return usagef("%s", strings.Join(problems, "; "))
	}
	if err := req.Validate(); err != nil {
		return usagef("%s", strings.TrimPrefix(err.Error(), "pipeline: "))
	}

	b, release, err := rf.compute.open(progressOut(rf.quiet))
	if err != nil {
		return err
	}
	defer release()
	start := time.Now()
	m, err := checkpoint.Load(b, rf.model, rf.checkpointOptions())
	if err != nil {
		return err
	}
	if !rf.quiet {
		fmt.Fprintf(os.Stderr, "loaded %s (%s, hash %s) in %.1fs\n", m.Name, m.Family, m.Hash, time.Since(start).Seconds())
	}
	if rf.pngHash != "" && rf.pngHash != m.Hash {
		fmt.Fprintf(os.Stderr, "note: %s was made with model %s (hash %s), not %s (hash %s): the image will differ\n",
			rf.fromPNG, cmp.Or(rf.pngModel, "?"), rf.pngHash, m.Name, m.Hash)
	}
	p := pipeline.New(b, m)
	for i := 0; i < rf.batch; i++ {
		r := req
		r.Seed = req.Seed + uint64(i)
		path := rf.output
		if rf.batch > 1 {
			path = fmt.Sprintf("%s-%d.png", strings.TrimSuffix(rf.output, filepath.Ext(rf.output)), r.Seed)
		}
		if err := renderOne(ctx, p, r, path, rf.quiet); err != nil {
			return err
		}
	}
	return nil
}

// request turns the flags into an engine request without its images, and
// lists every problem the flags have by themselves.
func (rf *renderFlags) request(args []string) (pipeline.Request, []string) {
	var problems []string
	if rf.model == "" {
		problems = append(problems, "--model is required")
	}
	if rf.prompt == "" {
		problems = append(problems, "--prompt is required")
	}
	if rf.output == "" {
		problems = append(problems, "--output is required")
	} else if !strings.EqualFold(filepath.Ext(rf.output), ".png") {
		problems = append(problems, fmt.Sprintf("--output %q: must end in .png", rf.output))
	}
	if !slices.Contains(scheduler.Names(), rf.sampler) {
		problems = append(problems, fmt.Sprintf("--sampler %q: want %s", rf.sampler, alternatives(scheduler.Names())))
	}
	if !slices.Contains(scheduler.Schedules(), rf.schedule) {
		problems = append(problems, fmt.Sprintf("--schedule %q: want %s", rf.schedule, alternatives(scheduler.Schedules())))
	}
	if rf.batch < 1 {
		problems = append(problems, fmt.Sprintf("--batch %d: must be at least 1", rf.batch))
	}
	if rf.models != "" {
		problems = append(problems, "--models names a folder of models for --spec; give --model PATH")
	}
	if len(args) > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", args))
	}
	_, _, bad := rf.compute.parse()
	problems = append(problems, bad...)
	req := pipeline.Request{
		Prompt: rf.prompt, NegativePrompt: rf.negative, Width: rf.width, Height: rf.height, Steps: rf.steps,
		CFGScale: rf.cfg, Sampler: rf.sampler, Schedule: rf.schedule, Seed: rf.seed, ClipSkip: rf.clipSkip,
		Strength: rf.strength,
	}
	problems = append(problems, rf.imageProblems(&req)...)
	// The settings without the images; with an init image the size is
	// checked against it once it is read.
	check := req
	check.Strength, check.Outpaint = 0, pipeline.Padding{}
	check.Width, check.Height = cmp.Or(check.Width, scheduler.DefaultSize), cmp.Or(check.Height, scheduler.DefaultSize)
	if rf.initImage == "" {
		req.Width, req.Height = check.Width, check.Height
	} else {
		for _, d := range []struct {
			name string
			v    int
		}{{"--width", rf.width}, {"--height", rf.height}} {
			if d.v < 0 || d.v%8 != 0 {
				problems = append(problems, fmt.Sprintf("%s %d: must be a multiple of 8 (or 0 for the init image's size plus --outpaint)", d.name, d.v))
			}
		}
		check.Width, check.Height = scheduler.DefaultSize, scheduler.DefaultSize
	}
	if err := check.Validate(); err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "pipeline: "))
	}
	return req, problems
}

// pngFlags are the flags each field of a parameters text fills: every
// field pipeline.Infotext.Request can refuse.
var pngFlags = map[string][]string{
	"Steps": {"steps"}, "Sampler": {"sampler"}, "Schedule type": {"schedule"}, "CFG scale": {"cfg-scale"},
	"Seed": {"seed"}, "Size": {"width", "height"}, "Clip skip": {"clip-skip"}, "Denoising strength": {"strength"},
}

// applyPNG fills the flags not given on the command line from the
// parameters text of --from-png, as the webui's "Send to txt2img" fills its
// form. The size comes from the init image when there is one, and the
// denoising strength only applies to one. A field the engine cannot use
// (another sampler) is an error unless its flag is given.
func (rf *renderFlags) applyPNG(fs *pflag.FlagSet) error {
	text, err := readParameters(rf.fromPNG)
	if err != nil {
		return fmt.Errorf("--from-png %w", err)
	}
	it := pipeline.ParseInfotext(text)
	if len(it.Fields) == 0 {
		return fmt.Errorf("--from-png %s: %w", rf.fromPNG, pipeline.ErrNoSettings)
	}
	req, model, hash, perr := it.Request()
	given := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { given[f.Name] = true })
	withImage := rf.initImage != ""
	ignored := map[string]bool{"Size": withImage, "Denoising strength": !withImage}
	var problems []string
	for _, pe := range parameterErrors(perr) {
		flags := pngFlags[pe.Key]
		if ignored[pe.Key] || len(flags) > 0 && !slices.ContainsFunc(flags, func(f string) bool { return !given[f] }) {
			continue // its flags replace it
		}
		problems = append(problems, fmt.Sprintf("%s %q: %v (give --%s)", pe.Key, pe.Value, pe.Err, strings.Join(flags, " and --")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("--from-png %s: %s", rf.fromPNG, strings.Join(problems, "; "))
	}
	has := func(key string) bool { _, ok := it.Get(key); return ok }
	for _, f := range []struct {
		flag string
		from bool
		set  func()
	}{
		{"prompt", true, func() { rf.prompt = req.Prompt }},
		{"negative-prompt", true, func() { rf.negative = req.NegativePrompt }},
		{"steps", has("Steps"), func() { rf.steps = req.Steps }},
		{"sampler", req.Sampler != "", func() { rf.sampler = req.Sampler }},
		{"schedule", true, func() { rf.schedule = req.Schedule }},
		{"cfg-scale", has("CFG scale"), func() { rf.cfg = req.CFGScale }},
		{"seed", has("Seed"), func() { rf.seed = req.Seed }},
		{"clip-skip", true, func() { rf.clipSkip = req.ClipSkip }},
		{"width", has("Size") && !withImage, func() { rf.width = req.Width }},
		{"height", has("Size") && !withImage, func() { rf.height = req.Height }},
		{"strength", has("Denoising strength") && withImage, func() { rf.strength = req.Strength }},
	} {
		if f.from && !given[f.flag] {
			f.set()
		}
	}
	if rf.model == "" && model+hash != "" {
		return usagef("--model is required: %s was made with model %s (hash %s)", rf.fromPNG, cmp.Or(model, "?"), cmp.Or(hash, "?"))
	}
	rf.pngModel, rf.pngHash = model, hash
	for _, n := range reproductionNotes(it) {
		fmt.Fprintf(os.Stderr, "note: %s: %s\n", rf.fromPNG, n)
	}
	return nil
}

// imageProblems checks the image flags that need no file read, and sets
// the request's outpainting.
func (rf *renderFlags) imageProblems(req *pipeline.Request) []string {
	var problems []string
	if rf.initImage == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"--mask", rf.mask != ""}, {"--outpaint", rf.outpaint != ""}, {"--strength", rf.strength != 0}} {
			if f.set {
				problems = append(problems, f.name+" needs --init-image")
			}
		}
	}
	if rf.strength < 0 || rf.strength > 1 || rf.strength != rf.strength {
		problems = append(problems, fmt.Sprintf("--strength %g: must be in (0, 1] (0 or unset: %g, or %g with --mask or --outpaint)",
			rf.strength, pipeline.DefaultStrengthImg2Img, pipeline.DefaultStrengthInpaint))
	}
	if rf.outpaint == "" {
		return problems
	}
	pad, err := wire.ParsePadding(rf.outpaint)
	if err != nil {
		return append(problems, "--outpaint: "+strings.TrimPrefix(err.Error(), "wire: outpaint "))
	}
	var bad []string
	for _, side := range []struct {
		name string
		v    int
	}{{"left", pad.Left}, {"top", pad.Top}, {"right", pad.Right}, {"bottom", pad.Bottom}} {
		switch {
		case side.v < 0 || side.v > wire.MaxSize:
			bad = append(bad, fmt.Sprintf("%s %d is outside 0..%d", side.name, side.v, wire.MaxSize))
		case side.v%8 != 0:
			bad = append(bad, fmt.Sprintf("%s %d is not a multiple of 8", side.name, side.v))
		}
	}
	if pad == (wire.Padding{}) {
		bad = append(bad, "it extends no side")
	}
	if len(bad) > 0 {
		return append(problems, fmt.Sprintf("--outpaint %q: %s (LEFT,TOP,RIGHT,BOTTOM in pixels, multiples of 8)", rf.outpaint, strings.Join(bad, ", ")))
	}
	req.Outpaint = pipeline.Padding{Left: pad.Left, Top: pad.Top, Right: pad.Right, Bottom: pad.Bottom}
	return problems
}

// readImages reads and checks --init-image and --mask into req. Problems
// with the files are errors (exit 1), not usage errors.
func (rf *renderFlags) readImages(req *pipeline.Request) error {
	if rf.initImage == "" {
		return nil
	}
	img, _, err := media.ReadInput(rf.initImage)
	if err != nil {
		return fmt.Errorf("--init-image: %w", err)
	}
	if img.Width%8 != 0 || img.Height%8 != 0 {
		return fmt.Errorf("--init-image %s is %dx%d: its sides must be multiples of 8 (crop or resize it)", rf.initImage, img.Width, img.Height)
	}
	req.InitImage = img.Image
	if rf.mask == "" {
		return nil
	}
	mask, _, err := media.ReadInput(rf.mask)
	if err != nil {
		return fmt.Errorf("--mask: %w", err)
	}
	if err := media.CheckMask(img, mask); err != nil {
		return fmt.Errorf("--mask %s: %s", rf.mask, strings.TrimPrefix(err.Error(), "media: "))
	}
	req.Mask = mask.Image
	return nil
}

// sizeProblems lists the ways --width and --height disagree with the size
// of the output, which the init image and --outpaint set.
func (rf *renderFlags) sizeProblems(req pipeline.Request) []string {
	if req.InitImage == nil {
		return nil
	}
	b, p := req.InitImage.Bounds(), req.Outpaint
	w, h := b.Dx()+p.Left+p.Right, b.Dy()+p.Top+p.Bottom
	grown := ""
	if !p.IsZero() {
		grown = " grown by --outpaint"
	}
	var problems []string
	for _, d := range []struct {
		name      string
		flag, out int
	}{{"--width", rf.width, w}, {"--height", rf.height, h}} {
		if d.flag != 0 && d.flag != d.out {
			problems = append(problems, fmt.Sprintf("%s %d: the output is the init image's %dx%d%s, %dx%d (leave out --width and --height)",
				d.name, d.flag, b.Dx(), b.Dy(), grown, w, h))
		}
	}
	return problems
}

func renderOne(ctx context.Context, p *pipeline.Pipeline, req pipeline.Request, path string, quiet bool) error {
	start := time.Now()
	res, err := p.Generate(ctx, req, func(step, total int) {
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

// specFlags are the flags farm render --spec takes; the spec has the rest.
var specFlags = map[string]bool{"spec": true, "output": true, "model": true, "models": true,
	"config": true, "tokenizer": true, "vae": true, "quiet": true, "backend": true, "device": true}

// renderSpec is farm render --spec: a whole job on this machine.
func renderSpec(ctx context.Context, fs *pflag.FlagSet, rf *renderFlags, args []string) error {
	var problems []string
	fs.Visit(func(f *pflag.Flag) {
		if !specFlags[f.Name] {
			problems = append(problems, fmt.Sprintf("--%s: not with --spec (set it in the spec)", f.Name))
		}
	})
	if rf.output == "" {
		problems = append(problems, "--output is required (the folder to write)")
	}
	if rf.model != "" && rf.models != "" {
		problems = append(problems, "give --model PATH or --models DIR, not both")
	}
	if len(args) > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", args))
	}
	_, _, bad := rf.compute.parse()
	problems = append(problems, bad...)
	if len(problems) > 0 {
		return usagef("%s", strings.Join(problems, "; "))
	}
	b, release, err := rf.compute.open(progressOut(rf.quiet))
	if err != nil {
		return err
	}
	defer release()
	o := localrender.Options{Spec: rf.spec, Output: rf.output, Model: rf.model, Models: rf.models,
		Checkpoint: rf.checkpointOptions(), Backend: b}
	if !rf.quiet {
		o.Progress = specProgress(rf.output)
	}
	man, err := localrender.Run(ctx, o)
	for _, n := range man.Notes {
		fmt.Fprintf(os.Stderr, "note: %s\n", n)
	}
	var notFound *localrender.ModelNotFoundError
	switch {
	case errors.As(err, &notFound):
		return fmt.Errorf("%w: give the folder that holds it with --models DIR, or another model's path with --model PATH", err)
	case err != nil:
		if _, ok := wire.AsFieldErrors(err); ok {
			return fmt.Errorf("%s: %w", rf.spec, submitError(err))
		}
	}
	return err
}

// specProgress prints a local job's progress on stderr.
func specProgress(dir string) func(localrender.Event) {
	return func(e localrender.Event) {
		switch e.Stage {
		case wire.StageLoading:
			fmt.Fprintf(os.Stderr, "loaded %s from %s in %.1fs\n", e.Model, e.Path, e.Elapsed.Seconds())
		case wire.StageStep:
			fmt.Fprintf(os.Stderr, "\rframe %d: step %d/%d", e.Frame, e.Step, e.Steps)
		case wire.StageFrame:
			fmt.Fprintf(os.Stderr, "\rframe %d: wrote %s in %.1fs (%d of %d)\n", e.Frame, filepath.Join(dir, e.Path), e.Elapsed.Seconds(), e.Done, e.Frames)
		case localrender.StageAssemble:
			fmt.Fprintf(os.Stderr, "wrote %s in %.1fs\n", filepath.Join(dir, e.Path), e.Elapsed.Seconds())
		case wire.StageDone:
			fmt.Fprintf(os.Stderr, "wrote %s: %d of %d frames in %.1fs\n", filepath.Join(dir, e.Path), e.Done, e.Frames, e.Elapsed.Seconds())
		}
	}
}

// alternatives spells a list of choices: "a, b, c or d".
func alternatives(choices []string) string {
	if len(choices) < 2 {
		return strings.Join(choices, "")
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}
