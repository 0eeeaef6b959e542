package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/spf13/cobra"
)

func newPNGInfoCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "png-info FILE.png",
		Short: "print the settings a PNG carries (farm's or AUTOMATIC1111's parameters text)",
		Long: "Prints the \"parameters\" text of a PNG made by farm or by AUTOMATIC1111's webui\n" +
			"(and the tools that write its format): the prompt, the negative prompt and the\n" +
			"settings. farm render --from-png FILE.png renders from it again. -o json or -o yaml\n" +
			"prints the text split into prompt, negative prompt and fields, and the settings\n" +
			"farm render --from-png takes from it.",
		Args: oneArg("PNG file"),
	}
	out := addOutputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		text, err := readParameters(args[0])
		if err != nil {
			return err
		}
		return printRecord(stdout, *out, newPNGInfo(args[0], text), func(w io.Writer) error {
			_, err := fmt.Fprintln(w, text)
			return err
		})
	}
	return c
}

// readParameters returns the "parameters" text of the PNG at path.
func readParameters(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	texts, err := pipeline.ReadPNGText(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	text, ok := texts["parameters"]
	if !ok {
		keys := make([]string, 0, len(texts))
		for k := range texts {
			keys = append(keys, fmt.Sprintf("%q", k))
		}
		slices.Sort(keys)
		has := "no text chunks"
		if len(keys) > 0 {
			has = "text chunks " + strings.Join(keys, ", ")
		}
		return "", fmt.Errorf("%s: no \"parameters\" text (it has %s): not made by farm or the webui, or its metadata was stripped", path, has)
	}
	return text, nil
}

// pngInfo is farm png-info -o json.
type pngInfo struct {
	File           string        `json:"file"`
	Parameters     string        `json:"parameters"`
	Prompt         string        `json:"prompt"`
	NegativePrompt string        `json:"negative_prompt"`
	Fields         orderedFields `json:"fields"`
	// Render is what farm render --from-png takes from the text, in its
	// flags' terms; absent without a settings line.
	Render *pngRender `json:"render,omitempty"`
	// Problems are the fields farm cannot render from; Notes what it
	// cannot reproduce.
	Problems []string `json:"problems,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

type pngRender struct {
	Model     string  `json:"model,omitempty"`
	ModelHash string  `json:"model_hash,omitempty"`
	Steps     int     `json:"steps"`
	Sampler   string  `json:"sampler"`
	Schedule  string  `json:"schedule"`
	CFGScale  float64 `json:"cfg_scale"`
	Seed      uint64  `json:"seed"`
	Width     int     `json:"width"`
	Height    int     `json:"height"`
	ClipSkip  int     `json:"clip_skip"`
	Strength  float64 `json:"strength,omitempty"`
}

func newPNGInfo(path, text string) pngInfo {
	it := pipeline.ParseInfotext(text)
	info := pngInfo{File: path, Parameters: text, Prompt: it.Prompt, NegativePrompt: it.NegativePrompt, Fields: it.Fields}
	if len(it.Fields) == 0 {
		info.Problems = []string{pipeline.ErrNoSettings.Error()}
		return info
	}
	req, model, hash, err := it.Request()
	info.Render = &pngRender{Model: model, ModelHash: hash, Steps: req.Steps, Sampler: req.Sampler, Schedule: req.Schedule,
		CFGScale: req.CFGScale, Seed: req.Seed, Width: req.Width, Height: req.Height, ClipSkip: req.ClipSkip, Strength: req.Strength}
	for _, pe := range parameterErrors(err) {
		info.Problems = append(info.Problems, fmt.Sprintf("%s %q: %v", pe.Key, pe.Value, pe.Err))
	}
	info.Notes = reproductionNotes(it)
	return info
}

// orderedFields marshals as a JSON object with the keys in the text's order.
type orderedFields []pipeline.Field

func (fs orderedFields) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// parameterErrors lists the *pipeline.ParameterErrors in err, which
// ParseParameters joins.
func parameterErrors(err error) []*pipeline.ParameterError {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var out []*pipeline.ParameterError
	for _, e := range errs {
		var pe *pipeline.ParameterError
		if errors.As(e, &pe) {
			out = append(out, pe)
		}
	}
	return out
}

// reproductionNotes says what of a parameters text farm's engine cannot
// redo, so a render from it will not be the same image.
func reproductionNotes(it pipeline.Infotext) []string {
	var notes []string
	switch rng, _ := it.Get("RNG"); {
	case rng == "CPU":
	case rng == "" && it.Ours():
	case rng == "":
		notes = append(notes, "no RNG field, the webui's default: its starting noise came from the GPU's generator, "+
			"farm's comes from torch's CPU generator (the webui's RNG: CPU), so the image will differ")
	default:
		notes = append(notes, fmt.Sprintf("RNG %s: the starting noise came from another generator than torch's CPU one farm uses, so the image will differ", rng))
	}
	for _, k := range []string{"Hires upscale", "Hires resize"} {
		if v, ok := it.Get(k); ok {
			notes = append(notes, fmt.Sprintf("%s %s: farm has no hires fix; it renders the first pass, at Size", k, v))
			break
		}
	}
	if v, ok := it.Get("Variation seed"); ok {
		notes = append(notes, fmt.Sprintf("Variation seed %s: farm has no variation seeds; it renders Seed alone", v))
	}
	if v, ok := it.Get("ENSD"); ok {
		notes = append(notes, fmt.Sprintf("ENSD %s: farm's ancestral samplers draw their noise without the webui's seed delta", v))
	}
	return notes
}
