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

// UploadInputs sends the local inputs read by spec.ReadLocalInputs and
// replaces the spec's paths with their input keys.
func (c *Client) UploadInputs(ctx context.Context, in *wire.LocalInputs, spec *wire.JobSpec) error {
	if in == nil {
		return nil
	}
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
