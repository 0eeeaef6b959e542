package vae

import (
	"encoding/json"
	"fmt"
)

// Block types the encoder and decoder are built from (diffusers' names).
const (
	DownEncoderBlock2D = "DownEncoderBlock2D"
	UpDecoderBlock2D   = "UpDecoderBlock2D"
)

// Bounds on the counts that decide how many blocks and layers New builds:
// New builds the whole model before the weights can refuse it, so these
// counts, read from a config.json or an LDM yaml, must not be trusted
// unbounded. SD's autoencoder has 4 levels of 2 resnets.
const (
	maxLevels         = 16
	maxLayersPerBlock = 64
)

// Config mirrors diffusers' AutoencoderKL config.json.
type Config struct {
	InChannels       int      `json:"in_channels"`
	OutChannels      int      `json:"out_channels"`
	DownBlockTypes   []string `json:"down_block_types"`
	UpBlockTypes     []string `json:"up_block_types"`
	BlockOutChannels []int    `json:"block_out_channels"`
	LayersPerBlock   int      `json:"layers_per_block"`
	ActFn            string   `json:"act_fn"`
	LatentChannels   int      `json:"latent_channels"`
	NormNumGroups    int      `json:"norm_num_groups"`
	SampleSize       int      `json:"sample_size"`
	// ScalingFactor (and ShiftFactor, zero for SD1.x/2.x/XL) map encoder
	// latents to the unit-variance latents the UNet sees:
	// z_unet = (z - shift) * scale.
	ScalingFactor float64 `json:"scaling_factor"`
	ShiftFactor   float64 `json:"shift_factor"`
	// ForceUpcast says the VAE overflows in f16 and must run in f32
	// (SD1.x/2.x/XL's VAE).
	ForceUpcast          bool      `json:"force_upcast"`
	LatentsMean          []float64 `json:"latents_mean"`
	LatentsStd           []float64 `json:"latents_std"`
	UseQuantConv         bool      `json:"use_quant_conv"`
	UsePostQuantConv     bool      `json:"use_post_quant_conv"`
	MidBlockAddAttention bool      `json:"mid_block_add_attention"`
}

// Defaults returns diffusers' AutoencoderKL defaults, which apply to any
// field a config.json leaves out.
func Defaults() Config {
	return Config{
		InChannels:           3,
		OutChannels:          3,
		DownBlockTypes:       []string{DownEncoderBlock2D},
		UpBlockTypes:         []string{UpDecoderBlock2D},
		BlockOutChannels:     []int{64},
		LayersPerBlock:       1,
		ActFn:                "silu",
		LatentChannels:       4,
		NormNumGroups:        32,
		SampleSize:           32,
		ScalingFactor:        0.18215,
		ForceUpcast:          true,
		UseQuantConv:         true,
		UsePostQuantConv:     true,
		MidBlockAddAttention: true,
	}
}

// SD15 mirrors runwayml/stable-diffusion-v1-5 vae/config.json (the same
// autoencoder serves SD2.x with sample_size 768).
func SD15() Config {
	c := Defaults()
	c.BlockOutChannels = []int{128, 256, 512, 512}
	c.DownBlockTypes = repeat(DownEncoderBlock2D, 4)
	c.UpBlockTypes = repeat(UpDecoderBlock2D, 4)
	c.LayersPerBlock = 2
	c.SampleSize = 512
	return c
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// ParseConfig reads a vae/config.json; absent fields take Defaults().
func ParseConfig(configJSON []byte) (Config, error) {
	cfg := Defaults()
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return Config{}, fmt.Errorf("vae: config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks that the configuration describes an autoencoder this
// package can build.
func (c Config) Validate() error {
	pos := []struct {
		name string
		v    int
	}{
		{"in_channels", c.InChannels},
		{"out_channels", c.OutChannels},
		{"layers_per_block", c.LayersPerBlock},
		{"latent_channels", c.LatentChannels},
		{"norm_num_groups", c.NormNumGroups},
	}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("vae: config: %s is %d, must be positive", p.name, p.v)
		}
	}
	if c.LayersPerBlock > maxLayersPerBlock {
		return fmt.Errorf("vae: config: layers_per_block is %d, more than %d", c.LayersPerBlock, maxLayersPerBlock)
	}
	n := len(c.BlockOutChannels)
	if n == 0 {
		return fmt.Errorf("vae: config: block_out_channels is empty")
	}
	if n > maxLevels {
		return fmt.Errorf("vae: config: block_out_channels has %d levels, more than %d", n, maxLevels)
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%c.NormNumGroups != 0 {
			return fmt.Errorf("vae: config: block_out_channels[%d] = %d is not a positive multiple of norm_num_groups %d", i, ch, c.NormNumGroups)
		}
	}
	if err := checkTypes("down_block_types", c.DownBlockTypes, DownEncoderBlock2D, n); err != nil {
		return err
	}
	if err := checkTypes("up_block_types", c.UpBlockTypes, UpDecoderBlock2D, n); err != nil {
		return err
	}
	if c.ActFn != "silu" {
		return fmt.Errorf("vae: config: act_fn %q not supported (want silu)", c.ActFn)
	}
	if c.ScalingFactor <= 0 {
		return fmt.Errorf("vae: config: scaling_factor is %g, must be positive", c.ScalingFactor)
	}
	return nil
}

func checkTypes(field string, types []string, want string, n int) error {
	if len(types) != n {
		return fmt.Errorf("vae: config: %s has %d entries, block_out_channels %d", field, len(types), n)
	}
	for i, t := range types {
		if t != want {
			return fmt.Errorf("vae: config: %s[%d] is %q, only %s is supported", field, i, t, want)
		}
	}
	return nil
}
