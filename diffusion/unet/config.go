// Package unet is the Stable Diffusion denoising UNet (diffusers'
// UNet2DConditionModel for SD1.x and SD2.x): its config, the weights it loads
// under their diffusers names, and its forward pass written against
// backend.Backend. It must never read files, map checkpoint key layouts or
// know about pipelines and schedulers: a caller hands it a config and
// weights, and gets a noise (or v) prediction back.
package unet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
)

// Block types understood in down_block_types and up_block_types.
const (
	CrossAttnDownBlock = "CrossAttnDownBlock2D"
	DownBlock          = "DownBlock2D"
	CrossAttnUpBlock   = "CrossAttnUpBlock2D"
	UpBlock            = "UpBlock2D"
)

// Bounds on the counts that decide how many blocks and layers New builds.
// New builds the whole model before the weights can refuse it, so these
// counts, read from a config.json or an LDM yaml, must not be trusted
// unbounded. SD1.x/2.x have 4 levels of 2 resnets and 1 transformer layer;
// SDXL's deepest level has 10 transformer layers.
const (
	maxLevels         = 16
	maxLayersPerBlock = 64
)

// ErrUnsupported marks a config that asks for an architecture this package
// does not implement.
var ErrUnsupported = errors.New("unsupported unet config")

// PerBlock is a per-down-block setting that diffusers configs write either as
// one number for all blocks or as a list with one entry per block.
type PerBlock []int

// At returns the value for down-block level i (a single value applies to all).
func (p PerBlock) At(i int) int {
	if len(p) == 1 {
		return p[0]
	}
	return p[i]
}

// UnmarshalJSON accepts a number, a list of numbers or null (nil).
func (p *PerBlock) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*p = nil
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*p = PerBlock{n}
		return nil
	}
	var l []int
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("want an integer or a list of integers, got %s", clip(b))
	}
	*p = l
	return nil
}

// MarshalJSON writes a single value as a number, as diffusers does.
func (p PerBlock) MarshalJSON() ([]byte, error) {
	if len(p) == 1 {
		return []byte(strconv.Itoa(p[0])), nil
	}
	return json.Marshal([]int(p))
}

// Config mirrors the keys of a diffusers UNet2DConditionModel config.json
// that SD1.x and SD2.x UNets use. Keys for other architectures (SDXL's
// added embeddings, class embeddings, ...) are refused by ParseConfig.
type Config struct {
	SampleSize        int      `json:"sample_size"`
	InChannels        int      `json:"in_channels"`
	OutChannels       int      `json:"out_channels"`
	DownBlockTypes    []string `json:"down_block_types"`
	UpBlockTypes      []string `json:"up_block_types"`
	BlockOutChannels  []int    `json:"block_out_channels"`
	LayersPerBlock    PerBlock `json:"layers_per_block"`
	CrossAttentionDim int      `json:"cross_attention_dim"`
	// AttentionHeadDim is, by a diffusers naming quirk, the NUMBER of heads
	// per block (SD1.x: 8; SD2.x: [5, 10, 20, 20], i.e. 64-wide heads).
	AttentionHeadDim PerBlock `json:"attention_head_dim"`
	// NumAttentionHeads, when set, is the number of heads and wins over
	// AttentionHeadDim.
	NumAttentionHeads         PerBlock `json:"num_attention_heads"`
	TransformerLayersPerBlock PerBlock `json:"transformer_layers_per_block"`
	UseLinearProjection       bool     `json:"use_linear_projection"` // proj_in/proj_out are Linear, not 1x1 conv
	UpcastAttention           bool     `json:"upcast_attention"`      // f32 attention scores (SD2.1-768)
	NormNumGroups             int      `json:"norm_num_groups"`
	NormEps                   float64  `json:"norm_eps"`
	FlipSinToCos              bool     `json:"flip_sin_to_cos"`
	FreqShift                 float64  `json:"freq_shift"`
	DownsamplePadding         int      `json:"downsample_padding"`
	MidBlockScaleFactor       float64  `json:"mid_block_scale_factor"`
	ResnetOutScaleFactor      float64  `json:"resnet_out_scale_factor"`
	ConvInKernel              int      `json:"conv_in_kernel"`
	ConvOutKernel             int      `json:"conv_out_kernel"`
	// TimeEmbeddingDim is the width of the time embedding; 0 means
	// 4 * BlockOutChannels[0].
	TimeEmbeddingDim int `json:"time_embedding_dim,omitempty"`
}

// Defaults returns the defaults of diffusers' UNet2DConditionModel.__init__
// (v0.27.2), which apply to every key a config.json leaves out.
func Defaults() Config {
	return Config{
		InChannels:                4,
		OutChannels:               4,
		DownBlockTypes:            []string{CrossAttnDownBlock, CrossAttnDownBlock, CrossAttnDownBlock, DownBlock},
		UpBlockTypes:              []string{UpBlock, CrossAttnUpBlock, CrossAttnUpBlock, CrossAttnUpBlock},
		BlockOutChannels:          []int{320, 640, 1280, 1280},
		LayersPerBlock:            PerBlock{2},
		CrossAttentionDim:         1280,
		AttentionHeadDim:          PerBlock{8},
		TransformerLayersPerBlock: PerBlock{1},
		NormNumGroups:             32,
		NormEps:                   1e-5,
		FlipSinToCos:              true,
		DownsamplePadding:         1,
		MidBlockScaleFactor:       1,
		ResnetOutScaleFactor:      1,
		ConvInKernel:              3,
		ConvOutKernel:             3,
	}
}

// SD15 mirrors runwayml/stable-diffusion-v1-5 unet/config.json.
func SD15() Config {
	c := Defaults()
	c.SampleSize = 64
	c.CrossAttentionDim = 768
	return c
}

// SD21 mirrors stabilityai/stable-diffusion-2-1 (768, v-prediction)
// unet/config.json: 64-wide heads, OpenCLIP-H context, linear projections,
// attention upcast.
func SD21() Config {
	c := Defaults()
	c.SampleSize = 96
	c.CrossAttentionDim = 1024
	c.AttentionHeadDim = PerBlock{5, 10, 20, 20}
	c.UseLinearProjection = true
	c.UpcastAttention = true
	return c
}

// ParseConfig reads a diffusers unet/config.json. Keys it leaves out take
// diffusers' defaults; unknown keys are ignored as diffusers ignores them;
// keys that would change the architecture into one this package does not
// implement are refused with an error naming the key.
func ParseConfig(data []byte) (Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("unet: config: %w", err)
	}
	if err := checkUnsupported(raw); err != nil {
		return Config{}, err
	}
	if v, ok := raw["cross_attention_dim"]; ok {
		var l []int
		if json.Unmarshal(v, &l) == nil {
			return Config{}, fmt.Errorf("unet: config key %q: per-block cross-attention widths %v: %w", "cross_attention_dim", l, ErrUnsupported)
		}
	}
	cfg := Defaults()
	for key, dst := range cfg.fields() {
		v, ok := raw[key]
		if !ok || string(bytes.TrimSpace(v)) == "null" {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return Config{}, fmt.Errorf("unet: config key %q: %w", key, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// fields maps config.json keys to the fields ParseConfig decodes them into.
func (c *Config) fields() map[string]any {
	return map[string]any{
		"sample_size":                  &c.SampleSize,
		"in_channels":                  &c.InChannels,
		"out_channels":                 &c.OutChannels,
		"down_block_types":             &c.DownBlockTypes,
		"up_block_types":               &c.UpBlockTypes,
		"block_out_channels":           &c.BlockOutChannels,
		"layers_per_block":             &c.LayersPerBlock,
		"cross_attention_dim":          &c.CrossAttentionDim,
		"attention_head_dim":           &c.AttentionHeadDim,
		"num_attention_heads":          &c.NumAttentionHeads,
		"transformer_layers_per_block": &c.TransformerLayersPerBlock,
		"use_linear_projection":        &c.UseLinearProjection,
		"upcast_attention":             &c.UpcastAttention,
		"norm_num_groups":              &c.NormNumGroups,
		"norm_eps":                     &c.NormEps,
		"flip_sin_to_cos":              &c.FlipSinToCos,
		"freq_shift":                   &c.FreqShift,
		"downsample_padding":           &c.DownsamplePadding,
		"mid_block_scale_factor":       &c.MidBlockScaleFactor,
		"resnet_out_scale_factor":      &c.ResnetOutScaleFactor,
		"conv_in_kernel":               &c.ConvInKernel,
		"conv_out_kernel":              &c.ConvOutKernel,
		"time_embedding_dim":           &c.TimeEmbeddingDim,
	}
}

// required lists the values (as JSON) this package supports for keys that
// select other architectures; an absent key takes diffusers' default, which
// is always supported.
var required = []struct {
	key string
	ok  []string
	why string
}{
	{"_class_name", []string{`"UNet2DConditionModel"`}, "only UNet2DConditionModel is implemented"},
	{"act_fn", []string{`"silu"`}, "only the SiLU activation is implemented"},
	{"mid_block_type", []string{`"UNetMidBlock2DCrossAttn"`}, "only the cross-attention mid block is implemented"},
	{"time_embedding_type", []string{`"positional"`}, "only sinusoidal time embeddings are implemented"},
	{"resnet_time_scale_shift", []string{`"default"`}, "only additive time conditioning is implemented"},
	{"attention_type", []string{`"default"`}, "only default attention is implemented"},
	{"center_input_sample", []string{`false`}, "input centering is not implemented"},
	{"dual_cross_attention", []string{`false`}, "dual cross-attention is not implemented"},
	{"resnet_skip_time_act", []string{`false`}, "skipping the time activation is not implemented"},
	{"class_embeddings_concat", []string{`false`}, "class embeddings are not implemented"},
	{"mid_block_only_cross_attention", []string{`null`, `false`}, "cross-attention-only blocks are not implemented"},
	{"class_embed_type", []string{`null`}, "class embeddings are not implemented"},
	{"num_class_embeds", []string{`null`}, "class embeddings are not implemented"},
	{"addition_embed_type", []string{`null`}, "added (SDXL-style) embeddings are not implemented"},
	{"addition_time_embed_dim", []string{`null`}, "added (SDXL-style) embeddings are not implemented"},
	{"projection_class_embeddings_input_dim", []string{`null`}, "class embeddings are not implemented"},
	{"encoder_hid_dim", []string{`null`}, "encoder hidden-state projection is not implemented"},
	{"encoder_hid_dim_type", []string{`null`}, "encoder hidden-state projection is not implemented"},
	{"time_cond_proj_dim", []string{`null`}, "timestep conditioning projection is not implemented"},
	{"timestep_post_act", []string{`null`}, "a post-activation on the time embedding is not implemented"},
	{"time_embedding_act_fn", []string{`null`}, "a time embedding activation is not implemented"},
	{"cross_attention_norm", []string{`null`}, "cross-attention normalisation is not implemented"},
	{"reverse_transformer_layers_per_block", []string{`null`}, "separate up-block transformer depths are not implemented"},
}

func checkUnsupported(raw map[string]json.RawMessage) error {
	for _, r := range required {
		v, ok := raw[r.key]
		if !ok {
			continue
		}
		var got any
		if err := json.Unmarshal(v, &got); err != nil {
			return fmt.Errorf("unet: config key %q: %w", r.key, err)
		}
		if !slices.ContainsFunc(r.ok, func(s string) bool {
			var want any
			return json.Unmarshal([]byte(s), &want) == nil && reflect.DeepEqual(got, want)
		}) {
			return fmt.Errorf("unet: config key %q is %s: %s: %w", r.key, clip(v), r.why, ErrUnsupported)
		}
	}
	if v, ok := raw["only_cross_attention"]; ok {
		if err := checkAllFalse(v); err != nil {
			return fmt.Errorf("unet: config key %q is %s: %v: %w", "only_cross_attention", clip(v), err, ErrUnsupported)
		}
	}
	return nil
}

// checkAllFalse accepts false, null or a list of false (diffusers allows a
// per-block list for only_cross_attention).
func checkAllFalse(v json.RawMessage) error {
	var b *bool
	if json.Unmarshal(v, &b) == nil {
		if b != nil && *b {
			return errors.New("cross-attention-only blocks are not implemented")
		}
		return nil
	}
	var l []bool
	if err := json.Unmarshal(v, &l); err != nil {
		return errors.New("want a boolean or a list of booleans")
	}
	for _, x := range l {
		if x {
			return errors.New("cross-attention-only blocks are not implemented")
		}
	}
	return nil
}

func clip(b []byte) string {
	const max = 80
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// Levels is the number of resolution levels (down blocks).
func (c Config) Levels() int { return len(c.BlockOutChannels) }

// Heads returns the number of attention heads at down-block level i (the mid
// block uses the last level): num_attention_heads if set, else diffusers'
// misnamed attention_head_dim.
func (c Config) Heads(i int) int {
	if len(c.NumAttentionHeads) > 0 {
		return c.NumAttentionHeads.At(i)
	}
	return c.AttentionHeadDim.At(i)
}

// TimeEmbedDim is the width of the time embedding fed to every resnet.
func (c Config) TimeEmbedDim() int {
	if c.TimeEmbeddingDim > 0 {
		return c.TimeEmbeddingDim
	}
	return 4 * c.BlockOutChannels[0]
}

// Validate checks that the config describes a UNet this package can build.
func (c Config) Validate() error {
	n := c.Levels()
	if n == 0 {
		return fmt.Errorf("unet: config key %q is empty", "block_out_channels")
	}
	if n > maxLevels {
		return fmt.Errorf("unet: config key %q has %d levels, more than %d", "block_out_channels", n, maxLevels)
	}
	if len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n {
		return fmt.Errorf("unet: config has %d block_out_channels, %d down_block_types and %d up_block_types; they must match",
			n, len(c.DownBlockTypes), len(c.UpBlockTypes))
	}
	for i := range n {
		if t := c.DownBlockTypes[i]; t != CrossAttnDownBlock && t != DownBlock {
			return fmt.Errorf("unet: config key %q: block type %q: %w", "down_block_types", t, ErrUnsupported)
		}
		if t := c.UpBlockTypes[i]; t != CrossAttnUpBlock && t != UpBlock {
			return fmt.Errorf("unet: config key %q: block type %q: %w", "up_block_types", t, ErrUnsupported)
		}
	}
	if err := c.validateNumbers(); err != nil {
		return err
	}
	for _, p := range []struct {
		key string
		v   PerBlock
		opt bool
	}{
		{"layers_per_block", c.LayersPerBlock, false},
		{"attention_head_dim", c.AttentionHeadDim, len(c.NumAttentionHeads) > 0},
		{"num_attention_heads", c.NumAttentionHeads, true},
		{"transformer_layers_per_block", c.TransformerLayersPerBlock, false},
	} {
		if p.opt && len(p.v) == 0 {
			continue
		}
		if len(p.v) != 1 && len(p.v) != n {
			return fmt.Errorf("unet: config key %q has %d entries for %d blocks", p.key, len(p.v), n)
		}
		for _, x := range p.v {
			if x <= 0 {
				return fmt.Errorf("unet: config key %q: %v must be positive", p.key, []int(p.v))
			}
			if p.key != "attention_head_dim" && p.key != "num_attention_heads" && x > maxLayersPerBlock {
				return fmt.Errorf("unet: config key %q: %v is more than %d layers", p.key, []int(p.v), maxLayersPerBlock)
			}
		}
	}
	for i := range n {
		if h, ch := c.Heads(i), c.BlockOutChannels[i]; h > ch {
			return fmt.Errorf("unet: config: level %d has %d heads for %d channels", i, h, ch)
		}
	}
	return nil
}

func (c Config) validateNumbers() error {
	checks := []struct {
		key string
		val any
		ok  bool
	}{
		{"in_channels", c.InChannels, c.InChannels > 0},
		{"out_channels", c.OutChannels, c.OutChannels > 0},
		{"cross_attention_dim", c.CrossAttentionDim, c.CrossAttentionDim > 0},
		{"norm_num_groups", c.NormNumGroups, c.NormNumGroups > 0},
		{"norm_eps", c.NormEps, c.NormEps > 0},
		{"downsample_padding", c.DownsamplePadding, c.DownsamplePadding >= 0},
		{"mid_block_scale_factor", c.MidBlockScaleFactor, c.MidBlockScaleFactor != 0},
		{"resnet_out_scale_factor", c.ResnetOutScaleFactor, c.ResnetOutScaleFactor != 0},
		{"conv_in_kernel", c.ConvInKernel, c.ConvInKernel > 0 && c.ConvInKernel%2 == 1},
		{"conv_out_kernel", c.ConvOutKernel, c.ConvOutKernel > 0 && c.ConvOutKernel%2 == 1},
		{"time_embedding_dim", c.TimeEmbeddingDim, c.TimeEmbeddingDim >= 0},
	}
	for _, ch := range checks {
		if !ch.ok {
			return fmt.Errorf("unet: config key %q has the invalid value %v", ch.key, ch.val)
		}
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%c.NormNumGroups != 0 {
			return fmt.Errorf("unet: config: block_out_channels[%d] = %d does not split into norm_num_groups %d", i, ch, c.NormNumGroups)
		}
	}
	return nil
}
