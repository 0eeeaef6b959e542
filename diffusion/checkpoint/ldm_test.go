package checkpoint

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/clip"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/diffusion/unet"
	"github.com/latentfarm/latentfarm/diffusion/vae"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

// Well-known places of SD1.5 weights in original checkpoints (4 levels, 2
// resnets per down level, attention at the first three levels).
func TestUNetNames_SD15(t *testing.T) {
	names := newUNetNames(unet.SD15())
	for diffusers, ldm := range map[string]string{
		"conv_in.weight":                                                     "input_blocks.0.0.weight",
		"time_embedding.linear_2.bias":                                       "time_embed.2.bias",
		"down_blocks.0.attentions.1.proj_in.weight":                          "input_blocks.2.1.proj_in.weight",
		"down_blocks.0.downsamplers.0.conv.weight":                           "input_blocks.3.0.op.weight",
		"down_blocks.1.resnets.0.conv_shortcut.weight":                       "input_blocks.4.0.skip_connection.weight",
		"down_blocks.2.downsamplers.0.conv.bias":                             "input_blocks.9.0.op.bias",
		"down_blocks.3.resnets.1.conv2.weight":                               "input_blocks.11.0.out_layers.3.weight",
		"mid_block.resnets.1.time_emb_proj.weight":                           "middle_block.2.emb_layers.1.weight",
		"mid_block.attentions.0.norm.weight":                                 "middle_block.1.norm.weight",
		"up_blocks.0.resnets.2.norm1.weight":                                 "output_blocks.2.0.in_layers.0.weight",
		"up_blocks.0.upsamplers.0.conv.weight":                               "output_blocks.2.1.conv.weight",
		"up_blocks.1.upsamplers.0.conv.weight":                               "output_blocks.5.2.conv.weight",
		"up_blocks.2.upsamplers.0.conv.bias":                                 "output_blocks.8.2.conv.bias",
		"up_blocks.3.attentions.2.proj_out.weight":                           "output_blocks.11.1.proj_out.weight",
		"up_blocks.3.attentions.0.transformer_blocks.0.ff.net.0.proj.weight": "output_blocks.9.1.transformer_blocks.0.ff.net.0.proj.weight",
		"conv_norm_out.bias":                                                 "out.0.bias",
		"conv_out.weight":                                                    "out.2.weight",
	} {
		ref, ok := names.ldm(diffusers)
		if !ok || ref.key != ldmUNetPrefix+ldm {
			t.Errorf("%s -> %q (%v), want %s%s", diffusers, ref.key, ok, ldmUNetPrefix, ldm)
		}
	}
	// Every weight the UNet loads has its own key.
	params, err := unet.Params(unet.SD15())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, p := range params {
		ref, ok := names.ldm(p.Name)
		if !ok {
			t.Fatalf("%s has no LDM name", p.Name)
		}
		if other, dup := seen[ref.key]; dup {
			t.Fatalf("%s and %s both map to %s", p.Name, other, ref.key)
		}
		seen[ref.key] = p.Name
	}
	if len(seen) != 686 {
		t.Errorf("SD1.5 UNet: %d LDM keys, want 686", len(seen))
	}
}

func TestVAENames_SD15(t *testing.T) {
	for diffusers, ldm := range map[string]string{
		"encoder.down_blocks.0.downsamplers.0.conv.weight":   "encoder.down.0.downsample.conv.weight",
		"encoder.down_blocks.1.resnets.0.conv_shortcut.bias": "encoder.down.1.block.0.nin_shortcut.bias",
		"encoder.mid_block.attentions.0.to_out.0.weight":     "encoder.mid.attn_1.proj_out.weight",
		"encoder.conv_norm_out.weight":                       "encoder.norm_out.weight",
		"decoder.up_blocks.0.resnets.2.conv1.weight":         "decoder.up.3.block.2.conv1.weight",
		"decoder.up_blocks.0.upsamplers.0.conv.bias":         "decoder.up.3.upsample.conv.bias",
		"decoder.up_blocks.3.resnets.0.conv_shortcut.weight": "decoder.up.0.block.0.nin_shortcut.weight",
		"decoder.mid_block.resnets.1.norm2.bias":             "decoder.mid.block_2.norm2.bias",
		"decoder.mid_block.attentions.0.group_norm.weight":   "decoder.mid.attn_1.norm.weight",
		"post_quant_conv.weight":                             "post_quant_conv.weight",
	} {
		ref, ok := vaeLDMName(4, diffusers)
		if !ok || ref.key != ldm {
			t.Errorf("%s -> %q (%v), want %s", diffusers, ref.key, ok, ldm)
		}
	}
	if ref, _ := vaeLDMName(4, "decoder.mid_block.attentions.0.to_q.weight"); !ref.squeeze || ref.key != "decoder.mid.attn_1.q.weight" {
		t.Errorf("to_q.weight -> %+v, want the squeezed 1x1 conv decoder.mid.attn_1.q.weight", ref)
	}
}

// recorder is a weight Maker that only records the names and shapes a
// model asks for; its tensors hold no data.
type recorder map[string][]int

func (r recorder) Tensor(name string) (*backend.Tensor, error) { return nil, nn.ErrMissingWeight }

func (r recorder) Make(name string, shape []int) (*backend.Tensor, error) {
	r[name] = slices.Clone(shape)
	return backend.NewTensor(nil, backend.F32, shape...), nil
}

// shapeSource serves data-less tensors of the stored shapes.
type shapeSource keyShapes

func (s shapeSource) shape(key string) ([]int, bool) { v, ok := s[key]; return v, ok }

func (s shapeSource) load(key string, part, parts int, shape []int) (*backend.Tensor, error) {
	return backend.NewTensor(nil, backend.F32, shape...), nil
}

// ldmKeySet lists the names and shapes of an original checkpoint of the
// given UNet, VAE and text encoder: the diffusers weights each model asks
// for, renamed and reshaped as LDM stores them.
func ldmKeySet(t *testing.T, u unet.Config, v vae.Config, text clip.Config, openCLIP bool) keyShapes {
	t.Helper()
	ks := keyShapes{}
	add := func(names mapFunc, rec recorder) {
		for name, shape := range rec {
			ref, ok := names(name)
			if !ok {
				t.Fatalf("%s has no LDM name", name)
			}
			if ref.parts > 1 {
				shape[0] *= ref.parts
			}
			if ref.squeeze {
				shape = append(shape, 1, 1)
			}
			ks[ref.key] = shape
		}
	}
	rec := recorder{}
	if _, err := unet.New(u, rec); err != nil {
		t.Fatal(err)
	}
	add(newUNetNames(u).ldm, rec)
	rec = recorder{}
	if _, err := vae.New(v, rec); err != nil {
		t.Fatal(err)
	}
	add(withPrefix(ldmVAEPrefix, func(n string) (ldmRef, bool) { return vaeLDMName(len(v.BlockOutChannels), n) }), rec)
	rec = recorder{}
	if _, err := clip.New(text, rec); err != nil {
		t.Fatal(err)
	}
	if openCLIP {
		add(openCLIPName, rec)
		ks[ldmOpenCLIPPrefix+"text_projection"] = []int{text.HiddenSize, text.HiddenSize}
		ks[ldmOpenCLIPPrefix+"logit_scale"] = []int{}
	} else {
		add(clipLDMName(true), rec)
	}
	return ks
}

// Standard SD1.5 and SD2.1 checkpoints, in their real shapes (names and
// shapes only), are recognised without a config, and the recognised
// model uses every UNet and VAE tensor of the file.
func TestDetect_SD15_SD21(t *testing.T) {
	sd2Text := clip.SD21()
	sd2Text.NumHiddenLayers = 24 // the full OpenCLIP ViT-H tower, as checkpoints store it
	inpaint := unet.SD15()
	inpaint.InChannels = 9
	for _, tc := range []struct {
		name       string
		unet       unet.Config
		text       clip.Config
		openCLIP   bool
		family     Family
		prediction string
		textLayers int
		act        string
	}{
		{"sd15", unet.SD15(), clip.SD15(), false, SD1, scheduler.PredictEpsilon, 12, "quick_gelu"},
		{"sd15-inpainting", inpaint, clip.SD15(), false, SD1, scheduler.PredictEpsilon, 12, "quick_gelu"},
		{"sd21", unet.SD21(), sd2Text, true, SD2, scheduler.PredictV, 23, "gelu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks := ldmKeySet(t, tc.unet, vae.SD15(), tc.text, tc.openCLIP)
			spec, err := detectSpec(ks)
			if err != nil {
				t.Fatal(err)
			}
			layout := textLayoutOf(ks)
			if err := spec.finishText(ks, layout); err != nil {
				t.Fatal(err)
			}
			m := &Model{}
			if err := m.buildSingle(shapeSource(ks), tc.name, ks, spec, layout, false); err != nil {
				t.Fatal(err)
			}
			family := familyOf(spec.unet)
			if !reflect.DeepEqual(spec.unet, tc.unet) {
				t.Errorf("unet config %+v, want %+v", spec.unet, tc.unet)
			}
			if family != tc.family || spec.sched.PredictionType != tc.prediction {
				t.Errorf("family %s prediction %s, want %s %s", family, spec.sched.PredictionType, tc.family, tc.prediction)
			}
			got := spec.text
			if got.NumHiddenLayers != tc.textLayers || got.HiddenAct != tc.act || got.HiddenSize != tc.text.HiddenSize ||
				got.NumAttentionHeads != tc.text.NumAttentionHeads || got.IntermediateSize != tc.text.IntermediateSize {
				t.Errorf("text config %+v, want %d layers, %s, width %d, %d heads", got, tc.textLayers, tc.act, tc.text.HiddenSize, tc.text.NumAttentionHeads)
			}
		})
	}
}

// The fixture yamls map to the fixture folder configs except for the
// GroupNorm group count, as the reference's yaml-to-config builders do.
func TestYAML_TinyConfigsMatchFolders(t *testing.T) {
	for _, tc := range []struct{ file, folder string }{
		{"tiny-sd1", "model"}, {"tiny-v", "model-v"}, {"tiny-v-openclip", "model-v"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(testfixtures.Path(t, "single-file/"+tc.file+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var y ldmYAML
			if err := yaml.Unmarshal(raw, &y); err != nil {
				t.Fatal(err)
			}
			p := y.Model.Params
			u, err := p.UNet.Params.build(p.UNet.Target, p.Parameterization)
			if err != nil {
				t.Fatal(err)
			}
			v, err := buildFirstStage(p.FirstStage, *p.ScaleFactor)
			if err != nil {
				t.Fatal(err)
			}
			want, err := folderSpec(testfixtures.Path(t, tc.folder))
			if err != nil {
				t.Fatal(err)
			}
			if u.NormNumGroups != 32 || v.NormNumGroups != 32 {
				t.Errorf("yaml gives %d/%d groups, want LDM's 32", u.NormNumGroups, v.NormNumGroups)
			}
			u.NormNumGroups, v.NormNumGroups = 8, 8
			if !reflect.DeepEqual(u, want.unet) {
				t.Errorf("unet from yaml %+v\nfolder %+v", u, want.unet)
			}
			if !reflect.DeepEqual(v, want.vae) {
				t.Errorf("vae from yaml %+v\nfolder %+v", v, want.vae)
			}
			s, err := yamlScheduler(p.LinearStart, p.LinearEnd, p.Timesteps, p.Parameterization)
			if err != nil {
				t.Fatal(err)
			}
			if s != want.sched {
				t.Errorf("scheduler from yaml %+v, folder %+v", s, want.sched)
			}
		})
	}
}

// The standard LDM inference configs of SD1.5 and SD2.1-768 give the
// presets.
func TestYAML_StandardConfigs(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text string
		unet       unet.Config
		prediction string
		layout     textLayout
		penult     bool
	}{
		{"v1-inference.yaml", v1YAML, unet.SD15(), scheduler.PredictEpsilon, layoutCLIP, false},
		{"v2-inference-v.yaml", v2YAML, unet.SD21(), scheduler.PredictV, layoutOpenCLIP, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			mustWrite(t, path, []byte(tc.text))
			spec, err := yamlSpec(path)
			if err != nil {
				t.Fatal(err)
			}
			spec.unet.SampleSize = tc.unet.SampleSize // image_size in these yamls is "unused" (32)
			if !reflect.DeepEqual(spec.unet, tc.unet) {
				t.Errorf("unet %+v\nwant %+v", spec.unet, tc.unet)
			}
			wantVAE := vae.SD15()
			wantVAE.SampleSize = 256
			if !reflect.DeepEqual(spec.vae, wantVAE) {
				t.Errorf("vae %+v\nwant %+v", spec.vae, wantVAE)
			}
			if spec.sched.PredictionType != tc.prediction || spec.wantLayout != tc.layout || spec.penultimate != tc.penult {
				t.Errorf("prediction %s layout %v penultimate %v, want %s %v %v",
					spec.sched.PredictionType, spec.wantLayout, spec.penultimate, tc.prediction, tc.layout, tc.penult)
			}
		})
	}
}

// Shapes of CompVis' v1-inference.yaml and Stability's v2-inference-v.yaml.
const v1YAML = `model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    timesteps: 1000
    scale_factor: 0.18215
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 32
        in_channels: 4
        out_channels: 4
        model_channels: 320
        attention_resolutions: [ 4, 2, 1 ]
        num_res_blocks: 2
        channel_mult: [ 1, 2, 4, 4 ]
        num_heads: 8
        use_spatial_transformer: True
        transformer_depth: 1
        context_dim: 768
        legacy: False
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        ddconfig:
          double_z: true
          z_channels: 4
          resolution: 256
          in_channels: 3
          out_ch: 3
          ch: 128
          ch_mult: [1, 2, 4, 4]
          num_res_blocks: 2
          attn_resolutions: []
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
`

const v2YAML = `model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    parameterization: "v"
    linear_start: 0.00085
    linear_end: 0.0120
    timesteps: 1000
    scale_factor: 0.18215
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 32
        in_channels: 4
        out_channels: 4
        model_channels: 320
        attention_resolutions: [ 4, 2, 1 ]
        num_res_blocks: 2
        channel_mult: [ 1, 2, 4, 4 ]
        num_head_channels: 64
        use_spatial_transformer: True
        use_linear_in_transformer: True
        transformer_depth: 1
        context_dim: 1024
        legacy: False
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        ddconfig:
          double_z: true
          z_channels: 4
          resolution: 256
          in_channels: 3
          out_ch: 3
          ch: 128
          ch_mult: [1, 2, 4, 4]
          num_res_blocks: 2
          attn_resolutions: []
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder
      params:
        freeze: True
        layer: "penultimate"
`
