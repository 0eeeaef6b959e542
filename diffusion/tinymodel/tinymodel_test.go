package tinymodel

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
)

func TestWrite_LoadsAndRenders(t *testing.T) {
	for _, f16 := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "tiny")
		if err := Write(dir, Options{Seed: 7, F16: f16}); err != nil {
			t.Fatal(err)
		}
		b := cpu.New()
		m, err := checkpoint.Load(b, dir, checkpoint.Options{})
		if err != nil {
			t.Fatalf("f16=%v: %v", f16, err)
		}
		if m.Family != checkpoint.SD1 || m.Tokenizer.VocabSize() != m.TextConfig.VocabSize {
			t.Errorf("family %s, tokenizer %d ids, text encoder %d", m.Family, m.Tokenizer.VocabSize(), m.TextConfig.VocabSize)
		}
		res, err := pipeline.New(b, m).TextToImage(context.Background(),
			pipeline.Request{Prompt: "a red circle", Width: 32, Height: 24, Steps: 3, CFGScale: 5, Seed: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r := res.Image.Rect; r.Dx() != 32 || r.Dy() != 24 {
			t.Errorf("image is %v, want 32x24", r)
		}
	}
}

func TestWrite_Deterministic(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, dir := range []string{a, b} {
		if err := Write(dir, Options{Seed: 3}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "tokenizer/vocab.json", "unet/config.json"} {
		x, err := os.ReadFile(filepath.Join(a, f))
		if err != nil {
			t.Fatal(err)
		}
		y, _ := os.ReadFile(filepath.Join(b, f))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two writes with the same seed", f)
		}
	}
	c := filepath.Join(t.TempDir(), "c")
	if err := Write(c, Options{Seed: 4}); err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(filepath.Join(a, "unet/diffusion_pytorch_model.safetensors"))
	y, _ := os.ReadFile(filepath.Join(c, "unet/diffusion_pytorch_model.safetensors"))
	if bytes.Equal(x, y) {
		t.Error("different seeds gave the same weights")
	}
}

func TestWrite_RefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(dir, Options{})
	if err == nil || err.Error() != "tinymodel: "+dir+" exists and is not empty" {
		t.Fatalf("got %v", err)
	}
}
