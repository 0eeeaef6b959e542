package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/clip"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/diffusion/unet"
	"github.com/latentfarm/latentfarm/diffusion/vae"
)

// loadFolder reads a diffusers folder: model_index.json and the
// text_encoder, tokenizer, unet, vae and scheduler subfolders.
func loadFolder(b backend.Backend, dir string, opts Options) (*Model, error) {
	if _, err := os.Stat(filepath.Join(dir, "model_index.json")); err != nil {
		return nil, fmt.Errorf("checkpoint: %s is not a diffusers model folder (no model_index.json): %w", dir, err)
	}
	m := &Model{Name: filepath.Base(filepath.Clean(dir))}
	var err error
	tokDir := filepath.Join(dir, "tokenizer")
	if opts.Tokenizer != "" {
		tokDir = opts.Tokenizer
	}
	if m.Tokenizer, err = loadTokenizer(tokDir); err != nil {
		return nil, err
	}
	if m.Scheduler, err = readSchedulerConfig(filepath.Join(dir, "scheduler")); err != nil {
		return nil, err
	}

	raw, err := readConfig(filepath.Join(dir, "text_encoder"))
	if err != nil {
		return nil, err
	}
	if m.TextConfig, err = clip.ParseConfig(raw); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, "text_encoder", "config.json"), err)
	}
	path, err := weightsFile(filepath.Join(dir, "text_encoder"), "model", opts.Variant)
	if err != nil {
		return nil, err
	}
	w, err := nn.LoadSafetensors(b, path)
	if err != nil {
		return nil, err
	}
	if m.TextEncoder, err = clip.New(m.TextConfig, w); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}

	raw, err = readConfig(filepath.Join(dir, "unet"))
	if err != nil {
		return nil, err
	}
	if m.UNetConfig, err = unet.ParseConfig(raw); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, "unet", "config.json"), err)
	}
	path, err = weightsFile(filepath.Join(dir, "unet"), "diffusion_pytorch_model", opts.Variant)
	if err != nil {
		return nil, err
	}
	if m.Hash, err = fileHash(path); err != nil {
		return nil, err
	}
	if w, err = nn.LoadSafetensors(b, path); err != nil {
		return nil, err
	}
	if m.UNet, err = unet.New(m.UNetConfig, w); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}

	if m.VAEConfig, err = readVAEConfig(filepath.Join(dir, "vae")); err != nil {
		return nil, err
	}
	path, err = weightsFile(filepath.Join(dir, "vae"), "diffusion_pytorch_model", opts.Variant)
	if err != nil {
		return nil, err
	}
	if w, err = nn.LoadSafetensors(b, path); err != nil {
		return nil, err
	}
	if m.VAE, err = vae.New(m.VAEConfig, w); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	m.Family = familyOf(m.UNetConfig)
	return m, nil
}

// familyOf tells SD1.x from SD2.x by the width of the text conditioning.
func familyOf(cfg unet.Config) Family {
	if cfg.CrossAttentionDim >= 1024 {
		return SD2
	}
	return SD1
}

func readConfig(dir string) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("checkpoint: %s: not valid JSON", filepath.Join(dir, "config.json"))
	}
	return raw, nil
}

func readVAEConfig(dir string) (vae.Config, error) {
	raw, err := readConfig(dir)
	if err != nil {
		return vae.Config{}, err
	}
	cfg, err := vae.ParseConfig(raw)
	if err != nil {
		return vae.Config{}, fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, "config.json"), err)
	}
	return cfg, nil
}

func readSchedulerConfig(dir string) (scheduler.Config, error) {
	path := filepath.Join(dir, "scheduler_config.json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return scheduler.SD15(), nil
	}
	if err != nil {
		return scheduler.Config{}, fmt.Errorf("checkpoint: %w", err)
	}
	cfg, err := scheduler.ParseConfig(raw)
	if err != nil {
		return scheduler.Config{}, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return cfg, nil
}

// weightsFile picks base[.variant].safetensors in dir. With no variant it
// prefers full precision and falls back to the fp16 file. A folder holding
// only pickle weights gets ErrPickle.
func weightsFile(dir, base, variant string) (string, error) {
	var candidates []string
	if variant != "" {
		candidates = []string{base + "." + variant + ".safetensors"}
	} else {
		candidates = []string{base + ".safetensors", base + ".fp16.safetensors"}
	}
	for _, c := range candidates {
		p := filepath.Join(dir, c)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	for _, ext := range []string{".bin", ".ckpt", ".pt"} {
		p := filepath.Join(dir, base+ext)
		if _, err := os.Stat(p); err == nil {
			return "", refusePickle(p)
		}
	}
	return "", fmt.Errorf("checkpoint: %s: no %s weights (looked for %v)", dir, base, candidates)
}
