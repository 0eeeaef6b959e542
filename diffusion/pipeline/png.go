package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"strconv"
	"strings"
)

// samplerLabels are the names other Stable Diffusion tools write in the
// "Sampler:" field.
var samplerLabels = map[string]string{
	"euler":    "Euler",
	"euler_a":  "Euler a",
	"ddim":     "DDIM",
	"dpmpp_2m": "DPM++ 2M",
}

// Parameters renders the request in the text format other Stable Diffusion
// tools store in a PNG's "parameters" chunk: the prompt, an optional
// "Negative prompt:" line, then comma-separated settings, with the
// denoising strength for img2img, inpainting and outpainting as A1111
// writes it.
func Parameters(req Request, modelName, modelHash string) string {
	var sb strings.Builder
	sb.WriteString(req.Prompt)
	if req.NegativePrompt != "" {
		sb.WriteString("\nNegative prompt: " + req.NegativePrompt)
	}
	sampler := samplerLabels[req.Sampler]
	if sampler == "" {
		sampler = req.Sampler
	}
	fmt.Fprintf(&sb, "\nSteps: %d, Sampler: %s", req.Steps, sampler)
	switch req.Schedule {
	case "karras":
		sb.WriteString(", Schedule type: Karras")
	case "ays":
		sb.WriteString(", Schedule type: Align Your Steps")
	}
	fmt.Fprintf(&sb, ", CFG scale: %s, Seed: %d, Size: %dx%d",
		strconv.FormatFloat(req.CFGScale, 'g', -1, 64), req.Seed, req.Width, req.Height)
	if modelHash != "" {
		fmt.Fprintf(&sb, ", Model hash: %s", modelHash)
	}
	if modelName != "" {
		fmt.Fprintf(&sb, ", Model: %s", modelName)
	}
	if s := imageStrength(req); s != 0 {
		fmt.Fprintf(&sb, ", Denoising strength: %s", strconv.FormatFloat(s, 'g', -1, 64))
	}
	if req.ClipSkip > 0 {
		// Other tools count the last layer as clip skip 1.
		fmt.Fprintf(&sb, ", Clip skip: %d", req.ClipSkip+1)
	}
	return sb.String()
}

// imageStrength is the strength an image-mode request runs at (its
// default when unset), 0 for text-to-image.
func imageStrength(req Request) float64 {
	if req.Strength == 0 && req.InitImage != nil {
		return req.Defaults().Strength
	}
	return req.Strength
}

// ParseParameters reads the text Parameters writes (and other tools write)
// back into a request, with the model name and hash.
func ParseParameters(text string) (req Request, modelName, modelHash string, err error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 2 {
		return req, "", "", errors.New("pipeline: parameters: no settings line")
	}
	settings := lines[len(lines)-1]
	var prompt []string
	for _, l := range lines[:len(lines)-1] {
		if neg, ok := strings.CutPrefix(l, "Negative prompt: "); ok {
			req.NegativePrompt = neg
			continue
		}
		prompt = append(prompt, l)
	}
	req.Prompt = strings.Join(prompt, "\n")
	req.Schedule = "default"
	for _, field := range strings.Split(settings, ", ") {
		key, val, ok := strings.Cut(field, ": ")
		if !ok {
			return req, "", "", fmt.Errorf("pipeline: parameters: field %q has no value", field)
		}
		if err := req.setField(key, val, &modelName, &modelHash); err != nil {
			return req, "", "", fmt.Errorf("pipeline: parameters: %s: %w", key, err)
		}
	}
	return req, modelName, modelHash, nil
}

func (r *Request) setField(key, val string, modelName, modelHash *string) error {
	var err error
	switch key {
	case "Steps":
		r.Steps, err = strconv.Atoi(val)
	case "Sampler":
		name, karras := strings.CutSuffix(val, " Karras")
		for k, label := range samplerLabels {
			if label == name {
				r.Sampler = k
			}
		}
		if r.Sampler == "" {
			return fmt.Errorf("unknown sampler %q", val)
		}
		if karras {
			r.Schedule = "karras"
		}
	case "Schedule type":
		switch val {
		case "Karras":
			r.Schedule = "karras"
		case "Align Your Steps":
			r.Schedule = "ays"
		}
	case "CFG scale":
		r.CFGScale, err = strconv.ParseFloat(val, 64)
	case "Seed":
		r.Seed, err = strconv.ParseUint(val, 10, 64)
	case "Size":
		_, err = fmt.Sscanf(val, "%dx%d", &r.Width, &r.Height)
	case "Denoising strength":
		r.Strength, err = strconv.ParseFloat(val, 64)
	case "Model hash":
		*modelHash = val
	case "Model":
		*modelName = val
	case "Clip skip":
		var n int
		n, err = strconv.Atoi(val)
		r.ClipSkip = max(n-1, 0)
	}
	return err
}

// EncodePNG writes img as a PNG with a tEXt chunk named "parameters".
func EncodePNG(w io.Writer, img image.Image, parameters string) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("pipeline: png: %w", err)
	}
	data := buf.Bytes()
	// The signature (8 bytes) and IHDR (25 bytes) come first; tEXt goes
	// right after IHDR so readers that stop early still see it.
	const afterIHDR = 8 + 25
	if len(data) < afterIHDR || string(data[12:16]) != "IHDR" {
		return errors.New("pipeline: png: unexpected encoder output")
	}
	chunk := textChunk("parameters", parameters)
	out := make([]byte, 0, len(data)+len(chunk))
	out = append(out, data[:afterIHDR]...)
	out = append(out, chunk...)
	out = append(out, data[afterIHDR:]...)
	_, err := w.Write(out)
	return err
}

// textChunk builds a PNG tEXt chunk. tEXt holds Latin-1; characters outside
// it are replaced so the chunk stays valid.
func textChunk(keyword, text string) []byte {
	body := append([]byte(keyword), 0)
	for _, r := range text {
		if r > 0xff {
			r = '?'
		}
		body = append(body, byte(r))
	}
	chunk := make([]byte, 8, 12+len(body))
	binary.BigEndian.PutUint32(chunk[0:4], uint32(len(body)))
	copy(chunk[4:8], "tEXt")
	chunk = append(chunk, body...)
	return binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
}

// ReadPNGText returns the tEXt chunks of a PNG file by keyword.
func ReadPNGText(r io.Reader) (map[string]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(data) < 8 || string(data[:8]) != "\x89PNG\r\n\x1a\n" {
		return nil, errors.New("pipeline: not a PNG file")
	}
	out := map[string]string{}
	for p := 8; p+12 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[p : p+4]))
		if n < 0 || p+12+n > len(data) {
			return nil, errors.New("pipeline: png: truncated chunk")
		}
		typ := string(data[p+4 : p+8])
		if typ == "tEXt" {
			body := data[p+8 : p+8+n]
			if k, v, ok := bytes.Cut(body, []byte{0}); ok {
				runes := make([]rune, len(v))
				for i, c := range v {
					runes[i] = rune(c)
				}
				out[string(k)] = string(runes)
			}
		}
		if typ == "IEND" {
			break
		}
		p += 12 + n
	}
	return out, nil
}
