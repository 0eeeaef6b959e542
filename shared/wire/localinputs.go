package wire

import (
	"strings"

	"github.com/latentfarm/latentfarm/shared/media"
)

// LocalInputs are a spec's image inputs read from local files, with their
// bytes for an upload.
type LocalInputs struct {
	Image, Mask         *media.Input
	ImageData, MaskData []byte
}

// ReadLocalInputs reads and checks the image files a spec names (paths in
// InitImage and Mask; input keys are left alone), as farm submit does
// before it uploads anything and a local render before it renders: the
// files decode, the mask has the image's size, an unset width and height
// come from the image (plus outpaint), and the sizes then agree. Every
// problem, an unreadable file included, is a field error. It returns nil
// inputs when the spec names no local image.
func (s *JobSpec) ReadLocalInputs() (*LocalInputs, FieldErrors) {
	var fe FieldErrors
	var in LocalInputs
	read := func(field, file string) (*media.Input, []byte) {
		if file == "" || ValidInputKey(file) {
			return nil, nil
		}
		img, data, err := media.ReadInput(file)
		if err != nil {
			fe.add(field, "%s", strings.TrimPrefix(err.Error(), "media: "))
		}
		return img, data
	}
	in.Image, in.ImageData = read("init_image", s.InitImage)
	in.Mask, in.MaskData = read("mask", s.Mask)
	if in.Image == nil {
		if in.Mask != nil && len(fe) == 0 {
			fe.add("mask", "a local mask needs a local init_image (%s)", truncateField(s.InitImage))
		}
		if in.Mask == nil && len(fe) == 0 {
			return nil, nil
		}
		return nil, fe
	}
	mw, mh := in.Image.Width, in.Image.Height
	if in.Mask != nil {
		mw, mh = in.Mask.Width, in.Mask.Height
	}
	if s.Width == 0 && s.Height == 0 {
		s.Width, s.Height = s.OutputSize(in.Image.Width, in.Image.Height)
	}
	fe = append(fe, s.CheckInputSizes(in.Image.Width, in.Image.Height, mw, mh)...)
	if len(fe) > 0 {
		return nil, fe
	}
	return &in, nil
}
