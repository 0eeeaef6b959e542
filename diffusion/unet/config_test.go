package unet

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// sd15JSON and sd21JSON are the unet/config.json files of
// runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-2-1.
const sd15JSON = `{
  "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0", "act_fn": "silu",
  "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false,
  "cross_attention_dim": 768,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
  "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
}`

const sd21JSON = `{
  "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.10.0.dev0", "act_fn": "silu",
  "attention_head_dim": [5, 10, 20, 20], "block_out_channels": [320, 640, 1280, 1280],
  "center_input_sample": false, "cross_attention_dim": 1024,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1, "dual_cross_attention": false, "flip_sin_to_cos": true, "freq_shift": 0,
  "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05,
  "norm_num_groups": 32, "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4,
  "sample_size": 96,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  "upcast_attention": true, "use_linear_projection": true
}`

func TestParseConfig_Presets(t *testing.T) {
	for _, tc := range []struct {
		name string
		json string
		want Config
	}{
		{"SD15", sd15JSON, SD15()},
		{"SD21", sd21JSON, SD21()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseConfig = %+v\nwant preset %+v", got, tc.want)
			}
		})
	}
}

func TestConfig_Heads(t *testing.T) {
	sd15, sd21 := SD15(), SD21()
	for i, ch := range sd21.BlockOutChannels {
		if sd15.Heads(i) != 8 {
			t.Errorf("SD15 level %d: %d heads, want 8", i, sd15.Heads(i))
		}
		if w := ch / sd21.Heads(i); w != 64 {
			t.Errorf("SD21 level %d: head width %d, want 64", i, w)
		}
	}
	c := SD15()
	c.NumAttentionHeads = PerBlock{4}
	if c.Heads(2) != 4 {
		t.Errorf("num_attention_heads does not win over attention_head_dim: %d heads", c.Heads(2))
	}
}

func TestParseConfig_Fixtures(t *testing.T) {
	raw, err := os.ReadFile(testfixtures.Path(t, "model-v/unet/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int(cfg.AttentionHeadDim); !reflect.DeepEqual(got, []int{2, 4}) || cfg.NumAttentionHeads != nil {
		t.Errorf("heads: attention_head_dim %v, num_attention_heads %v", got, cfg.NumAttentionHeads)
	}
	if cfg.SampleSize != 8 || cfg.NormNumGroups != 8 || cfg.CrossAttentionDim != 32 || cfg.LayersPerBlock.At(1) != 1 {
		t.Errorf("parsed %+v", cfg)
	}
}

func TestParseConfig_RoundTrip(t *testing.T) {
	b, err := json.Marshal(SD21())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, SD21()) {
		t.Errorf("round trip through %s gave %+v", b, got)
	}
}

// withKey returns sd15JSON with key set to the JSON value val.
func withKey(t *testing.T, key, val string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(sd15JSON), &m); err != nil {
		t.Fatal(err)
	}
	m[key] = json.RawMessage(val)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseConfig_Refused(t *testing.T) {
	cases := []struct {
		key, val    string
		unsupported bool
	}{
		{"only_cross_attention", `true`, true},
		{"only_cross_attention", `[false, true, false, false]`, true},
		{"dual_cross_attention", `true`, true},
		{"addition_embed_type", `"text_time"`, true},
		{"class_embed_type", `"timestep"`, true},
		{"act_fn", `"gelu"`, true},
		{"mid_block_type", `null`, true},
		{"time_embedding_type", `"fourier"`, true},
		{"resnet_time_scale_shift", `"scale_shift"`, true},
		{"_class_name", `"UNet2DModel"`, true},
		{"cross_attention_dim", `[768, 768, 768, 768]`, true},
		{"transformer_layers_per_block", `[[1, 1], [2, 2], [10, 10], [10, 10]]`, false},
		{"down_block_types", `["SimpleCrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]`, true},
		{"attention_head_dim", `[5, 10]`, false},
		{"norm_num_groups", `48`, false},
		{"layers_per_block", `"two"`, false},
	}
	for _, tc := range cases {
		t.Run(tc.key+"="+tc.val, func(t *testing.T) {
			_, err := ParseConfig(withKey(t, tc.key, tc.val))
			if err == nil {
				t.Fatalf("ParseConfig accepted %s: %s", tc.key, tc.val)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not name the key %q", err, tc.key)
			}
			if tc.unsupported != errors.Is(err, ErrUnsupported) {
				t.Errorf("errors.Is(%q, ErrUnsupported) = %v, want %v", err, !tc.unsupported, tc.unsupported)
			}
		})
	}
}

func TestParseConfig_Accepted(t *testing.T) {
	// Keys at their defaults, explicit nulls and unknown keys are fine.
	for _, kv := range [][2]string{
		{"only_cross_attention", `[false, false, false, false]`},
		{"mid_block_only_cross_attention", `false`},
		{"num_attention_heads", `null`},
		{"addition_embed_type", `null`},
		{"some_future_key", `3`},
		{"transformer_layers_per_block", `[1, 1, 1, 1]`},
	} {
		if _, err := ParseConfig(withKey(t, kv[0], kv[1])); err != nil {
			t.Errorf("ParseConfig with %s: %s: %v", kv[0], kv[1], err)
		}
	}
}

func TestNew_InvalidConfig(t *testing.T) {
	c := SD15()
	c.UpBlockTypes = c.UpBlockTypes[:3]
	if _, err := New(c, nil); err == nil || !strings.Contains(err.Error(), "up_block_types") {
		t.Errorf("New with 3 up blocks for 4 levels: err = %v", err)
	}
}
