package clip

import (
	"encoding/json"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/nn/nntest"
)

// FuzzParseConfig feeds text_encoder/config.json bytes (a model folder is
// untrusted: it comes from the model store) to ParseConfig. An accepted
// config is valid, survives a JSON round trip unchanged, and builds against
// empty weights into an error in bounded work: no layer count in the file
// can make New loop or allocate without limit.
func FuzzParseConfig(f *testing.F) {
	for _, c := range []Config{Defaults(), SD15(), SD21()} {
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	f.Add([]byte(`{"text_config": {"hidden_size": 768, "num_attention_heads": 12, "hidden_act": "gelu"}}`))
	f.Add([]byte(`{"hidden_size": 10, "num_attention_heads": 3}`))
	f.Add([]byte(`{"text_config": null, "layer_norm_eps": 0}`))
	build := func(c Config, w nn.TensorMap) error { _, err := New(c, w); return err }
	f.Fuzz(func(t *testing.T, data []byte) {
		nntest.CheckConfig(t, data, "clip: config: ", ParseConfig, Config.Validate, build)
	})
}
