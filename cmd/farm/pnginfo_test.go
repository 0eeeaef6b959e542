package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/pipeline"
)

// webuiText is a parameters text as AUTOMATIC1111's webui 1.10 writes it.
const webuiText = `a lighthouse at dusk, oil painting, <lora:add_detail:0.6>
Negative prompt: (worst quality, low quality:1.4)
Steps: 12, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 2736491823, Size: 16x24, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.45, Clip skip: 2, Hires upscale: 2, Hires upscaler: Latent, Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1`

// pngInfoOut reads farm png-info --json's output.
type pngInfoOut struct {
	pngInfo
	Fields map[string]string `json:"fields"`
}

// writePNG writes a small PNG carrying text as its parameters.
func writePNG(t *testing.T, path, text string) {
	t.Helper()
	var buf bytes.Buffer
	if err := pipeline.EncodePNG(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), text); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, map[string][]byte{path: buf.Bytes()})
}

// captureStdout runs farm with args and returns its exit code and stdout.
func captureStdout(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	old := stdout
	stdout = &buf
	defer func() { stdout = old }()
	code := run(args)
	return code, buf.String()
}

// runQuiet runs farm with args, stdout discarded, and returns its error.
func runQuiet(args ...string) error {
	old := stdout
	stdout = io.Discard
	defer func() { stdout = old }()
	return execute(context.Background(), args...)
}

func TestPNGInfo_Text(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webui.png")
	writePNG(t, path, webuiText)
	code, out := captureStdout(t, "png-info", path)
	if code != 0 || out != webuiText+"\n" {
		t.Errorf("farm png-info: exit %d, printed %q", code, out)
	}
}

func TestPNGInfo_JSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webui.png")
	writePNG(t, path, webuiText)
	code, out := captureStdout(t, "png-info", path, "-o", "json")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	var got pngInfoOut
	var raw struct {
		Fields json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	want := pngRender{Model: "v1-5-pruned-emaonly", ModelHash: "6ce0161689", Steps: 12, Sampler: "dpmpp_2m", Schedule: "karras",
		CFGScale: 6.5, Seed: 2736491823, Width: 16, Height: 24, ClipSkip: 1, Strength: 0.45}
	if got.Render == nil || *got.Render != want {
		t.Errorf("render = %+v, want %+v", got.Render, want)
	}
	if got.Prompt != "a lighthouse at dusk, oil painting, <lora:add_detail:0.6>" || got.NegativePrompt != "(worst quality, low quality:1.4)" || got.Parameters != webuiText {
		t.Errorf("prompt %q, negative %q, parameters %q", got.Prompt, got.NegativePrompt, got.Parameters)
	}
	if got.Fields["Hires upscaler"] != "Latent" || got.Fields["Version"] != "v1.10.1" {
		t.Errorf("fields %q", got.Fields)
	}
	// The fields keep the text's order and their values are unquoted.
	fields := string(raw.Fields)
	steps, sampler, lora := strings.Index(fields, `"Steps"`), strings.Index(fields, `"Sampler"`), strings.Index(fields, `"Lora hashes": "add_detail: 7c6bad76eb54"`)
	if steps < 0 || sampler < steps || lora < sampler {
		t.Errorf("fields out of order or quoted: %s", fields)
	}
	notes := strings.Join(got.Notes, "\n")
	for _, w := range []string{"no RNG field", "Hires upscale 2: farm has no hires fix"} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes %q, want one containing %q", got.Notes, w)
		}
	}
	if len(got.Problems) > 0 {
		t.Errorf("problems %q", got.Problems)
	}
}

func TestPNGInfo_Errors(t *testing.T) {
	quietStderr(t)
	dir := t.TempDir()
	noText, notPNG, unknown := filepath.Join(dir, "plain.png"), filepath.Join(dir, "notes.png"), filepath.Join(dir, "unknown.png")
	writeGray(t, noText, 8, 8)
	writeFiles(t, map[string][]byte{notPNG: []byte("not an image")})
	writePNG(t, unknown, "p\nSteps: 20, Sampler: DPM++ SDE, Schedule type: Exponential, CFG scale: 7, Seed: 1, Size: 8x8")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{noText}, 1, `no "parameters" text (it has no text chunks)`},
		{[]string{notPNG}, 1, "pipeline: not a PNG file"},
		{[]string{filepath.Join(dir, "missing.png")}, 1, "no such file"},
		{nil, 2, "want one PNG file"},
	} {
		err := runQuiet(append([]string{"png-info"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("farm png-info %q: error %v, want one containing %q", tc.args, err, tc.want)
		}
		if code, _ := captureStdout(t, append([]string{"png-info"}, tc.args...)...); code != tc.code {
			t.Errorf("farm png-info %q: exit code %d, want %d", tc.args, code, tc.code)
		}
	}
	// A sampler farm does not have is a problem in JSON, not an error; the
	// old --json still asks for it.
	code, out := captureStdout(t, "png-info", "--json", unknown)
	var got pngInfoOut
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	if len(got.Problems) != 2 || !strings.Contains(got.Problems[0], `Sampler "DPM++ SDE": farm has no such sampler`) ||
		!strings.Contains(got.Problems[1], `Schedule type "Exponential"`) {
		t.Errorf("problems %q", got.Problems)
	}
}
