package coordinator

import (
	"context"
	"fmt"
	"image"
	"io"
	"net/http"

	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
)

// handleInput stores an image input under its content address. The path
// names the SHA-256 sum the client computed; the body must hash to it and
// decode as a PNG or JPEG within the limits. Storing the same bytes again
// is a no-op with the same answer.
func (c *Coordinator) handleInput(w http.ResponseWriter, r *http.Request) {
	sum := r.PathValue("sum")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, media.MaxInputBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge, fmt.Sprintf("an image input is limited to %d bytes", media.MaxInputBytes), nil)
		return
	}
	if got := media.SHA256Hex(body); got != sum {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, fmt.Sprintf("the body's SHA-256 is %s, not %s", got, sum), nil)
		return
	}
	in, err := media.DecodeInput("input", body)
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, err.Error(), nil)
		return
	}
	ref, err := c.putInput(r.Context(), body, in)
	if err != nil {
		c.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ref)
}

// putInput stores the bytes of the decoded image in under their content address.
func (c *Coordinator) putInput(ctx context.Context, body []byte, in *media.Input) (wire.InputRef, error) {
	key := wire.InputKey(media.SHA256Hex(body), in.Format)
	if err := c.s3.PutBytes(ctx, c.opts.S3.Bucket, key, body, "image/"+in.Format); err != nil {
		return wire.InputRef{}, fmt.Errorf("coordinator: store input: %w", err)
	}
	return wire.InputRef{Key: key, Width: in.Width, Height: in.Height}, nil
}

// checkInputs checks a spec's image inputs against the stored files: they
// exist, decode, and their sizes fit the spec. Problems come back as
// FieldErrors; a failing S3 as a plain error.
func (c *Coordinator) checkInputs(ctx context.Context, spec *wire.JobSpec) error {
	if !spec.HasInputs() {
		return nil
	}
	var fe wire.FieldErrors
	size := func(field, key string) (w, h int, err error) {
		obj, err := c.s3.GetObject(ctx, c.opts.S3.Bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return 0, 0, fmt.Errorf("coordinator: input %s: %w", key, err)
		}
		defer obj.Close()
		if _, err := obj.Stat(); err != nil {
			if minio.ToErrorResponse(err).Code == "NoSuchKey" {
				fe = append(fe, wire.FieldError{Field: field, Reason: key + " was never uploaded (farm submit uploads local files)"})
				return 0, 0, nil
			}
			return 0, 0, fmt.Errorf("coordinator: input %s: %w", key, err)
		}
		cfg, _, err := image.DecodeConfig(io.LimitReader(obj, media.MaxInputBytes))
		if err != nil {
			fe = append(fe, wire.FieldError{Field: field, Reason: key + " is not a readable image: " + err.Error()})
			return 0, 0, nil
		}
		return cfg.Width, cfg.Height, nil
	}
	iw, ih, err := size("init_image", spec.InitImage)
	if err != nil {
		return err
	}
	mw, mh := iw, ih
	if spec.Mask != "" {
		if mw, mh, err = size("mask", spec.Mask); err != nil {
			return err
		}
	}
	if len(fe) == 0 {
		fe = spec.CheckInputSizes(iw, ih, mw, mh)
	}
	if len(fe) > 0 {
		return fe
	}
	return nil
}
