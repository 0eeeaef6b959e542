package vae

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// FuzzParseConfig feeds vae/config.json bytes (a model folder is untrusted:
// it comes from the model store) to ParseConfig. An accepted config is
// valid, survives a JSON round trip unchanged, and builds against empty
// weights into ErrMissingWeight in bounded work: no count in the file can
// make New loop or allocate without limit.
func FuzzParseConfig(f *testing.F) {
	for _, c := range []Config{Defaults(), SD15()} {
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	f.Add([]byte(`{"_class_name": "AutoencoderKL", "block_out_channels": [16, 32], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
 "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "norm_num_groups": 8, "latents_mean": null, "scaling_factor": 0.18215}`))
	f.Add([]byte(`{"latents_mean": [0.1, -0.2], "latents_std": [1, 2], "shift_factor": 0.0609, "act_fn": "gelu"}`))
	f.Add([]byte(`{"block_out_channels": [], "norm_num_groups": 0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "vae: config: ") {
				t.Fatalf("error without its component: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted an invalid config: %v", err)
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		back, err := ParseConfig(b)
		if err != nil || !reflect.DeepEqual(back, cfg) {
			t.Fatalf("round trip:\n%+v\n%s\n%+v (%v)", cfg, b, back, err)
		}
		_, err = New(cfg, nn.TensorMap{})
		if !errors.Is(err, nn.ErrMissingWeight) {
			t.Fatalf("New without weights: %v, want ErrMissingWeight", err)
		}
	})
}
