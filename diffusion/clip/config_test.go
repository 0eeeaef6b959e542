package clip

import (
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name string
		json string
		want Config
	}{
		{
			"SD15",
			`{"architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
			  "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0,
			  "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
			  "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 12,
			  "num_hidden_layers": 12, "pad_token_id": 1, "projection_dim": 768, "torch_dtype": "float32",
			  "vocab_size": 49408}`,
			SD15(),
		},
		{
			"SD21",
			`{"bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu", "hidden_size": 1024,
			  "intermediate_size": 4096, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
			  "num_attention_heads": 16, "num_hidden_layers": 23, "pad_token_id": 1, "projection_dim": 512,
			  "vocab_size": 49408}`,
			SD21(),
		},
		{"EmptyTakesDefaults", `{}`, Defaults()},
		{
			"NestedTextConfig",
			`{"model_type": "clip", "projection_dim": 768, "text_config": {"hidden_size": 768,
			  "intermediate_size": 3072, "num_attention_heads": 12, "projection_dim": 768,
			  "bos_token_id": 0, "eos_token_id": 2}, "vision_config": {"hidden_size": 1024}}`,
			SD15(),
		},
		{
			"NullIDsKeepDefaults",
			`{"pad_token_id": null, "hidden_act": "gelu"}`,
			func() Config { c := Defaults(); c.HiddenAct = "gelu"; return c }(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseConfig_Errors(t *testing.T) {
	tests := []struct{ name, json, msg string }{
		{"NotJSON", `{"hidden_size": }`, "clip: config"},
		{"WrongType", `{"hidden_size": "768"}`, "clip: config"},
		{"ZeroLayers", `{"num_hidden_layers": 0}`, "num_hidden_layers is 0"},
		{"HeadsDoNotDivide", `{"hidden_size": 30, "num_attention_heads": 4}`, "not a multiple"},
		{"UnknownAct", `{"hidden_act": "relu"}`, `hidden_act "relu" not supported`},
		{"BadEps", `{"layer_norm_eps": 0}`, "layer_norm_eps"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want one containing %q", err, tc.msg)
			}
		})
	}
}

func TestConfig_Activation(t *testing.T) {
	for act, want := range map[string]backend.Activation{
		"quick_gelu": backend.QuickGELU, "gelu": backend.GELU,
		"gelu_new": backend.GELUTanh, "gelu_pytorch_tanh": backend.GELUTanh,
	} {
		got, err := Config{HiddenAct: act}.Activation()
		if err != nil || got != want {
			t.Errorf("Activation(%q) = %v, %v; want %v", act, got, err, want)
		}
	}
	if SD15().HiddenAct != "quick_gelu" || SD21().HiddenAct != "gelu" {
		t.Errorf("presets: SD15 %q, SD21 %q", SD15().HiddenAct, SD21().HiddenAct)
	}
	for _, c := range []Config{SD15(), SD21(), Defaults()} {
		if err := c.Validate(); err != nil {
			t.Errorf("preset %+v: %v", c, err)
		}
	}
}
