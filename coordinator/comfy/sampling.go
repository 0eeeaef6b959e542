package comfy

import (
	"context"

	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// sampling sets the seeds, steps, guidance, sampler, schedule, size and
// image inputs from the sampler node and the latent it starts from.
func (t *translator) sampling(ctx context.Context, s, loader *node) {
	spec := &t.p.spec
	seedName := "seed"
	adv := s.class.name == classKSamplerAdv
	if adv {
		seedName = "noise_seed"
	}
	spec.Steps = int(s.int("steps"))
	cfg := s.float("cfg")
	spec.CFGScale = &cfg
	spec.Sampler = farmSampler(s.str("sampler_name"))
	spec.Schedule = farmSchedule(s.str("scheduler"))
	t.field("seeds", s, seedName)
	t.field("steps", s, "steps")
	t.field("cfg_scale", s, "cfg")
	t.field("sampler", s, "sampler_name")
	t.field("schedule", s, "scheduler")

	latent := t.from(s, "latent_image", classEmptyLatent, classVAEEncode, classEncodeInpaint, classLatentMask)
	if latent == nil {
		return
	}
	batch := 1
	fromImage := latent.class.name != classEmptyLatent
	if fromImage {
		t.imageLatent(ctx, latent, loader)
	} else {
		spec.Width, spec.Height = int(latent.int("width")), int(latent.int("height"))
		batch = int(latent.int("batch_size"))
		t.field("width", latent, "width")
		t.field("height", latent, "height")
		t.field("images_per_prompt", latent, "batch_size")
	}
	t.seeds(s, seedName, batch, latent)
	if adv {
		t.advanced(s, fromImage)
	} else {
		t.denoise(s, fromImage)
	}
	if _, err := scheduler.New(spec.Sampler, spec.Schedule, scheduler.SD15(), spec.Steps); err != nil {
		t.ck.add(s.id, customError("scheduler", "%v", err))
	}
}

// seeds maps the sampler's seed onto the spec. ComfyUI draws a batch's
// noise from one seed; the farm renders each image on its own, from seeds
// seed, seed+1, ...: image k of a batch is seed+k rendered alone. A list of
// seeds gives one image per seed.
func (t *translator) seeds(s *node, name string, batch int, latent *node) {
	spec := &t.p.spec
	switch v := s.vals[name].(type) {
	case []int64:
		if batch != 1 && batch != len(v) {
			t.ck.add(latent.id, customError("batch_size", "is %d but the sampler lists %d seeds; each seed is one image, so give batch_size 1",
				batch, len(v)))
			return
		}
		spec.Seeds = wire.Seeds{List: v}
		spec.ImagesPerPrompt = len(v)
		t.field("images_per_prompt", s, name)
	case int64:
		spec.Seeds = wire.SeedRange(v, batch)
		spec.ImagesPerPrompt = batch
	}
}

// denoise maps KSampler's denoise. ComfyUI runs steps steps of a schedule
// of int(steps/denoise) steps, starting that far into it; the farm's
// strength keeps int(total*strength) steps of its schedule, so the spec
// asks for the same schedule and a strength that keeps exactly steps.
func (t *translator) denoise(s *node, fromImage bool) {
	spec := &t.p.spec
	d, n := s.float("denoise"), spec.Steps
	t.field("strength", s, "denoise")
	switch {
	case !fromImage && d < 1:
		t.ck.add(s.id, customError("denoise", "%g below 1 needs an image to start from (VAEEncode); an empty latent is denoised in full", d))
	case !fromImage:
	case d <= 0:
		t.ck.add(s.id, customError("denoise", "0 runs no step"))
	default:
		total := int(float64(n) / d)
		if total > wire.MaxSteps {
			t.ck.add(s.id, customError("denoise", "%d steps at denoise %g take a schedule of %d steps, more than the farm's %d; "+
				"lower the steps or raise the denoise", n, d, total, wire.MaxSteps))
			return
		}
		spec.Steps = total
		spec.Strength = keepSteps(n, total)
	}
}

// advanced maps KSamplerAdvanced's step range: the farm noises the latent
// and runs its schedule to the end, from start_at_step when it starts from
// an image.
func (t *translator) advanced(s *node, fromImage bool) {
	spec := &t.p.spec
	n := spec.Steps
	start, end := int(s.int("start_at_step")), int(s.int("end_at_step"))
	t.field("strength", s, "start_at_step")
	if s.str("add_noise") != "enable" {
		t.ck.add(s.id, customError("add_noise", "disable starts from the latent as it is; the farm always noises it (enable)"))
	}
	if end < n {
		t.ck.add(s.id, customError("end_at_step", "%d stops before the last of %d steps; the farm runs the schedule to the end", end, n))
	}
	switch {
	case start == 0:
		if fromImage {
			spec.Strength = 1
		}
	case !fromImage:
		t.ck.add(s.id, customError("start_at_step", "%d skips steps of an empty latent; start at 0, or start from an image (VAEEncode)", start))
	case start >= n:
		t.ck.add(s.id, customError("start_at_step", "%d runs no step of %d", start, n))
	default:
		spec.Strength = keepSteps(n-start, n)
	}
}

// keepSteps is the strength that keeps exactly kept of total steps: the
// engine keeps int(total*strength), and the half step keeps float rounding
// from losing one.
func keepSteps(kept, total int) float64 {
	return min(1, (float64(kept)+0.5)/float64(total))
}

// imageLatent sets the init image (and the mask, for inpainting) of a
// sampler that starts from VAEEncode, VAEEncodeForInpaint or
// SetLatentNoiseMask; the image's size is the output's.
func (t *translator) imageLatent(ctx context.Context, latent, loader *node) {
	spec := &t.p.spec
	enc, masked, grow := latent, false, 0
	switch latent.class.name {
	case classEncodeInpaint:
		masked, grow = true, int(latent.int("grow_mask_by"))
	case classLatentMask:
		masked = true
		if enc = t.from(latent, "samples", classVAEEncode); enc == nil {
			return
		}
	}
	t.sameLoader(enc, "vae", loader)
	img := t.from(enc, "pixels", classLoadImage)
	if img == nil {
		return
	}
	name := img.str("image")
	in, err := t.src.image(ctx, name)
	if err != nil {
		t.ck.add(img.id, customError("image", "Invalid image file: %s (%v)", name, err))
		return
	}
	spec.InitImage, spec.Width, spec.Height = in.key, in.width, in.height
	t.field("init_image", img, "image")
	t.field("width", img, "image")
	t.field("height", img, "image")
	if masked {
		t.mask(ctx, latent, grow)
	}
}

// mask sets the spec's mask from the MASK input of n: LoadImage's (where
// the image is transparent) or LoadImageMask's channel.
func (t *translator) mask(ctx context.Context, n *node, grow int) {
	src := t.from(n, "mask", classLoadImage, classLoadImageMask)
	if src == nil {
		return
	}
	channel := maskChannelAlpha
	if src.class.name == classLoadImageMask {
		channel = src.str("channel")
	}
	key, err := t.src.mask(ctx, src.str("image"), channel, grow)
	if err != nil {
		t.ck.add(src.id, customError("image", "%v", err))
		return
	}
	t.p.spec.Mask = key
	t.field("mask", src, "image")
}
