package wire

import (
	"fmt"
	"strings"
)

// Image inputs live in S3 under content addresses, so that the same file
// uploaded twice is stored once and a stored job always refers to the bytes
// it was validated with: inputs/sha256-<64 hex>.<png|jpg>.
const InputsPrefix = "inputs/"

// InputKey is the S3 key of an input image with SHA-256 sum sum (lowercase
// hex) in format ("png" or "jpeg").
func InputKey(sum, format string) string {
	ext := "png"
	if format == "jpeg" {
		ext = "jpg"
	}
	return InputsPrefix + "sha256-" + sum + "." + ext
}

// ParseInputKey returns the SHA-256 sum and format of an input key.
func ParseInputKey(key string) (sum, format string, ok bool) {
	rest, found := strings.CutPrefix(key, InputsPrefix+"sha256-")
	if !found {
		return "", "", false
	}
	sum, ext, found := strings.Cut(rest, ".")
	if !found || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return "", "", false
	}
	switch ext {
	case "png":
		return sum, "png", true
	case "jpg":
		return sum, "jpeg", true
	}
	return "", "", false
}

// ValidInputKey reports whether key is an input key.
func ValidInputKey(key string) bool {
	_, _, ok := ParseInputKey(key)
	return ok
}

// InputRef is the answer to an input upload (PUT /v1/inputs/{sha256}).
type InputRef struct {
	Key    string `json:"key"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// HasInputs reports whether the spec takes image inputs.
func (s *JobSpec) HasInputs() bool { return s.InitImage != "" }

// validateInputs checks the image input fields of a batch spec. The sizes
// of the images themselves are checked where the bytes are (farm submit,
// and the coordinator against the stored inputs).
func (s *JobSpec) validateInputs(fe *FieldErrors) {
	if s.InitImage == "" {
		if s.Mask != "" {
			fe.add("mask", "a mask needs an init_image")
		}
		if s.Outpaint != nil {
			fe.add("outpaint", "outpainting needs an init_image")
		}
		if s.Strength != 0 {
			fe.add("strength", "a strength needs an init_image")
		}
	}
	if s.Strength < 0 || s.Strength > 1 || s.Strength != s.Strength {
		fe.add("strength", "%g outside (0, 1] (0 means the default)", s.Strength)
	}
	if p := s.Outpaint; p != nil {
		for _, side := range []struct {
			name string
			v    int
		}{{"left", p.Left}, {"top", p.Top}, {"right", p.Right}, {"bottom", p.Bottom}} {
			switch {
			case side.v < 0 || side.v > MaxSize:
				fe.add("outpaint."+side.name, "%d outside 0..%d", side.v, MaxSize)
			case side.v%8 != 0:
				fe.add("outpaint."+side.name, "%d is not a multiple of 8", side.v)
			}
		}
		if *p == (Padding{}) {
			fe.add("outpaint", "extends no side: give at least one side in pixels")
		}
		if s.Mask != "" {
			fe.add("mask", "outpainting makes its own mask; give either mask or outpaint")
		}
	}
}

// InputKeyErrors lists image inputs that are not input keys: a spec sent to
// the coordinator must name uploaded inputs (local paths are for farm
// submit, which uploads them, and for local renders).
func (s *JobSpec) InputKeyErrors() FieldErrors {
	var fe FieldErrors
	for _, in := range []struct{ field, key string }{{"init_image", s.InitImage}, {"mask", s.Mask}} {
		if in.key != "" && !ValidInputKey(in.key) {
			fe.add(in.field, "%q is not an input key: the coordinator cannot read client files (farm submit uploads them)", truncateField(in.key))
		}
	}
	return fe
}

// CheckInputSizes checks the sizes of the init image and mask (as read from
// the files) against the spec: the output is the init image plus the
// outpaint padding, and a mask has the image's size. maskW and maskH are
// ignored without a mask.
func (s *JobSpec) CheckInputSizes(imgW, imgH, maskW, maskH int) FieldErrors {
	var fe FieldErrors
	if s.Mask != "" && (maskW != imgW || maskH != imgH) {
		fe.add("mask", "is %dx%d but the init image is %dx%d; a mask must have the image's size", maskW, maskH, imgW, imgH)
	}
	if imgW%8 != 0 || imgH%8 != 0 {
		fe.add("init_image", "is %dx%d; its sides must be multiples of 8", imgW, imgH)
	}
	w, h := s.OutputSize(imgW, imgH)
	if s.Width != w || s.Height != h {
		fe.add("width", "%dx%d does not match the init image: %dx%d%s gives %dx%d", s.Width, s.Height, imgW, imgH, s.paddingText(), w, h)
	}
	return fe
}

// OutputSize is the size of the images rendered from an init image of
// imgW x imgH: the image plus the outpaint padding.
func (s *JobSpec) OutputSize(imgW, imgH int) (w, h int) {
	w, h = imgW, imgH
	if p := s.Outpaint; p != nil {
		w += p.Left + p.Right
		h += p.Top + p.Bottom
	}
	return w, h
}

func (s *JobSpec) paddingText() string {
	if s.Outpaint == nil {
		return ""
	}
	p := s.Outpaint
	return fmt.Sprintf(" with outpaint %d,%d,%d,%d", p.Left, p.Top, p.Right, p.Bottom)
}

func truncateField(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
