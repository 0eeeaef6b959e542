// Package tinymodel writes small random-weight Stable Diffusion models in
// the diffusers folder layout, with a tokenizer of their own, so the demo,
// tests and benchmarks have a model of a given shape without a download.
// Their images are noise; the architecture and file layout are SD1.x's.
package tinymodel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/clip"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/safetensors"
	"github.com/latentfarm/latentfarm/diffusion/tokenizer"
	"github.com/latentfarm/latentfarm/diffusion/unet"
	"github.com/latentfarm/latentfarm/diffusion/vae"
)

// Options shapes the model. The zero value gives the default tiny model.
type Options struct {
	Seed uint64
	// F16 stores the weights in float16.
	F16 bool
	// Words become single tokens of the model's tokenizer.
	Words []string
}

// defaultWords are common prompt words, so prompts encode into few tokens.
var defaultWords = []string{
	"a", "an", "the", "of", "on", "in", "with", "and", "photo", "painting", "picture",
	"red", "green", "blue", "yellow", "white", "black", "orange", "purple",
	"circle", "square", "triangle", "cat", "dog", "horse", "astronaut", "mars",
	"background", "landscape", "city", "night", "sunset", "portrait", "riding",
}

const diffusersVersion = "0.27.2"

// Write creates the model folder dir (which must not exist or be empty).
func Write(dir string, opts Options) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("tinymodel: %s exists and is not empty", dir)
	}
	words := opts.Words
	if len(words) == 0 {
		words = defaultWords
	}
	if err := tokenizer.WriteFolder(filepath.Join(dir, "tokenizer"), words); err != nil {
		return err
	}
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer"))
	if err != nil {
		return err
	}

	textCfg := clip.Defaults()
	textCfg.VocabSize, textCfg.HiddenSize, textCfg.IntermediateSize, textCfg.ProjectionDim = tok.VocabSize(), 32, 64, 32
	textCfg.NumHiddenLayers, textCfg.NumAttentionHeads = 2, 4
	textCfg.BOSTokenID, textCfg.EOSTokenID, textCfg.PadTokenID = tok.BOS(), tok.EOS(), tok.Pad()

	unetCfg := unet.Defaults()
	unetCfg.SampleSize = 8
	unetCfg.DownBlockTypes = []string{unet.CrossAttnDownBlock, unet.DownBlock}
	unetCfg.UpBlockTypes = []string{unet.UpBlock, unet.CrossAttnUpBlock}
	unetCfg.BlockOutChannels = []int{32, 64}
	unetCfg.LayersPerBlock = unet.PerBlock{1}
	unetCfg.CrossAttentionDim = 32
	unetCfg.AttentionHeadDim = unet.PerBlock{8}
	unetCfg.NormNumGroups = 8

	vaeCfg := vae.Defaults()
	vaeCfg.DownBlockTypes = []string{vae.DownEncoderBlock2D, vae.DownEncoderBlock2D}
	vaeCfg.UpBlockTypes = []string{vae.UpDecoderBlock2D, vae.UpDecoderBlock2D}
	vaeCfg.BlockOutChannels = []int{16, 32}
	vaeCfg.NormNumGroups = 8
	vaeCfg.SampleSize = 16

	b := cpu.New()
	parts := []struct {
		sub, class, weights string
		cfg                 any
		build               func(w nn.Weights) error
	}{
		{"text_encoder", "CLIPTextModel", "model", textCfg, func(w nn.Weights) error { _, err := clip.New(textCfg, w); return err }},
		{"unet", "UNet2DConditionModel", "diffusion_pytorch_model", unetCfg, func(w nn.Weights) error { _, err := unet.New(unetCfg, w); return err }},
		{"vae", "AutoencoderKL", "diffusion_pytorch_model", vaeCfg, func(w nn.Weights) error { _, err := vae.New(vaeCfg, w); return err }},
	}
	for i, p := range parts {
		rw := nn.NewRandomWeights(b, opts.Seed*16+uint64(i))
		if err := p.build(rw); err != nil {
			return fmt.Errorf("tinymodel: %s: %w", p.sub, err)
		}
		if err := writeConfig(filepath.Join(dir, p.sub, "config.json"), p.class, p.cfg); err != nil {
			return err
		}
		if err := writeWeights(filepath.Join(dir, p.sub, p.weights+".safetensors"), rw, opts.F16); err != nil {
			return err
		}
	}
	schedulerCfg := map[string]any{
		"_class_name": "PNDMScheduler", "_diffusers_version": diffusersVersion,
		"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": false,
		"num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": false,
		"skip_prk_steps": true, "steps_offset": 1, "trained_betas": nil,
	}
	if err := writeJSON(filepath.Join(dir, "scheduler", "scheduler_config.json"), schedulerCfg); err != nil {
		return err
	}
	index := map[string]any{
		"_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusersVersion,
		"scheduler": []string{"diffusers", "PNDMScheduler"}, "text_encoder": []string{"transformers", "CLIPTextModel"},
		"tokenizer": []string{"transformers", "CLIPTokenizer"}, "unet": []string{"diffusers", "UNet2DConditionModel"},
		"vae": []string{"diffusers", "AutoencoderKL"}, "safety_checker": []any{nil, nil},
		"feature_extractor": []any{nil, nil}, "requires_safety_checker": false,
	}
	return writeJSON(filepath.Join(dir, "model_index.json"), index)
}

// writeConfig writes a part's config.json: its Config's fields plus the
// class name diffusers and transformers read.
func writeConfig(path, class string, cfg any) error {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	fields := map[string]any{}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	fields["_class_name"] = class
	fields["_diffusers_version"] = diffusersVersion
	return writeJSON(path, fields)
}

func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	return nil
}

func writeWeights(path string, rw *nn.RandomWeights, f16 bool) error {
	tensors := make([]safetensors.Tensor, 0, len(rw.Names))
	for _, name := range rw.Names {
		vals, shape := rw.Values(name)
		if f16 {
			tensors = append(tensors, safetensors.F16Tensor(name, shape, vals))
		} else {
			tensors = append(tensors, safetensors.F32Tensor(name, shape, vals))
		}
	}
	if err := safetensors.Write(path, tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	return nil
}
