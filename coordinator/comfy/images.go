package comfy

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"path"
	"strings"

	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// Uploaded images are named by their content address: POST /upload/image
// stores inputs/sha256-<hex>.png and answers the name sha256-<hex>.png,
// which LoadImage then gives back.

// inputName is the name a client uses for a stored input.
func inputName(key string) string { return strings.TrimPrefix(key, wire.InputsPrefix) }

// inputKey is the key of the input a client names. ComfyUI clients may
// give a subfolder or an annotation ("name.png [input]").
func inputKey(name string) (string, error) {
	base := strings.TrimSuffix(strings.TrimSpace(name), " [input]")
	key := wire.InputsPrefix + path.Base(strings.ReplaceAll(base, "\\", "/"))
	if !wire.ValidInputKey(key) {
		return "", fmt.Errorf("comfy: %q is not an image uploaded to this farm (POST /upload/image answers names like sha256-<hex>.png)", name)
	}
	return key, nil
}

// farmImages resolves the images of a workflow through the farm.
type farmImages struct {
	farm Farm
}

var _ imageSource = farmImages{}

// load reads and decodes an uploaded image.
func (f farmImages) load(ctx context.Context, name string) (*media.Input, string, error) {
	key, err := inputKey(name)
	if err != nil {
		return nil, "", err
	}
	rc, _, err := f.farm.OpenInput(ctx, key)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, media.MaxInputBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("comfy: read %s: %w", key, err)
	}
	in, err := media.DecodeInput(name, data)
	if err != nil {
		return nil, "", err
	}
	return in, key, nil
}

func (f farmImages) image(ctx context.Context, name string) (inputImage, error) {
	in, key, err := f.load(ctx, name)
	if err != nil {
		return inputImage{}, err
	}
	return inputImage{key: key, width: in.Width, height: in.Height}, nil
}

func (f farmImages) mask(ctx context.Context, name, channel string, grow int) (string, error) {
	in, _, err := f.load(ctx, name)
	if err != nil {
		return "", err
	}
	m, err := maskImage(in.Image, channel, grow)
	if err != nil {
		return "", fmt.Errorf("comfy: mask of %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		return "", fmt.Errorf("comfy: encode mask: %w", err)
	}
	ref, err := f.farm.PutInput(ctx, buf.Bytes())
	if err != nil {
		return "", err
	}
	return ref.Key, nil
}

// maskImage is ComfyUI's MASK of a channel of img (for alpha 1-alpha, so
// that transparent pixels are repainted), rounded to 0 or 1 and grown by
// grow pixels as VAEEncodeForInpaint's grow_mask_by grows it, as an image
// where white repaints (the farm's mask).
func maskImage(img image.Image, channel string, grow int) (*image.Gray, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	on := make([]bool, w*h)
	some := false
	for y := range h {
		for x := range w {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			v := map[string]uint8{maskChannelAlpha: 255 - c.A, "red": c.R, "green": c.G, "blue": c.B}[channel]
			on[y*w+x] = v >= 128 // torch's round(v/255)
			some = some || on[y*w+x]
		}
	}
	if !some {
		return nil, fmt.Errorf("its %s mask is empty, so there is nothing to repaint (make the area to repaint transparent, "+
			"or give a mask with LoadImageMask)", channel)
	}
	on = dilate(on, w, h, grow)
	out := image.NewGray(image.Rect(0, 0, w, h))
	for i, v := range on {
		if v {
			out.Pix[i] = 255
		}
	}
	return out, nil
}

// dilate grows a w x h mask as ComfyUI's grow_mask_by does: a g x g box
// of ones correlated with padding g/2, then clamped. A pixel grows by
// (g-1)/2 up and left and g/2 down and right (an even g grows one pixel
// further down and right).
func dilate(on []bool, w, h, g int) []bool {
	if g <= 1 {
		return on
	}
	p := g / 2
	box := func(get func(i int) bool, n int) []bool { // one axis
		out := make([]bool, n)
		for i := range n {
			for k := range g {
				if j := i + k - p; j >= 0 && j < n && get(j) {
					out[i] = true
					break
				}
			}
		}
		return out
	}
	rows := make([]bool, w*h)
	for y := range h {
		copy(rows[y*w:], box(func(x int) bool { return on[y*w+x] }, w))
	}
	out := make([]bool, w*h)
	for x := range w {
		col := box(func(y int) bool { return rows[y*w+x] }, h)
		for y := range h {
			out[y*w+x] = col[y]
		}
	}
	return out
}
