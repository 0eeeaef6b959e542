package unet

import (
	"encoding/json"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/nn/nntest"
)

// FuzzParseConfig feeds unet/config.json bytes (a model folder is untrusted:
// it comes from the model store) to ParseConfig. An accepted config is
// valid, survives a JSON round trip unchanged, and builds against empty
// weights into ErrMissingWeight in bounded work: no count in the file can
// make New loop or allocate without limit.
func FuzzParseConfig(f *testing.F) {
	for _, c := range []Config{Defaults(), SD15(), SD21()} {
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	f.Add([]byte(`{"_class_name": "UNet2DConditionModel", "block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
 "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "layers_per_block": 1, "cross_attention_dim": 32, "attention_head_dim": [2, 4],
 "norm_num_groups": 8, "num_attention_heads": null, "only_cross_attention": [false, false], "time_embedding_dim": null}`))
	f.Add([]byte(`{"addition_embed_type": "text_time", "cross_attention_dim": [768, 1024]}`))
	f.Add([]byte(`{"layers_per_block": [1, 2, 3], "center_input_sample": 0}`))
	build := func(c Config, w nn.TensorMap) error { _, err := New(c, w); return err }
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, ok := nntest.CheckConfig(t, data, "unet: config", ParseConfig, Config.Validate, build)
		if !ok {
			return
		}
		for i := range cfg.Levels() {
			if h := cfg.Heads(i); h <= 0 || h > cfg.BlockOutChannels[i] {
				t.Fatalf("level %d: %d heads for %d channels", i, h, cfg.BlockOutChannels[i])
			}
		}
		if cfg.TimeEmbedDim() <= 0 {
			t.Fatalf("time embedding width %d", cfg.TimeEmbedDim())
		}
	})
}
