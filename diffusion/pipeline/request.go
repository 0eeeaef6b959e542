package pipeline

import (
	"fmt"
	"image"
	"math"

	"github.com/latentfarm/latentfarm/diffusion/scheduler"
)

// Request describes one generation: text-to-image, or img2img, inpainting
// or outpainting when it carries an init image, or an in-between frame of
// an animation when Interp is set.
type Request struct {
	Prompt         string
	NegativePrompt string
	// Width and Height are the output size. With InitImage, 0 means the
	// image's size plus Outpaint, and any other value must equal it.
	Width, Height int
	Steps         int
	CFGScale      float64
	Sampler       string // euler, euler_a, ddim, dpmpp_2m
	Schedule      string // default, karras, ays
	Seed          uint64
	// ClipSkip follows diffusers: 0 uses the text encoder's last layer, k
	// uses the output k layers before it (other tools print k+1).
	ClipSkip int

	// Image inputs. InitImage alone is img2img; with Mask it is inpainting
	// (white = repaint); Outpaint extends InitImage's canvas and repaints the new area.
	InitImage image.Image
	Mask      image.Image
	// Strength is the share of the schedule that is re-run (0 < s <= 1);
	// 0 means the default: 0.75 for img2img, 1 for inpainting and outpainting.
	Strength float64
	Outpaint Padding
	// Interp, when set, makes this frame an in-between of an animation:
	// the starting noise is slerped from Seed's noise to Interp.Seed's and the
	// text embeddings lerped (or slerped) from Prompt's to Interp.Prompt's.
	Interp *Interpolation
}

// Padding is how far outpainting extends each side of the init image.
type Padding struct{ Left, Top, Right, Bottom int } // pixels, multiples of 8

// IsZero reports whether the padding extends no side.
func (p Padding) IsZero() bool { return p == Padding{} }

// Interpolation is the second key of an in-between frame; the request's
// own Prompt, NegativePrompt and Seed are the key at T = 0.
type Interpolation struct {
	Prompt, NegativePrompt string // the key at T = 1
	Seed                   uint64
	T                      float64 // 0..1, already eased
	SlerpEmbeddings        bool    // slerp instead of lerp for the embeddings
}

// Default strengths, as diffusers' img2img and inpainting pipelines have them.
const (
	DefaultStrengthImg2Img = 0.75
	DefaultStrengthInpaint = 1.0
)

// Defaults fills unset fields with the usual Stable Diffusion settings; with
// an init image the size defaults to the image's plus Outpaint.
func (r Request) Defaults() Request {
	if r.InitImage != nil {
		w, h := r.canvasSize()
		if r.Width == 0 {
			r.Width = w
		}
		if r.Height == 0 {
			r.Height = h
		}
		if r.Strength == 0 {
			r.Strength = DefaultStrengthImg2Img
			if r.Mask != nil || !r.Outpaint.IsZero() {
				r.Strength = DefaultStrengthInpaint
			}
		}
	}
	if r.Width == 0 {
		r.Width = scheduler.DefaultSize
	}
	if r.Height == 0 {
		r.Height = scheduler.DefaultSize
	}
	if r.Steps == 0 {
		r.Steps = scheduler.DefaultSteps
	}
	if r.Sampler == "" {
		r.Sampler = scheduler.DefaultSampler
	}
	if r.Schedule == "" {
		r.Schedule = scheduler.DefaultSchedule
	}
	return r
}

// canvasSize is the init image's size plus the outpainting padding.
func (r Request) canvasSize() (w, h int) {
	b := r.InitImage.Bounds()
	p := r.Outpaint
	return b.Dx() + p.Left + p.Right, b.Dy() + p.Top + p.Bottom
}

// Validate checks the request's settings and the sizes of its images. A
// zero Width or Height with an init image stands for the image's size.
func (r Request) Validate() error {
	if err := r.validateImages(); err != nil {
		return err
	}
	w, h := r.Width, r.Height
	if r.InitImage != nil {
		cw, ch := r.canvasSize()
		w, h = orDefault(w, cw), orDefault(h, ch)
	}
	switch {
	case w <= 0 || h <= 0 || w%8 != 0 || h%8 != 0:
		return fmt.Errorf("pipeline: size %dx%d: width and height must be positive multiples of 8", w, h)
	case r.Steps < 1 || r.Steps > 1000:
		return fmt.Errorf("pipeline: steps %d: must be between 1 and 1000", r.Steps)
	case r.CFGScale < 0 || math.IsNaN(r.CFGScale):
		return fmt.Errorf("pipeline: cfg scale %v: must be 0 or more", r.CFGScale)
	case r.ClipSkip < 0:
		return fmt.Errorf("pipeline: clip skip %d: must be 0 or more", r.ClipSkip)
	}
	return r.validateInterp()
}

// orDefault returns v, or def when v is 0.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// validateImages checks the image inputs, the strength and the padding.
func (r Request) validateImages() error {
	if r.Strength < 0 || r.Strength > 1 || math.IsNaN(r.Strength) {
		return fmt.Errorf("pipeline: strength %v: must be in (0, 1] (0 means the default)", r.Strength)
	}
	p := r.Outpaint
	for _, side := range []struct {
		name string
		v    int
	}{{"left", p.Left}, {"top", p.Top}, {"right", p.Right}, {"bottom", p.Bottom}} {
		if side.v < 0 || side.v%8 != 0 {
			return fmt.Errorf("pipeline: outpaint %s %d: must be a multiple of 8 pixels, 0 or more", side.name, side.v)
		}
	}
	if r.InitImage == nil {
		switch {
		case r.Mask != nil:
			return fmt.Errorf("pipeline: a mask needs an init image")
		case !p.IsZero():
			return fmt.Errorf("pipeline: outpainting needs an init image")
		case r.Strength != 0:
			return fmt.Errorf("pipeline: strength %v: needs an init image", r.Strength)
		}
		return nil
	}
	ib := r.InitImage.Bounds()
	if ib.Empty() {
		return fmt.Errorf("pipeline: init image is empty")
	}
	if r.Mask != nil {
		if mb := r.Mask.Bounds(); mb.Dx() != ib.Dx() || mb.Dy() != ib.Dy() {
			return fmt.Errorf("pipeline: mask is %dx%d, init image %dx%d: they must be the same size",
				mb.Dx(), mb.Dy(), ib.Dx(), ib.Dy())
		}
	}
	if cw, ch := r.canvasSize(); (r.Width != 0 && r.Width != cw) || (r.Height != 0 && r.Height != ch) {
		return fmt.Errorf("pipeline: size %dx%d: the init image is %dx%d and outpainting adds %dx%d, so the output is %dx%d (leave width and height 0 for that)",
			r.Width, r.Height, ib.Dx(), ib.Dy(), p.Left+p.Right, p.Top+p.Bottom, cw, ch)
	}
	return nil
}

// validateInterp checks an in-between frame's key and weight.
func (r Request) validateInterp() error {
	in := r.Interp
	if in == nil {
		return nil
	}
	if math.IsNaN(in.T) || in.T < 0 || in.T > 1 {
		return fmt.Errorf("pipeline: interpolation weight %v: must be in [0, 1]", in.T)
	}
	if r.InitImage != nil {
		return fmt.Errorf("pipeline: interpolation with image inputs is not supported: an in-between frame starts from noise")
	}
	return nil
}
