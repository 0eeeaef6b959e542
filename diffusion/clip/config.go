package clip

import (
	"encoding/json"
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// Config mirrors the fields of Hugging Face transformers' CLIPTextConfig
// that the text encoder needs; JSON names are those of text_encoder/config.json.
type Config struct {
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	ProjectionDim         int     `json:"projection_dim"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	HiddenAct             string  `json:"hidden_act"`
	LayerNormEps          float64 `json:"layer_norm_eps"`
	// Token ids as the config states them. SD1.x and SD2.x configs carry the
	// legacy values bos 0, eos 2, pad 1 (not the tokenizer's 49406/49407);
	// EOSTokenID 2 makes the pooled output use the position of the largest
	// id, as transformers does for those configs.
	BOSTokenID int `json:"bos_token_id"`
	EOSTokenID int `json:"eos_token_id"`
	PadTokenID int `json:"pad_token_id"`
}

// maxHiddenLayers bounds num_hidden_layers. New builds every layer before
// the weights can refuse it, so a count read from a file (a config.json, or
// the layer keys of a checkpoint) must not be trusted unbounded; the largest
// CLIP text tower, OpenCLIP ViT-bigG/14's, has 32 layers.
const maxHiddenLayers = 256

// legacyEOS is the eos_token_id of configs written before transformers
// pooled at the first eos token; for them the pool position is argmax(ids).
const legacyEOS = 2

// Defaults returns transformers' CLIPTextConfig defaults, which apply to
// any field a config.json leaves out.
func Defaults() Config {
	return Config{
		VocabSize:             49408,
		HiddenSize:            512,
		IntermediateSize:      2048,
		ProjectionDim:         512,
		NumHiddenLayers:       12,
		NumAttentionHeads:     8,
		MaxPositionEmbeddings: 77,
		HiddenAct:             "quick_gelu",
		LayerNormEps:          1e-5,
		BOSTokenID:            49406,
		EOSTokenID:            49407,
		PadTokenID:            1,
	}
}

// SD15 mirrors runwayml/stable-diffusion-v1-5 text_encoder/config.json:
// OpenAI CLIP ViT-L/14's text tower.
func SD15() Config {
	return Config{
		VocabSize:             49408,
		HiddenSize:            768,
		IntermediateSize:      3072,
		ProjectionDim:         768,
		NumHiddenLayers:       12,
		NumAttentionHeads:     12,
		MaxPositionEmbeddings: 77,
		HiddenAct:             "quick_gelu",
		LayerNormEps:          1e-5,
		BOSTokenID:            0,
		EOSTokenID:            legacyEOS,
		PadTokenID:            1,
	}
}

// SD21 mirrors stabilityai/stable-diffusion-2-1 text_encoder/config.json:
// OpenCLIP ViT-H/14's text tower with 23 of its 24 layers, because SD2
// conditions on the penultimate layer and diffusers drops the last one.
func SD21() Config {
	return Config{
		VocabSize:             49408,
		HiddenSize:            1024,
		IntermediateSize:      4096,
		ProjectionDim:         512,
		NumHiddenLayers:       23,
		NumAttentionHeads:     16,
		MaxPositionEmbeddings: 77,
		HiddenAct:             "gelu",
		LayerNormEps:          1e-5,
		BOSTokenID:            0,
		EOSTokenID:            legacyEOS,
		PadTokenID:            1,
	}
}

// ParseConfig reads a text_encoder/config.json (a CLIPTextConfig, or a full
// CLIPConfig whose "text_config" is used); absent fields take Defaults().
func ParseConfig(configJSON []byte) (Config, error) {
	var outer struct {
		TextConfig json.RawMessage `json:"text_config"`
	}
	if err := json.Unmarshal(configJSON, &outer); err != nil {
		return Config{}, fmt.Errorf("clip: config: %w", err)
	}
	raw := configJSON
	if len(outer.TextConfig) > 0 && string(outer.TextConfig) != "null" {
		raw = outer.TextConfig
	}
	cfg := Defaults()
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return Config{}, fmt.Errorf("clip: config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks that the sizes are usable and the activation is known.
func (c Config) Validate() error {
	pos := []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize},
		{"hidden_size", c.HiddenSize},
		{"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("clip: config: %s is %d, must be positive", p.name, p.v)
		}
	}
	if c.NumHiddenLayers > maxHiddenLayers {
		return fmt.Errorf("clip: config: num_hidden_layers is %d, more than %d", c.NumHiddenLayers, maxHiddenLayers)
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("clip: config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.LayerNormEps <= 0 {
		return fmt.Errorf("clip: config: layer_norm_eps is %g, must be positive", c.LayerNormEps)
	}
	if _, err := c.Activation(); err != nil {
		return err
	}
	return nil
}

// Activation maps hidden_act to the backend activation.
func (c Config) Activation() (backend.Activation, error) {
	switch c.HiddenAct {
	case "quick_gelu":
		return backend.QuickGELU, nil
	case "gelu":
		return backend.GELU, nil
	case "gelu_new", "gelu_pytorch_tanh":
		return backend.GELUTanh, nil
	}
	return 0, fmt.Errorf("clip: config: hidden_act %q not supported (want quick_gelu, gelu, gelu_new or gelu_pytorch_tanh)", c.HiddenAct)
}
