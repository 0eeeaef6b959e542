package checkpoint

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/unet"
)

// Key prefixes of the parts of an original (LDM / CompVis) checkpoint.
const (
	ldmUNetPrefix     = "model.diffusion_model."
	ldmVAEPrefix      = "first_stage_model."
	ldmCLIPPrefix     = "cond_stage_model.transformer."
	ldmOpenCLIPPrefix = "cond_stage_model.model."
)

// ldmRef says where a weight the model asks for under its diffusers name is
// stored in an LDM checkpoint.
type ldmRef struct {
	key string
	// part/parts select a block of rows of a fused tensor: OpenCLIP stores
	// q, k and v as one in_proj ([3D, D]), parts 3 and part 0, 1, 2.
	part, parts int
	// squeeze accepts a 1x1 conv kernel [C, C, 1, 1] for a linear weight
	// [C, C] (the LDM VAE's attention projections).
	squeeze bool
}

// mapFunc maps a diffusers weight name to its place in a checkpoint.
type mapFunc func(name string) (ldmRef, bool)

// unetNames maps diffusers UNet2DConditionModel names to LDM UNetModel
// names. LDM numbers its blocks sequentially: input_blocks.0 is conv_in,
// then every level holds layers_per_block [resnet, attention?] blocks
// followed, except at the last level, by one downsample block;
// output_blocks hold layers_per_block+1 blocks per level, the last of
// which ends with the upsampler. The indices follow from the config, as
// in the reference conversion, so any level count and depth works.
type unetNames struct {
	cfg      unet.Config
	inStart  []int // input_blocks index of the first resnet of down level i
	outStart []int // output_blocks index of the first resnet of up block i
}

func newUNetNames(cfg unet.Config) *unetNames {
	n := cfg.Levels()
	u := &unetNames{cfg: cfg}
	idx := 1
	for i := range n {
		u.inStart = append(u.inStart, idx)
		idx += cfg.LayersPerBlock.At(i)
		if i < n-1 {
			idx++ // the downsample block
		}
	}
	idx = 0
	for i := range n {
		u.outStart = append(u.outStart, idx)
		idx += cfg.LayersPerBlock.At(n-1-i) + 1
	}
	return u
}

// resnetLDM maps the inside of a diffusers ResnetBlock2D to LDM's ResBlock.
var resnetLDM = map[string]string{
	"norm1":         "in_layers.0",
	"conv1":         "in_layers.2",
	"time_emb_proj": "emb_layers.1",
	"norm2":         "out_layers.0",
	"conv2":         "out_layers.3",
	"conv_shortcut": "skip_connection",
}

// ldm returns the LDM key (with the model.diffusion_model. prefix) of a
// diffusers UNet weight name.
func (u *unetNames) ldm(name string) (ldmRef, bool) {
	p := strings.Split(name, ".")
	key, ok := u.ldmKey(p)
	if !ok {
		return ldmRef{}, false
	}
	return ldmRef{key: ldmUNetPrefix + key}, true
}

func (u *unetNames) ldmKey(p []string) (string, bool) {
	if len(p) < 2 {
		return "", false
	}
	tail := func(i int) string { return strings.Join(p[i:], ".") }
	switch p[0] {
	case "conv_in":
		return "input_blocks.0.0." + tail(1), true
	case "conv_norm_out":
		return "out.0." + tail(1), true
	case "conv_out":
		return "out.2." + tail(1), true
	case "time_embedding":
		switch p[1] {
		case "linear_1":
			return "time_embed.0." + tail(2), true
		case "linear_2":
			return "time_embed.2." + tail(2), true
		}
	case "mid_block":
		return u.midKey(p)
	case "down_blocks":
		return u.downKey(p)
	case "up_blocks":
		return u.upKey(p)
	}
	return "", false
}

func (u *unetNames) midKey(p []string) (string, bool) {
	if len(p) < 5 {
		return "", false
	}
	switch p[1] + "." + p[2] {
	case "resnets.0":
		return resnetKey("middle_block.0", p[3:])
	case "attentions.0":
		return "middle_block.1." + strings.Join(p[3:], "."), true
	case "resnets.1":
		return resnetKey("middle_block.2", p[3:])
	}
	return "", false
}

func (u *unetNames) downKey(p []string) (string, bool) {
	n := u.cfg.Levels()
	i, j, ok := blockIndices(p, n)
	if !ok {
		return "", false
	}
	layers := u.cfg.LayersPerBlock.At(i)
	switch p[2] {
	case "resnets":
		if j < layers {
			return resnetKey(fmt.Sprintf("input_blocks.%d.0", u.inStart[i]+j), p[4:])
		}
	case "attentions":
		if j < layers {
			return fmt.Sprintf("input_blocks.%d.1.%s", u.inStart[i]+j, strings.Join(p[4:], ".")), true
		}
	case "downsamplers":
		if j == 0 && i < n-1 && len(p) > 5 && p[4] == "conv" {
			return fmt.Sprintf("input_blocks.%d.0.op.%s", u.inStart[i]+layers, strings.Join(p[5:], ".")), true
		}
	}
	return "", false
}

func (u *unetNames) upKey(p []string) (string, bool) {
	n := u.cfg.Levels()
	i, j, ok := blockIndices(p, n)
	if !ok {
		return "", false
	}
	layers := u.cfg.LayersPerBlock.At(n-1-i) + 1
	switch p[2] {
	case "resnets":
		if j < layers {
			return resnetKey(fmt.Sprintf("output_blocks.%d.0", u.outStart[i]+j), p[4:])
		}
	case "attentions":
		if j < layers {
			return fmt.Sprintf("output_blocks.%d.1.%s", u.outStart[i]+j, strings.Join(p[4:], ".")), true
		}
	case "upsamplers":
		if j == 0 && i < n-1 && len(p) > 5 && p[4] == "conv" {
			// The upsampler follows the last resnet (and its attention).
			slot := 1
			if u.cfg.UpBlockTypes[i] == unet.CrossAttnUpBlock {
				slot = 2
			}
			return fmt.Sprintf("output_blocks.%d.%d.conv.%s", u.outStart[i]+layers-1, slot, strings.Join(p[5:], ".")), true
		}
	}
	return "", false
}

// blockIndices reads "X_blocks.i.kind.j..." with i < levels.
func blockIndices(p []string, levels int) (i, j int, ok bool) {
	if len(p) < 5 {
		return 0, 0, false
	}
	i, err1 := strconv.Atoi(p[1])
	j, err2 := strconv.Atoi(p[3])
	if err1 != nil || err2 != nil || i < 0 || i >= levels || j < 0 {
		return 0, 0, false
	}
	return i, j, true
}

func resnetKey(block string, p []string) (string, bool) {
	inner, ok := resnetLDM[p[0]]
	if !ok || len(p) < 2 {
		return "", false
	}
	return block + "." + inner + "." + strings.Join(p[1:], "."), true
}

// vaeAttnLDM maps the diffusers VAE mid-block attention (current and
// pre-0.14 names) to LDM's AttnBlock; the projections are 1x1 convs there.
var vaeAttnLDM = map[string]string{
	"group_norm": "norm",
	"to_q":       "q",
	"to_k":       "k",
	"to_v":       "v",
	"to_out":     "proj_out", // to_out.0
	"query":      "q",
	"key":        "k",
	"value":      "v",
	"proj_attn":  "proj_out",
}

// vaeLDMName maps a diffusers AutoencoderKL weight name to the LDM name
// (without first_stage_model.) for an autoencoder of the given number of
// levels: LDM numbers the decoder's up blocks from the lowest resolution's
// opposite end (up.{levels-1-i}).
func vaeLDMName(levels int, name string) (ldmRef, bool) {
	p := strings.Split(name, ".")
	if len(p) < 2 {
		return ldmRef{}, false
	}
	switch p[0] {
	case "quant_conv", "post_quant_conv":
		return ldmRef{key: name}, true
	case "encoder", "decoder":
	default:
		return ldmRef{}, false
	}
	side, rest := p[0], p[1:]
	tail := func(i int) string { return strings.Join(rest[i:], ".") }
	switch rest[0] {
	case "conv_in", "conv_out":
		return ldmRef{key: name}, true
	case "conv_norm_out":
		return ldmRef{key: side + ".norm_out." + tail(1)}, true
	case "mid_block":
		return vaeMidName(side, rest)
	case "down_blocks", "up_blocks":
		if len(rest) < 5 {
			return ldmRef{}, false
		}
		i, j, ok := blockIndices(rest, levels)
		if !ok {
			return ldmRef{}, false
		}
		dir, sampler, sampleName := "down", "downsamplers", "downsample"
		if rest[0] == "up_blocks" {
			dir, sampler, sampleName = "up", "upsamplers", "upsample"
			i = levels - 1 - i
		}
		switch rest[2] {
		case "resnets":
			return ldmRef{key: fmt.Sprintf("%s.%s.%d.block.%d.%s", side, dir, i, j, vaeResnetTail(rest[4:]))}, true
		case sampler:
			if j == 0 && rest[4] == "conv" {
				return ldmRef{key: fmt.Sprintf("%s.%s.%d.%s.%s", side, dir, i, sampleName, tail(4))}, true
			}
		}
	}
	return ldmRef{}, false
}

func vaeMidName(side string, rest []string) (ldmRef, bool) {
	if len(rest) < 5 {
		return ldmRef{}, false
	}
	switch rest[1] + "." + rest[2] {
	case "resnets.0":
		return ldmRef{key: side + ".mid.block_1." + vaeResnetTail(rest[3:])}, true
	case "resnets.1":
		return ldmRef{key: side + ".mid.block_2." + vaeResnetTail(rest[3:])}, true
	case "attentions.0":
		inner, ok := vaeAttnLDM[rest[3]]
		if !ok {
			return ldmRef{}, false
		}
		last := rest[4:]
		if rest[3] == "to_out" {
			if rest[4] != "0" || len(rest) < 6 {
				return ldmRef{}, false
			}
			last = rest[5:]
		}
		ref := ldmRef{key: side + ".mid.attn_1." + inner + "." + strings.Join(last, ".")}
		ref.squeeze = inner != "norm" && last[0] == "weight"
		return ref, true
	}
	return ldmRef{}, false
}

// vaeResnetTail renames the only resnet part whose name differs.
func vaeResnetTail(p []string) string {
	if len(p) > 0 && p[0] == "conv_shortcut" {
		return "nin_shortcut." + strings.Join(p[1:], ".")
	}
	return strings.Join(p, ".")
}

// clipLDMName maps a transformers CLIPTextModel name to an SD1-style
// checkpoint, which stores the transformers module under
// cond_stage_model.transformer. (older files without the text_model level).
func clipLDMName(withTextModel bool) mapFunc {
	return func(name string) (ldmRef, bool) {
		if !strings.HasPrefix(name, "text_model.") {
			return ldmRef{}, false
		}
		if withTextModel {
			return ldmRef{key: ldmCLIPPrefix + name}, true
		}
		return ldmRef{key: ldmCLIPPrefix + strings.TrimPrefix(name, "text_model.")}, true
	}
}

// openCLIPLayer maps the inside of a transformers CLIPEncoderLayer to an
// OpenCLIP ResidualAttentionBlock.
var openCLIPLayer = map[string]string{
	"layer_norm1":        "ln_1",
	"layer_norm2":        "ln_2",
	"self_attn.out_proj": "attn.out_proj",
	"mlp.fc1":            "mlp.c_fc",
	"mlp.fc2":            "mlp.c_proj",
}

// openCLIPName maps a transformers CLIPTextModel name to the OpenCLIP text
// tower of an SD2 checkpoint (cond_stage_model.model.*). q, k and v are the
// three row blocks of attn.in_proj_weight / in_proj_bias.
func openCLIPName(name string) (ldmRef, bool) {
	const pre = ldmOpenCLIPPrefix
	switch name {
	case "text_model.embeddings.token_embedding.weight":
		return ldmRef{key: pre + "token_embedding.weight"}, true
	case "text_model.embeddings.position_embedding.weight":
		return ldmRef{key: pre + "positional_embedding"}, true
	case "text_model.final_layer_norm.weight", "text_model.final_layer_norm.bias":
		return ldmRef{key: pre + "ln_final." + name[strings.LastIndex(name, ".")+1:]}, true
	}
	rest, ok := strings.CutPrefix(name, "text_model.encoder.layers.")
	if !ok {
		return ldmRef{}, false
	}
	num, rest, ok := strings.Cut(rest, ".")
	if !ok {
		return ldmRef{}, false
	}
	if _, err := strconv.Atoi(num); err != nil {
		return ldmRef{}, false
	}
	block := pre + "transformer.resblocks." + num + "."
	dot := strings.LastIndex(rest, ".")
	if dot < 0 {
		return ldmRef{}, false
	}
	module, param := rest[:dot], rest[dot+1:]
	for i, proj := range []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"} {
		if module == proj {
			return ldmRef{key: block + "attn.in_proj_" + param, part: i, parts: 3}, true
		}
	}
	if inner, ok := openCLIPLayer[module]; ok {
		return ldmRef{key: block + inner + "." + param}, true
	}
	return ldmRef{}, false
}

// withPrefix prepends prefix to every key f returns.
func withPrefix(prefix string, f mapFunc) mapFunc {
	return func(name string) (ldmRef, bool) {
		r, ok := f(name)
		r.key = prefix + r.key
		return r, ok
	}
}
