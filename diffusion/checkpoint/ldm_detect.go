package checkpoint

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/clip"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/diffusion/unet"
	"github.com/latentfarm/latentfarm/diffusion/vae"
)

// Keys that identify a model from its weights (the ones diffusers'
// single-file loader looks at, at the first attention level).
const (
	keyConvIn  = ldmUNetPrefix + "input_blocks.0.0.weight"
	keyConvOut = ldmUNetPrefix + "out.2.weight"
	keyContext = ldmUNetPrefix + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
	keyProjIn  = ldmUNetPrefix + "input_blocks.1.1.proj_in.weight"
)

// Widths that tell the families apart: the text conditioning of SD1.x
// (CLIP ViT-L/14) and SD2.x (OpenCLIP ViT-H/14), and the first UNet level
// both share.
const (
	contextSD1    = 768
	contextSD2    = 1024
	modelChannels = 320
)

// checkLayout refuses files that are not LDM-keyed SD checkpoints, saying
// what the file looks like instead.
func checkLayout(path string, ks keyShapes) error {
	if _, ok := ks[keyConvIn]; ok && textLayoutOf(ks) != layoutNone {
		return nil
	}
	what := "it has no " + keyConvIn
	if _, ok := ks[keyConvIn]; ok {
		what = "it has a UNet but no text encoder (cond_stage_model.transformer.* or cond_stage_model.model.*)"
	}
	return fmt.Errorf("checkpoint: %s: not a Stable Diffusion 1.x/2.x checkpoint with original (LDM) key names: %s; %s: %w",
		path, what, describeKeys(ks), ErrUnknownLayout)
}

// describeKeys summarises a key set: the largest top-level groups and a
// guess at what the file is.
func describeKeys(ks keyShapes) string {
	counts := map[string]int{}
	for key := range ks {
		p := strings.Split(key, ".")
		group := p[0]
		if len(p) > 2 && (p[0] == "model" || p[0] == "cond_stage_model" || p[0] == "first_stage_model" || p[0] == "conditioner") {
			group = p[0] + "." + p[1]
		}
		counts[group]++
	}
	groups := make([]string, 0, len(counts))
	for g := range counts {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), strings.Compare(a, b))
	})
	var parts []string
	for i, g := range groups {
		if i == 6 {
			parts = append(parts, fmt.Sprintf("and %d more groups", len(groups)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s.* (%d)", g, counts[g]))
	}
	found := fmt.Sprintf("found %d tensors: %s", len(ks), strings.Join(parts, ", "))
	if len(ks) == 0 {
		found = "found no tensors"
	}
	guesses := []struct{ group, guess string }{
		{"conditioner.embedders", "an SDXL checkpoint, which is not supported"},
		{"down_blocks", "a diffusers UNet file: load the whole diffusers folder instead"},
		{"encoder", "a standalone autoencoder: pass it as --vae"},
		{"first_stage_model.encoder", "an autoencoder alone: pass it as --vae"},
		{"text_model", "a text encoder alone"},
		{"lora_unet_down_blocks_0_attentions_0_proj_in", "a LoRA, which is not a full model"},
	}
	for _, g := range guesses {
		if counts[g.group] > 0 {
			return found + "; it looks like " + g.guess
		}
	}
	return found
}

// detectSpec recognises a standard SD1.x or SD2.x checkpoint from its
// weights and returns the presets for it. The heuristics, those of
// diffusers' single-file loader:
//   - the family is the width of the cross-attention context, read from
//     input_blocks.1.1's attn2.to_k: 768 is SD1.x (CLIP ViT-L/14), 1024 is
//     SD2.x (OpenCLIP ViT-H/14);
//   - the prediction type is not stored: SD1.x is epsilon; SD2.x is taken
//     to be v-prediction (the 768 models, stable-diffusion-2 and 2-1),
//     because a .safetensors file has no global_step to tell the 512 "base"
//     models (epsilon) apart; those need --config;
//   - in_channels (4, or 9 for inpainting) and out_channels come from conv_in
//     and the output conv, proj_in being a Linear or a 1x1 conv from its rank.
//
// Anything else (other widths, another first-level width) needs --config.
func detectSpec(ks keyShapes) (*singleSpec, error) {
	ctx := ks[keyContext]
	if len(ctx) != 2 {
		return nil, fmt.Errorf("no cross-attention at the first level (%s has shape %v), so the model cannot be recognised; pass --config: %w",
			keyContext, ctx, ErrUnknownLayout)
	}
	spec := &singleSpec{source: "weights (no --config)", textFromWeights: true, penultimate: true}
	switch ctx[1] {
	case contextSD1:
		spec.unet, spec.text, spec.wantLayout = unet.SD15(), clip.SD15(), layoutCLIP
		spec.sched = scheduler.SD15()
	case contextSD2:
		spec.unet, spec.text, spec.wantLayout = unet.SD21(), clip.SD21(), layoutOpenCLIP
		spec.sched = scheduler.SD15()
		spec.sched.PredictionType = scheduler.PredictV
	default:
		return nil, fmt.Errorf("cross-attention width %d (%s %v) is neither SD1.x's %d nor SD2.x's %d; pass --config: %w",
			ctx[1], keyContext, ctx, contextSD1, contextSD2, ErrUnknownLayout)
	}
	in, out := ks[keyConvIn], ks[keyConvOut]
	if len(in) != 4 || len(out) != 4 || in[0] != modelChannels {
		return nil, fmt.Errorf("the UNet's first and last convs (%s %v, %s %v) are not those of SD1.x/SD2.x (%d channels); pass --config: %w",
			keyConvIn, in, keyConvOut, out, modelChannels, ErrUnknownLayout)
	}
	spec.unet.InChannels, spec.unet.OutChannels = in[1], out[0]
	spec.unet.UseLinearProjection = len(ks[keyProjIn]) == 2
	spec.vae = vae.SD15()
	return spec, nil
}
