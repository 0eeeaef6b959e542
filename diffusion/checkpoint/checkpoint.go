// Package checkpoint loads Stable Diffusion models: diffusers folders and
// single-file .safetensors checkpoints with the original LDM key names. It
// refuses pickle files, whose loading runs arbitrary code. It never
// downloads anything and never imports the farm.
package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/clip"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/diffusion/tokenizer"
	"github.com/latentfarm/latentfarm/diffusion/unet"
	"github.com/latentfarm/latentfarm/diffusion/vae"
)

// Family is the generation of Stable Diffusion a model belongs to.
type Family string

// Families the engine runs.
const (
	SD1 Family = "sd1"
	SD2 Family = "sd2"
)

// ErrPickle is returned for .ckpt, .pt, .pth and .bin files.
var ErrPickle = errors.New("pickle checkpoints are refused")

// Model is a loaded text-to-image model: every part on one backend.
type Model struct {
	Name   string // folder or file name without extension
	Hash   string // first 10 hex digits of the SHA-256 of the main weights file
	Family Family

	Tokenizer   *tokenizer.Tokenizer
	TextConfig  clip.Config
	TextEncoder *clip.TextEncoder
	UNetConfig  unet.Config
	UNet        *unet.UNet
	VAEConfig   vae.Config
	VAE         *vae.VAE
	Scheduler   scheduler.Config
}

// Options adjusts how a model is loaded.
type Options struct {
	// Config is an LDM yaml file or a diffusers folder whose config.json
	// files describe a single-file checkpoint.
	Config string
	// Tokenizer is a folder with vocab.json and merges.txt, or CLIP's
	// bpe_simple_vocab_16e6.txt.gz, for checkpoints that carry none.
	Tokenizer string
	// VAE replaces the model's autoencoder: a diffusers vae folder or a
	// .safetensors file.
	VAE string
	// Variant selects weight files such as diffusion_pytorch_model.fp16.safetensors;
	// empty prefers the full-precision files and falls back to fp16.
	Variant string
}

// Load reads the model at path (a diffusers folder or a .safetensors file)
// onto b.
func Load(b backend.Backend, path string, opts Options) (*Model, error) {
	if err := refusePickle(path); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var m *Model
	if st.IsDir() {
		m, err = loadFolder(b, path, opts)
	} else {
		m, err = loadSingleFile(b, path, opts)
	}
	if err != nil {
		return nil, err
	}
	if opts.VAE != "" {
		if err := m.replaceVAE(b, opts.VAE); err != nil {
			return nil, err
		}
	}
	if n, max := m.Tokenizer.VocabSize(), m.TextConfig.VocabSize; n > max {
		return nil, fmt.Errorf("checkpoint: %s: the tokenizer has %d ids but the text encoder only %d: "+
			"it belongs to another model", path, n, max)
	}
	return m, nil
}

// loadTokenizer reads a tokenizer folder (vocab.json, merges.txt) or the
// original CLIP bpe_simple_vocab_16e6.txt.gz file.
func loadTokenizer(path string) (*tokenizer.Tokenizer, error) {
	var (
		t   *tokenizer.Tokenizer
		err error
	)
	if strings.HasSuffix(path, ".gz") {
		t, err = tokenizer.LoadBPEGzip(path)
	} else {
		t, err = tokenizer.Load(path)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return t, nil
}

func refusePickle(path string) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ckpt", ".pt", ".pth", ".bin", ".pkl":
		return fmt.Errorf("checkpoint: %s: %w: loading a pickle runs arbitrary code from the file; "+
			"convert it once, in a sandbox you trust, to .safetensors (for example with diffusers' "+
			"convert_original_stable_diffusion_to_diffusers.py --to_safetensors, or safetensors.torch.save_file)", path, ErrPickle)
	}
	return nil
}

// fileHash is the short SHA-256 other Stable Diffusion tools print as
// "Model hash".
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("checkpoint: hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:10], nil
}

func (m *Model) replaceVAE(b backend.Backend, path string) error {
	if err := refusePickle(path); err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checkpoint: vae: %w", err)
	}
	cfg := m.VAEConfig
	weightsPath := path
	if st.IsDir() {
		if cfg, err = readVAEConfig(path); err != nil {
			return err
		}
		if weightsPath, err = weightsFile(path, "diffusion_pytorch_model", ""); err != nil {
			return err
		}
	}
	w, err := nn.LoadSafetensors(b, weightsPath)
	if err != nil {
		return err
	}
	var vw nn.Weights = w
	if !st.IsDir() {
		vw = vaeWeightsFromAnyLayout(w)
	}
	v, err := vae.New(cfg, vw)
	if err != nil {
		return fmt.Errorf("checkpoint: vae %s: %w", path, err)
	}
	m.VAE, m.VAEConfig = v, cfg
	return nil
}
