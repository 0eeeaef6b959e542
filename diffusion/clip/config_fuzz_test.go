package clip

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/nn"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "clip: config: ") {
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
