package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/safetensors"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

const (
	rtol   = 1e-4
	prompt = "a photo of an astronaut riding a horse on mars"
)

// checkUNet runs the golden UNet inputs (square batch and the non-square,
// fractional-timestep case) through m and compares with the golden outputs.
func checkUNet(t *testing.T, b backend.Backend, m *Model, golden string) {
	t.Helper()
	g := testfixtures.Golden(t, golden)
	for _, suffix := range []string{"", "_nonsquare"} {
		x, xs := g.Tensor("in_sample" + suffix)
		ts, _ := g.Tensor("in_timesteps" + suffix)
		ctx, cs := g.Tensor("in_encoder_hidden_states" + suffix)
		want, _ := g.Tensor("out_sample" + suffix)
		steps := make([]float64, len(ts))
		for i, v := range ts {
			steps[i] = float64(v)
		}
		out := m.UNet.Forward(b, b.FromFloat32(x, xs...), steps, b.FromFloat32(ctx, cs...))
		got := b.ToFloat32(out)
		t.Logf("unet out_sample%s: max relative error %.3g", suffix, testfixtures.MaxRelErr(got, want))
		testfixtures.AssertClose(t, golden+" out_sample"+suffix, got, want, rtol)
	}
}

// checkText encodes the golden input_ids with m's text encoder (clip skip
// 0) and compares with the golden tensor named want; it also checks that
// m's tokenizer gives those ids.
func checkText(t *testing.T, b backend.Backend, m *Model, golden, want string) {
	t.Helper()
	g := testfixtures.Golden(t, golden)
	v, shape := g.Tensor("input_ids")
	ids := make([][]int, shape[0])
	for i := range ids {
		for _, f := range v[i*shape[1] : (i+1)*shape[1]] {
			ids[i] = append(ids[i], int(f))
		}
	}
	if got := m.Tokenizer.EncodePadded(prompt); !equalInts(got, ids[0]) {
		t.Errorf("tokenizer: %q gives %v, golden ids %v", prompt, got, ids[0])
	}
	out, err := m.TextEncoder.Encode(b, ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := g.Tensor(want)
	got := b.ToFloat32(out)
	t.Logf("text encoder vs %s: max relative error %.3g", want, testfixtures.MaxRelErr(got, w))
	testfixtures.AssertClose(t, golden+" "+want, got, w, rtol)
}

// checkVAE decodes the golden latent with m's autoencoder.
func checkVAE(t *testing.T, b backend.Backend, m *Model) {
	t.Helper()
	g := testfixtures.Golden(t, "vae")
	z, zs := g.Tensor("in_latent")
	want, _ := g.Tensor("decode")
	got := b.ToFloat32(m.VAE.Decode(b, m.VAE.UnscaleLatents(b, b.FromFloat32(z, zs...))))
	testfixtures.AssertClose(t, "vae decode", got, want, rtol)
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLoad_Folder(t *testing.T) {
	b := cpu.New()
	for _, tc := range []struct {
		folder, unetGolden, textGolden string
		family                         Family
		prediction                     string
	}{
		{"model", "unet", "text_encoder", SD1, "epsilon"},
		{"model-v", "v_unet", "v_text_encoder", SD1, "v_prediction"},
	} {
		t.Run(tc.folder, func(t *testing.T) {
			m, err := Load(b, testfixtures.Path(t, tc.folder), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != tc.folder || m.Family != tc.family || m.Scheduler.PredictionType != tc.prediction || len(m.Hash) != 10 {
				t.Errorf("model %q family %q prediction %q hash %q; want %q, %q, %q, 10 hex digits",
					m.Name, m.Family, m.Scheduler.PredictionType, m.Hash, tc.folder, tc.family, tc.prediction)
			}
			checkUNet(t, b, m, tc.unetGolden)
			checkText(t, b, m, tc.textGolden, "last_hidden_state")
			checkVAE(t, b, m)
		})
	}
}

// singleFiles are the LDM-keyed fixtures, the diffusers folder describing
// each, and the text-encoder output each must reproduce.
var singleFiles = []struct {
	file, config, unetGolden, textGolden, textTensor string
	family                                           Family
	prediction                                       string
	textLayers                                       int
}{
	{"tiny-sd1", "model", "unet", "text_encoder", "last_hidden_state", SD1, "epsilon", 2},
	{"tiny-v", "model-v", "v_unet", "v_text_encoder", "last_hidden_state", SD1, "v_prediction", 2},
	// OpenCLIP: SD2's penultimate rule drops the last resblock.
	{"tiny-v-openclip", "model-v", "v_unet", "v_text_encoder", "penultimate_clip_skip1", SD2, "v_prediction", 1},
}

func TestLoad_SingleFile_FolderConfig(t *testing.T) {
	b := cpu.New()
	for _, tc := range singleFiles {
		t.Run(tc.file, func(t *testing.T) {
			path := testfixtures.Path(t, "single-file/"+tc.file+".safetensors")
			m, err := Load(b, path, Options{Config: testfixtures.Path(t, tc.config)})
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != tc.file || m.Family != tc.family || m.Scheduler.PredictionType != tc.prediction ||
				m.TextConfig.NumHiddenLayers != tc.textLayers || len(m.Hash) != 10 {
				t.Errorf("model %q family %q prediction %q text layers %d hash %q; want %q, %q, %q, %d, 10 hex digits",
					m.Name, m.Family, m.Scheduler.PredictionType, m.TextConfig.NumHiddenLayers, m.Hash,
					tc.file, tc.family, tc.prediction, tc.textLayers)
			}
			checkUNet(t, b, m, tc.unetGolden)
			checkText(t, b, m, tc.textGolden, tc.textTensor)
			checkVAE(t, b, m)
		})
	}
}

// The fixture yamls describe the tiny models except for their 8 GroupNorm
// groups, which an LDM yaml cannot express (LDM hard-codes 32): the
// autoencoder's 16 channels cannot form 32 groups, so loading stops before
// any weight is read, with an error that says why and what to pass instead.
func TestLoad_SingleFile_YAMLConfigRefusesTinyGroups(t *testing.T) {
	b := cpu.New()
	for _, tc := range singleFiles {
		t.Run(tc.file, func(t *testing.T) {
			path := testfixtures.Path(t, "single-file/"+tc.file+".safetensors")
			yml := testfixtures.Path(t, "single-file/"+tc.file+".yaml")
			_, err := Load(b, path, Options{Config: yml, Tokenizer: testfixtures.Path(t, tc.config+"/tokenizer")})
			if err == nil {
				t.Fatal("loading the tiny model with its LDM yaml succeeded; want the GroupNorm error")
			}
			t.Logf("error: %v", err)
			for _, want := range []string{yml, "first_stage_config", "32 GroupNorm groups", "[16 32]", "--config",
				"block_out_channels[0] = 16 is not a positive multiple of norm_num_groups 32"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// writeConfigFolder copies the config.json files of a fixture folder
// (without its tokenizer) into a new folder, applying edit to the unet
// config text.
func writeConfigFolder(t *testing.T, from string, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	for _, rel := range []string{"unet/config.json", "vae/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json"} {
		raw, err := os.ReadFile(testfixtures.Path(t, from+"/"+rel))
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		if rel == "unet/config.json" && edit != nil {
			text = edit(text)
		}
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoad_SingleFile_Tokenizer(t *testing.T) {
	b := cpu.New()
	path := testfixtures.Path(t, "single-file/tiny-sd1.safetensors")
	cfg := writeConfigFolder(t, "model", nil) // no tokenizer/ in it
	_, err := Load(b, path, Options{Config: cfg})
	if !errors.Is(err, ErrNoTokenizer) {
		t.Fatalf("error %v, want ErrNoTokenizer", err)
	}
	t.Logf("error: %v", err)
	for _, want := range []string{path, "no tokenizer", "--tokenizer DIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	m, err := Load(b, path, Options{Config: cfg, Tokenizer: testfixtures.Path(t, "model/tokenizer")})
	if err != nil {
		t.Fatalf("with --tokenizer: %v", err)
	}
	checkText(t, b, m, "text_encoder", "last_hidden_state")
}

func TestLoad_SingleFile_TokenizerFromAnotherModel(t *testing.T) {
	b := cpu.New()
	path := testfixtures.Path(t, "single-file/tiny-sd1.safetensors")
	cfg := writeConfigFolder(t, "model", nil)
	// CLIP's full vocabulary file: it loads, but holds 49408 ids for a text
	// encoder of 1000.
	_, err := Load(b, path, Options{Config: cfg, Tokenizer: testfixtures.Path(t, "tokenizer_golden/bpe_simple_vocab_16e6.txt.gz")})
	want := "the tokenizer has 49408 ids but the text encoder only 1000: it belongs to another model"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to say %q", err, want)
	}
}

func TestLoad_RefusesPickle(t *testing.T) {
	b := cpu.New()
	dir := t.TempDir()
	// A folder whose unet holds only a pickle, the rest being model/'s.
	folder := filepath.Join(dir, "pickled")
	if err := os.MkdirAll(filepath.Join(folder, "unet"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"model_index.json", "text_encoder", "tokenizer", "scheduler", "vae"} {
		if err := os.Symlink(testfixtures.Path(t, "model/"+sub), filepath.Join(folder, sub)); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(testfixtures.Path(t, "model/unet/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(folder, "unet", "config.json"), raw)
	mustWrite(t, filepath.Join(folder, "unet", "diffusion_pytorch_model.bin"), []byte("PK\x03\x04 not really a zip"))

	for _, tc := range []struct{ name, path string }{
		{"ckpt", filepath.Join(dir, "model.ckpt")},
		{"bin", filepath.Join(dir, "pytorch_model.bin")},
		{"pt", filepath.Join(dir, "model.pt")},
		{"folder", folder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "folder" {
				mustWrite(t, tc.path, []byte("\x80\x02}q\x00."))
			}
			_, err := Load(b, tc.path, Options{})
			if !errors.Is(err, ErrPickle) {
				t.Fatalf("error %v, want ErrPickle", err)
			}
			t.Logf("error: %v", err)
			for _, want := range []string{"arbitrary code", ".safetensors", "convert"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if tc.name == "folder" && !strings.Contains(err.Error(), "diffusion_pytorch_model.bin") {
				t.Errorf("error %q does not name the pickle file", err)
			}
		})
	}
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoad_SingleFile_Truncated(t *testing.T) {
	raw, err := os.ReadFile(testfixtures.Path(t, "single-file/tiny-sd1.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "truncated.safetensors")
	mustWrite(t, path, raw[:len(raw)/2])
	_, err = Load(cpu.New(), path, Options{Config: testfixtures.Path(t, "model")})
	if !errors.Is(err, safetensors.ErrInvalid) {
		t.Fatalf("error %v, want safetensors.ErrInvalid", err)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}

// rewrite writes a copy of the fixture single-file checkpoint with edit
// applied to its tensor list.
func rewrite(t *testing.T, file string, edit func([]safetensors.Tensor) []safetensors.Tensor) string {
	t.Helper()
	f, err := safetensors.Open(testfixtures.Path(t, "single-file/"+file+".safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []safetensors.Tensor
	for _, name := range f.Names() {
		v, shape, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, safetensors.F32Tensor(name, shape, v))
	}
	path := filepath.Join(t.TempDir(), file+"-edited.safetensors")
	if err := safetensors.Write(path, edit(ts), nil); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad_SingleFile_BadWeights(t *testing.T) {
	const (
		ldm       = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"
		diffusers = "down_blocks.0.resnets.0.conv1.weight"
	)
	for _, tc := range []struct {
		name  string
		edit  func(safetensors.Tensor) (safetensors.Tensor, bool)
		err   error
		wants []string
	}{
		{"misshaped", func(x safetensors.Tensor) (safetensors.Tensor, bool) {
			if x.Name == ldm {
				return safetensors.F32Tensor(ldm, []int{32, 32, 1, 1}, make([]float32, 32*32)), true
			}
			return x, true
		}, nn.ErrShape, []string{ldm, diffusers, "[32 32 3 3]", "[32 32 1 1]"}},
		{"missing", func(x safetensors.Tensor) (safetensors.Tensor, bool) {
			return x, x.Name != ldm
		}, nn.ErrMissingWeight, []string{ldm, diffusers, "not in the checkpoint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := rewrite(t, "tiny-sd1", func(ts []safetensors.Tensor) []safetensors.Tensor {
				var out []safetensors.Tensor
				for _, x := range ts {
					if y, keep := tc.edit(x); keep {
						out = append(out, y)
					}
				}
				return out
			})
			_, err := Load(cpu.New(), path, Options{Config: testfixtures.Path(t, "model")})
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			t.Logf("error: %v", err)
			for _, want := range append(tc.wants, path) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// A config describing a smaller model than the file (no attention at the
// first level) leaves tensors unused; that is an error, not a silent load.
func TestLoad_SingleFile_ConfigMismatch(t *testing.T) {
	cfg := writeConfigFolder(t, "model", func(s string) string {
		s = strings.ReplaceAll(s, `"CrossAttnDownBlock2D"`, `"DownBlock2D"`)
		return strings.ReplaceAll(s, `"CrossAttnUpBlock2D"`, `"UpBlock2D"`)
	})
	path := testfixtures.Path(t, "single-file/tiny-sd1.safetensors")
	_, err := Load(cpu.New(), path, Options{Config: cfg, Tokenizer: testfixtures.Path(t, "model/tokenizer")})
	if !errors.Is(err, ErrConfigMismatch) {
		t.Fatalf("error %v, want ErrConfigMismatch", err)
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"not part of the model", "model.diffusion_model.input_blocks.1.1.", cfg} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLoad_SingleFile_UnknownLayout(t *testing.T) {
	// A diffusers UNet file is not a single-file checkpoint.
	path := testfixtures.Path(t, "model/unet/diffusion_pytorch_model.safetensors")
	_, err := Load(cpu.New(), path, Options{})
	if !errors.Is(err, ErrUnknownLayout) {
		t.Fatalf("error %v, want ErrUnknownLayout", err)
	}
	t.Logf("error: %v", err)
	for _, want := range []string{path, "found", "down_blocks.* (", "diffusers UNet file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Without --config the tiny model matches no known family.
	path = testfixtures.Path(t, "single-file/tiny-sd1.safetensors")
	_, err = Load(cpu.New(), path, Options{Tokenizer: testfixtures.Path(t, "model/tokenizer")})
	if !errors.Is(err, ErrUnknownLayout) || !strings.Contains(err.Error(), "cross-attention width 32") {
		t.Fatalf("error %v, want ErrUnknownLayout about the cross-attention width", err)
	}
}

// --vae accepts a standalone autoencoder with LDM names, bare or with the
// first_stage_model. prefix (a whole checkpoint), and diffusers names.
func TestLoad_ReplaceVAE_AnyLayout(t *testing.T) {
	bare := rewrite(t, "tiny-sd1", func(ts []safetensors.Tensor) []safetensors.Tensor {
		var out []safetensors.Tensor
		for _, x := range ts {
			if name, ok := strings.CutPrefix(x.Name, ldmVAEPrefix); ok {
				x.Name = name
				out = append(out, x)
			}
		}
		return out
	})
	b := cpu.New()
	for _, tc := range []struct{ name, vae string }{
		{"ldm", bare},
		{"ldm-prefixed", testfixtures.Path(t, "single-file/tiny-sd1.safetensors")},
		{"diffusers", testfixtures.Path(t, "model/vae/diffusion_pytorch_model.safetensors")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(b, testfixtures.Path(t, "model-v"), Options{VAE: tc.vae})
			if err != nil {
				t.Fatal(err)
			}
			checkVAE(t, b, m)
		})
	}
}
