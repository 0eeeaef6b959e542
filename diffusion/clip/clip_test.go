package clip

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

const rtol = 1e-4

// check compares got with want within rtol and logs the error measured.
func check(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	t.Logf("%s: max relative error %.3g", what, testfixtures.MaxRelErr(got, want))
	testfixtures.AssertClose(t, what, got, want, tol)
}

// loadEncoder builds the text encoder of a fixture model folder ("model",
// "model-v") from its config.json and model.safetensors.
func loadEncoder(t *testing.T, b backend.Backend, folder string) (*TextEncoder, nn.TensorMap) {
	t.Helper()
	raw, err := os.ReadFile(testfixtures.Path(t, folder+"/text_encoder/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	w := testfixtures.LoadWeights(t, b, folder+"/text_encoder/model.safetensors")
	enc, err := New(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	return enc, w
}

// goldenIDs reads the [B, 77] input_ids stored as float32.
func goldenIDs(t *testing.T, g *testfixtures.GoldenFile) [][]int {
	t.Helper()
	v, shape := g.Tensor("input_ids")
	ids := make([][]int, shape[0])
	for i := range ids {
		for _, f := range v[i*shape[1] : (i+1)*shape[1]] {
			ids[i] = append(ids[i], int(f))
		}
	}
	return ids
}

func TestTextEncoder_Golden(t *testing.T) {
	for _, tc := range []struct{ folder, golden, act string }{
		{"model", "text_encoder", "quick_gelu"},
		{"model-v", "v_text_encoder", "gelu"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			b := cpu.New()
			enc, _ := loadEncoder(t, b, tc.folder)
			if enc.Config().HiddenAct != tc.act {
				t.Fatalf("hidden_act %q, want %q", enc.Config().HiddenAct, tc.act)
			}
			g := testfixtures.Golden(t, tc.golden)
			ids := goldenIDs(t, g)
			out, err := enc.Forward(b, ids, true)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := g.Tensor("last_hidden_state")
			check(t, "last_hidden_state", b.ToFloat32(out.LastHidden), want, rtol)
			want, _ = g.Tensor("pooler_output")
			check(t, "pooler_output", b.ToFloat32(out.Pooled), want, rtol)
			if len(out.Hidden) != 3 {
				t.Fatalf("%d hidden states, want 3", len(out.Hidden))
			}
			for i, h := range out.Hidden {
				name := fmt.Sprintf("hidden_states_%d", i)
				want, _ := g.Tensor(name)
				check(t, name, b.ToFloat32(h), want, rtol)
			}

			emb, err := enc.Encode(b, ids, 0)
			if err != nil {
				t.Fatal(err)
			}
			if s := emb.Shape(); len(s) != 3 || s[0] != 2 || s[1] != 77 || s[2] != 32 {
				t.Fatalf("Encode shape %v, want [2 77 32]", s)
			}
			want, _ = g.Tensor("last_hidden_state")
			check(t, "Encode clip skip 0", b.ToFloat32(emb), want, rtol)
		})
	}
}

func TestTextEncoder_ClipSkip(t *testing.T) {
	b := cpu.New()
	enc, _ := loadEncoder(t, b, "model-v")
	g := testfixtures.Golden(t, "v_text_encoder")
	ids := goldenIDs(t, g)
	emb, err := enc.Encode(b, ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := g.Tensor("penultimate_clip_skip1")
	check(t, "penultimate_clip_skip1", b.ToFloat32(emb), want, rtol)

	// clip skip 2 on a 2-layer encoder is final_layer_norm(embeddings).
	emb, err = enc.Encode(b, ids, 2)
	if err != nil {
		t.Fatal(err)
	}
	h0, shape := g.Tensor("hidden_states_0")
	want = b.ToFloat32(enc.finalNorm.Forward(b, b.FromFloat32(h0, shape...)))
	check(t, "clip skip 2", b.ToFloat32(emb), want, rtol)

	if _, err := enc.Encode(b, ids, 3); err == nil || !strings.Contains(err.Error(), "clip skip 3") {
		t.Errorf("clip skip 3 on 2 layers: err = %v", err)
	}
	if _, err := enc.Encode(b, ids, -1); err == nil {
		t.Error("clip skip -1: no error")
	}
}

func TestTextEncoder_IgnoresPositionIDs(t *testing.T) {
	b := cpu.New()
	_, w := loadEncoder(t, b, "model")
	pos := make([]float32, 77)
	for i := range pos {
		pos[i] = float32(i)
	}
	w["text_model.embeddings.position_ids"] = b.FromFloat32(pos, 1, 77)
	raw, err := os.ReadFile(testfixtures.Path(t, "model/text_encoder/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := New(cfg, w)
	if err != nil {
		t.Fatalf("New with position_ids present: %v", err)
	}
	g := testfixtures.Golden(t, "text_encoder")
	emb, err := enc.Encode(b, goldenIDs(t, g), 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := g.Tensor("last_hidden_state")
	check(t, "last_hidden_state", b.ToFloat32(emb), want, rtol)
}

func TestTextEncoder_EncodeBadIDs(t *testing.T) {
	b := cpu.New()
	enc, _ := loadEncoder(t, b, "model")
	long := make([]int, 78)
	tests := []struct {
		name string
		ids  [][]int
		msg  string
	}{
		{"Empty", nil, "no sequences"},
		{"EmptySequence", [][]int{{}}, "sequence length 0"},
		{"TooLong", [][]int{long}, "sequence length 78"},
		{"Ragged", [][]int{{1, 2}, {1}}, "sequence 1 has 1 tokens"},
		{"OutOfVocab", [][]int{{998, 1000}}, "id 1000 outside vocabulary of 1000"},
		{"Negative", [][]int{{-1}}, "id -1 outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := enc.Encode(b, tc.ids, 0)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want one containing %q", err, tc.msg)
			}
		})
	}
}

func TestTextEncoder_PoolPosition(t *testing.T) {
	legacy := &TextEncoder{cfg: SD15()}
	modern := &TextEncoder{cfg: Config{EOSTokenID: 999}}
	tests := []struct {
		name string
		enc  *TextEncoder
		row  []int
		want int
	}{
		{"LegacyArgmaxEOSPadded", legacy, []int{49406, 320, 49407, 49407}, 2},
		{"LegacyArgmaxZeroPadded", legacy, []int{49406, 320, 49407, 0, 0}, 2},
		{"FirstEOS", modern, []int{998, 5, 999, 999}, 2},
		{"NoEOS", modern, []int{998, 5, 6}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.enc.poolPosition(tc.row); got != tc.want {
				t.Errorf("poolPosition(%v) = %d, want %d", tc.row, got, tc.want)
			}
		})
	}
}

func TestNew_BadWeights(t *testing.T) {
	b := cpu.New()
	_, w := loadEncoder(t, b, "model")
	cfg, err := ParseConfig([]byte(`{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "vocab_size": 1000}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, w); err != nil {
		t.Fatalf("New: %v", err)
	}

	missing := nn.TensorMap{}
	for k, v := range w {
		missing[k] = v
	}
	delete(missing, "text_model.encoder.layers.1.mlp.fc2.bias")
	_, err = New(cfg, missing)
	if !errors.Is(err, nn.ErrMissingWeight) || !strings.Contains(err.Error(), "layers.1.mlp.fc2.bias") {
		t.Errorf("missing weight: err = %v", err)
	}

	three := cfg
	three.NumHiddenLayers = 3
	if _, err := New(three, w); !errors.Is(err, nn.ErrMissingWeight) || !strings.Contains(err.Error(), "layers.2.") {
		t.Errorf("3 layers from a 2-layer checkpoint: err = %v", err)
	}

	wide := cfg
	wide.IntermediateSize = 128
	if _, err := New(wide, w); !errors.Is(err, nn.ErrShape) || !strings.Contains(err.Error(), "mlp.fc1.weight") {
		t.Errorf("wrong intermediate size: err = %v", err)
	}
}
