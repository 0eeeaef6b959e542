package vae

import (
	"encoding/json"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/nn/nntest"
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
	build := func(c Config, w nn.TensorMap) error { _, err := New(c, w); return err }
	f.Fuzz(func(t *testing.T, data []byte) {
		nntest.CheckConfig(t, data, "vae: config: ", ParseConfig, Config.Validate, build)
	})
}
