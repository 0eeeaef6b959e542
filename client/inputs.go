package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// UploadInput stores an image input on the farm under its content address.
func (c *Client) UploadInput(ctx context.Context, data []byte) (wire.InputRef, error) {
	var out wire.InputRef
	err := c.do(ctx, http.MethodPut, "/v1/inputs/"+media.SHA256Hex(data), data, &out)
	return out, err
}

// LocalInputs are a spec's image inputs read from local files.
type LocalInputs struct {
	Image, Mask         *media.Input
	ImageData, MaskData []byte
}

// ReadInputs reads and checks the local image files a spec names (paths in
// InitImage and Mask; input keys are left alone), fills the spec's width and
// height from the image when they are unset, and checks the sizes. Nothing
// is sent: a bad file is refused before anything exists on the farm. It
// returns nil when the spec has no local inputs.
func ReadInputs(spec *wire.JobSpec) (*LocalInputs, error) {
	if spec.InitImage == "" || wire.ValidInputKey(spec.InitImage) {
		if spec.Mask != "" && !wire.ValidInputKey(spec.Mask) {
			return nil, fmt.Errorf("mask %s: a mask needs a local init_image too", spec.Mask)
		}
		return nil, nil
	}
	var in LocalInputs
	var err error
	if in.Image, in.ImageData, err = media.ReadInput(spec.InitImage); err != nil {
		return nil, err
	}
	mw, mh := in.Image.Width, in.Image.Height
	if spec.Mask != "" {
		if in.Mask, in.MaskData, err = media.ReadInput(spec.Mask); err != nil {
			return nil, err
		}
		if err := media.CheckMask(in.Image, in.Mask); err != nil {
			return nil, err
		}
		mw, mh = in.Mask.Width, in.Mask.Height
	}
	if spec.Width == 0 && spec.Height == 0 {
		spec.Width, spec.Height = spec.OutputSize(in.Image.Width, in.Image.Height)
	}
	if fe := spec.CheckInputSizes(in.Image.Width, in.Image.Height, mw, mh); len(fe) > 0 {
		return nil, fe
	}
	return &in, nil
}

// Upload sends the inputs and replaces the spec's paths with their keys.
func (in *LocalInputs) Upload(ctx context.Context, c *Client, spec *wire.JobSpec) error {
	ref, err := c.UploadInput(ctx, in.ImageData)
	if err != nil {
		return fmt.Errorf("upload %s: %w", spec.InitImage, err)
	}
	spec.InitImage = ref.Key
	if in.Mask != nil {
		ref, err := c.UploadInput(ctx, in.MaskData)
		if err != nil {
			return fmt.Errorf("upload %s: %w", spec.Mask, err)
		}
		spec.Mask = ref.Key
	}
	return nil
}
