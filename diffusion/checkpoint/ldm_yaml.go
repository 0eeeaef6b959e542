package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/latentfarm/latentfarm/diffusion/clip"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/diffusion/unet"
	"github.com/latentfarm/latentfarm/diffusion/vae"
)

// ldmGroups is the GroupNorm group count of every LDM model: openaimodel's
// normalization() is GroupNorm32 and the autoencoder's Normalize defaults
// to 32 groups; an LDM yaml has no key to change it.
const ldmGroups = 32

// ldmYAML is the part of an original LDM inference config (v1-inference.yaml,
// v2-inference-v.yaml, ...) that describes the network shapes.
type ldmYAML struct {
	Model struct {
		Target string `yaml:"target"`
		Params struct {
			LinearStart      *float64               `yaml:"linear_start"`
			LinearEnd        *float64               `yaml:"linear_end"`
			Timesteps        int                    `yaml:"timesteps"`
			Parameterization string                 `yaml:"parameterization"`
			ScaleFactor      *float64               `yaml:"scale_factor"`
			UNet             ldmPart[ldmUNetParams] `yaml:"unet_config"`
			FirstStage       ldmPart[ldmFirstStage] `yaml:"first_stage_config"`
			CondStage        ldmPart[ldmCondParams] `yaml:"cond_stage_config"`
		} `yaml:"params"`
	} `yaml:"model"`
}

// ldmPart is an LDM "target + params" section.
type ldmPart[P any] struct {
	Target string `yaml:"target"`
	Params P      `yaml:"params"`
}

type ldmUNetParams struct {
	ImageSize              int     `yaml:"image_size"`
	InChannels             int     `yaml:"in_channels"`
	OutChannels            int     `yaml:"out_channels"`
	ModelChannels          int     `yaml:"model_channels"`
	AttentionResolutions   []int   `yaml:"attention_resolutions"`
	NumResBlocks           intList `yaml:"num_res_blocks"`
	ChannelMult            []int   `yaml:"channel_mult"`
	NumHeads               *int    `yaml:"num_heads"`
	NumHeadChannels        *int    `yaml:"num_head_channels"`
	UseSpatialTransformer  bool    `yaml:"use_spatial_transformer"`
	TransformerDepth       intList `yaml:"transformer_depth"`
	ContextDim             intList `yaml:"context_dim"`
	UseLinearInTransformer bool    `yaml:"use_linear_in_transformer"`
	NumClasses             any     `yaml:"num_classes"`
	AdmInChannels          *int    `yaml:"adm_in_channels"`
}

type ldmFirstStage struct {
	EmbedDim int `yaml:"embed_dim"`
	DDConfig struct {
		DoubleZ         *bool `yaml:"double_z"`
		ZChannels       int   `yaml:"z_channels"`
		Resolution      int   `yaml:"resolution"`
		InChannels      int   `yaml:"in_channels"`
		OutCh           int   `yaml:"out_ch"`
		Ch              int   `yaml:"ch"`
		ChMult          []int `yaml:"ch_mult"`
		NumResBlocks    int   `yaml:"num_res_blocks"`
		AttnResolutions []int `yaml:"attn_resolutions"`
	} `yaml:"ddconfig"`
}

type ldmCondParams struct {
	Layer string `yaml:"layer"`
}

// intList reads an integer or a list of integers.
type intList []int

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *intList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var v int
		if err := n.Decode(&v); err != nil {
			return err
		}
		*l = intList{v}
		return nil
	}
	var v []int
	if err := n.Decode(&v); err != nil {
		return err
	}
	*l = v
	return nil
}

// yamlSpec reads an LDM yaml into the configs of the parts. The text
// encoder's sizes are left to the weights (the yaml only names its class).
func yamlSpec(path string) (*singleSpec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: config: %w", err)
	}
	var y ldmYAML
	if err := yaml.Unmarshal(raw, &y); err != nil {
		return nil, fmt.Errorf("checkpoint: config %s: not valid YAML: %w", path, err)
	}
	bad := func(err error) error { return fmt.Errorf("checkpoint: config %s: %w", path, err) }
	m := y.Model
	switch {
	case m.Target == "":
		return nil, bad(errors.New("no model.target: not an LDM inference config"))
	case strings.HasPrefix(m.Target, "sgm.") || strings.Contains(m.Target, "DiffusionEngine"):
		return nil, bad(fmt.Errorf("model.target %q is an SDXL (sgm) config: only SD1.x/SD2.x are supported", m.Target))
	case !strings.Contains(m.Target, "LatentDiffusion") && !strings.Contains(m.Target, "LatentInpaintDiffusion"):
		return nil, bad(fmt.Errorf("model.target %q is not an ldm LatentDiffusion model", m.Target))
	}
	p := m.Params
	spec := &singleSpec{source: "config " + path, textFromWeights: true}
	if spec.sched, err = yamlScheduler(p.LinearStart, p.LinearEnd, p.Timesteps, p.Parameterization); err != nil {
		return nil, bad(err)
	}
	if spec.unet, err = p.UNet.Params.config(p.UNet.Target, p.Parameterization); err != nil {
		return nil, bad(fmt.Errorf("unet_config: %w", err))
	}
	scale := 0.18215 // LatentDiffusion's default scale_factor is 1, but every SD yaml sets 0.18215
	if p.ScaleFactor != nil {
		scale = *p.ScaleFactor
	}
	if spec.vae, err = firstStageConfig(p.FirstStage, scale); err != nil {
		return nil, bad(fmt.Errorf("first_stage_config: %w", err))
	}
	if err := yamlText(spec, p.CondStage); err != nil {
		return nil, bad(fmt.Errorf("cond_stage_config: %w", err))
	}
	return spec, nil
}

func yamlScheduler(start, end *float64, steps int, param string) (scheduler.Config, error) {
	s := scheduler.SD15() // diffusers builds a DDIM-style config with steps_offset 1 from the yaml too
	if start != nil {
		s.BetaStart = *start
	}
	if end != nil {
		s.BetaEnd = *end
	}
	if steps > 0 {
		s.NumTrainTimesteps = steps
	}
	// LDM's "linear" schedule is linspace(sqrt(start), sqrt(end))^2, which
	// is diffusers' scaled_linear.
	s.BetaSchedule = scheduler.BetaScaledLinear
	switch param {
	case "", "eps":
		s.PredictionType = scheduler.PredictEpsilon
	case "v":
		s.PredictionType = scheduler.PredictV
	default:
		return s, fmt.Errorf("parameterization %q is not supported (want eps or v)", param)
	}
	// A sampler checks its config only when a render builds it: check here,
	// so a bad yaml fails the load, as a bad scheduler_config.json does.
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("linear_start, linear_end, timesteps: %w", err)
	}
	return s, nil
}

// config turns LDM UNetModel params into a valid diffusers UNet config.
func (p ldmUNetParams) config(target, param string) (unet.Config, error) {
	c, err := p.build(target, param)
	if err != nil {
		return unet.Config{}, err
	}
	if err := c.Validate(); err != nil {
		return unet.Config{}, groupsHint(err, c.BlockOutChannels, "model_channels x channel_mult")
	}
	return c, nil
}

// build maps the params as diffusers' create_unet_diffusers_config does,
// without validating the result.
func (p ldmUNetParams) build(target, param string) (unet.Config, error) {
	switch {
	case !strings.HasSuffix(target, "UNetModel"):
		return unet.Config{}, fmt.Errorf("target %q is not an openaimodel UNetModel", target)
	case p.NumClasses != nil || p.AdmInChannels != nil:
		return unet.Config{}, errors.New("class-conditioned UNets (num_classes / adm_in_channels: unCLIP, SDXL) are not supported")
	case !p.UseSpatialTransformer:
		return unet.Config{}, errors.New("use_spatial_transformer is false: a UNet without text cross-attention is not Stable Diffusion")
	case len(p.ChannelMult) == 0 || p.ModelChannels <= 0:
		return unet.Config{}, errors.New("model_channels and channel_mult are required")
	case len(p.ContextDim) != 1:
		return unet.Config{}, fmt.Errorf("context_dim %v: want one width", []int(p.ContextDim))
	}
	c := unet.Defaults()
	n := len(p.ChannelMult)
	c.SampleSize, c.InChannels, c.OutChannels = p.ImageSize, p.InChannels, p.OutChannels
	c.BlockOutChannels = make([]int, n)
	c.DownBlockTypes = make([]string, n)
	c.UpBlockTypes = make([]string, n)
	for i, mult := range p.ChannelMult {
		c.BlockOutChannels[i] = p.ModelChannels * mult
		// attention_resolutions lists the downsampling rates (1, 2, 4, ...)
		// at which blocks carry a SpatialTransformer.
		attn := slices.Contains(p.AttentionResolutions, 1<<i)
		c.DownBlockTypes[i], c.UpBlockTypes[n-1-i] = unet.DownBlock, unet.UpBlock
		if attn {
			c.DownBlockTypes[i], c.UpBlockTypes[n-1-i] = unet.CrossAttnDownBlock, unet.CrossAttnUpBlock
		}
	}
	c.LayersPerBlock = unet.PerBlock(p.NumResBlocks)
	if len(p.TransformerDepth) > 0 {
		c.TransformerLayersPerBlock = unet.PerBlock(p.TransformerDepth)
	}
	c.CrossAttentionDim = p.ContextDim[0]
	c.UseLinearProjection = p.UseLinearInTransformer
	// The 768 v-prediction SD2 models need f32 attention scores in f16.
	c.UpcastAttention = param == "v"
	c.NormNumGroups = ldmGroups
	switch {
	case p.NumHeadChannels != nil && *p.NumHeadChannels > 0:
		heads := make(unet.PerBlock, n)
		for i, ch := range c.BlockOutChannels {
			if ch%*p.NumHeadChannels != 0 {
				return unet.Config{}, fmt.Errorf("num_head_channels %d does not divide level %d's %d channels", *p.NumHeadChannels, i, ch)
			}
			heads[i] = ch / *p.NumHeadChannels
		}
		c.AttentionHeadDim = heads
	case p.NumHeads != nil && *p.NumHeads > 0:
		c.AttentionHeadDim = unet.PerBlock{*p.NumHeads}
	default:
		return unet.Config{}, errors.New("neither num_heads nor num_head_channels is set")
	}
	return c, nil
}

// firstStageConfig turns LDM AutoencoderKL params into a valid diffusers
// VAE config.
func firstStageConfig(part ldmPart[ldmFirstStage], scale float64) (vae.Config, error) {
	c, err := buildFirstStage(part, scale)
	if err != nil {
		return vae.Config{}, err
	}
	if err := c.Validate(); err != nil {
		return vae.Config{}, groupsHint(err, c.BlockOutChannels, "ch x ch_mult")
	}
	return c, nil
}

// buildFirstStage maps the params as diffusers'
// create_vae_diffusers_config does, without validating the result.
func buildFirstStage(part ldmPart[ldmFirstStage], scale float64) (vae.Config, error) {
	d := part.Params.DDConfig
	switch {
	case !strings.HasSuffix(part.Target, "AutoencoderKL"):
		return vae.Config{}, fmt.Errorf("target %q is not an AutoencoderKL", part.Target)
	case len(d.AttnResolutions) > 0:
		return vae.Config{}, fmt.Errorf("attn_resolutions %v: attention outside the mid block is not supported", d.AttnResolutions)
	case d.DoubleZ != nil && !*d.DoubleZ:
		return vae.Config{}, errors.New("double_z false: the encoder must output mean and log-variance")
	case part.Params.EmbedDim != d.ZChannels:
		return vae.Config{}, fmt.Errorf("embed_dim %d differs from z_channels %d", part.Params.EmbedDim, d.ZChannels)
	case d.Ch <= 0 || len(d.ChMult) == 0:
		return vae.Config{}, errors.New("ddconfig ch and ch_mult are required")
	}
	c := vae.Defaults()
	n := len(d.ChMult)
	c.InChannels, c.OutChannels = d.InChannels, d.OutCh
	c.BlockOutChannels = make([]int, n)
	c.DownBlockTypes = make([]string, n)
	c.UpBlockTypes = make([]string, n)
	for i, mult := range d.ChMult {
		c.BlockOutChannels[i] = d.Ch * mult
		c.DownBlockTypes[i], c.UpBlockTypes[i] = vae.DownEncoderBlock2D, vae.UpDecoderBlock2D
	}
	c.LayersPerBlock = d.NumResBlocks
	c.LatentChannels = d.ZChannels
	c.SampleSize = d.Resolution
	c.ScalingFactor = scale
	c.NormNumGroups = ldmGroups
	return c, nil
}

// groupsHint explains a config that fails because LDM's fixed 32 groups do
// not divide the channel counts (the tiny test models use 8 groups).
func groupsHint(err error, channels []int, what string) error {
	for _, ch := range channels {
		if ch%ldmGroups != 0 {
			return fmt.Errorf("LDM models always use %d GroupNorm groups and the yaml cannot say otherwise, "+
				"but %s gives %v channels, not all multiples of %d; pass a diffusers model folder whose "+
				"config.json files describe the weights as --config instead: %w", ldmGroups, what, channels, ldmGroups, err)
		}
	}
	return err
}

// yamlText picks the text encoder class the yaml names; its sizes come
// from the weights later.
func yamlText(spec *singleSpec, cond ldmPart[ldmCondParams]) error {
	layer := cond.Params.Layer
	switch {
	case strings.HasSuffix(cond.Target, "FrozenOpenCLIPEmbedder"):
		spec.text, spec.wantLayout = clip.SD21(), layoutOpenCLIP
		if layer == "" {
			layer = "last" // FrozenOpenCLIPEmbedder's default; SD2 yamls say penultimate
		}
		if layer != "last" && layer != "penultimate" {
			return fmt.Errorf("layer %q: want last or penultimate", layer)
		}
		spec.penultimate = layer == "penultimate"
	case strings.HasSuffix(cond.Target, "FrozenCLIPEmbedder"):
		spec.text, spec.wantLayout = clip.SD15(), layoutCLIP
		if layer != "" && layer != "last" {
			return fmt.Errorf("layer %q: only last is supported for FrozenCLIPEmbedder (use the clip skip setting instead)", layer)
		}
	default:
		return fmt.Errorf("target %q: want ldm.modules.encoders.modules.FrozenCLIPEmbedder or FrozenOpenCLIPEmbedder", cond.Target)
	}
	return nil
}
