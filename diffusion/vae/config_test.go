package vae

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	fixture := Defaults()
	fixture.BlockOutChannels = []int{16, 32}
	fixture.DownBlockTypes = repeat(DownEncoderBlock2D, 2)
	fixture.UpBlockTypes = repeat(UpDecoderBlock2D, 2)
	fixture.NormNumGroups = 8
	fixture.SampleSize = 16
	tests := []struct {
		name string
		json string
		want Config
	}{
		{
			"SD15",
			`{"_class_name": "AutoencoderKL", "_diffusers_version": "0.6.0", "act_fn": "silu",
			  "block_out_channels": [128, 256, 512, 512],
			  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
			  "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
			  "out_channels": 3, "sample_size": 512,
			  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]}`,
			SD15(),
		},
		{
			"Fixture",
			`{"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [16, 32],
			  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "force_upcast": true,
			  "in_channels": 3, "latent_channels": 4, "latents_mean": null, "latents_std": null,
			  "layers_per_block": 1, "norm_num_groups": 8, "out_channels": 3, "sample_size": 16,
			  "scaling_factor": 0.18215, "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]}`,
			fixture,
		},
		{
			"ShiftAndNoQuant",
			`{"shift_factor": 0.1159, "scaling_factor": 0.3611, "use_quant_conv": false,
			  "use_post_quant_conv": false, "latent_channels": 16, "force_upcast": false}`,
			func() Config {
				c := Defaults()
				c.ShiftFactor, c.ScalingFactor = 0.1159, 0.3611
				c.UseQuantConv, c.UsePostQuantConv, c.ForceUpcast = false, false, false
				c.LatentChannels = 16
				return c
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseConfig_Errors(t *testing.T) {
	tests := []struct{ name, json, msg string }{
		{"NotJSON", `[`, "vae: config"},
		{"WrongType", `{"block_out_channels": "128"}`, "vae: config"},
		{"NoBlocks", `{"block_out_channels": [], "down_block_types": [], "up_block_types": []}`, "block_out_channels is empty"},
		{"GroupsDoNotDivide", `{"block_out_channels": [48]}`, "not a positive multiple of norm_num_groups 32"},
		{"TypeCount", `{"block_out_channels": [64, 64]}`, "down_block_types has 1 entries"},
		{"UnknownBlock", `{"down_block_types": ["AttnDownEncoderBlock2D"]}`, `"AttnDownEncoderBlock2D", only DownEncoderBlock2D`},
		{"Act", `{"act_fn": "relu"}`, `act_fn "relu"`},
		{"ZeroLatents", `{"latent_channels": 0}`, "latent_channels is 0"},
		{"Scale", `{"scaling_factor": 0}`, "scaling_factor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want one containing %q", err, tc.msg)
			}
		})
	}
	if err := SD15().Validate(); err != nil {
		t.Errorf("SD15: %v", err)
	}
}
