package coordinator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
)

// putManifest writes m to ManifestKey(m.JobID).
func (c *Coordinator) putManifest(ctx context.Context, m wire.Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("coordinator: encode manifest: %w", err)
	}
	if err := c.s3.PutBytes(ctx, c.opts.S3.Bucket, wire.ManifestKey(m.JobID), b, "application/json"); err != nil {
		return fmt.Errorf("coordinator: put manifest of %s: %w", m.JobID, err)
	}
	return nil
}

// open opens key in the farm's bucket (a wire.OpenFunc).
func (c *Coordinator) open(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := c.s3.GetObject(ctx, c.opts.S3.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	// GetObject is lazy: a missing object shows at the first read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, err
	}
	return obj, nil
}

// readManifest reads job's manifest whole (wire.ReadManifest): for the
// views of small jobs (ComfyUI history, file lists).
func (c *Coordinator) readManifest(ctx context.Context, job string) (wire.Manifest, error) {
	m, err := wire.ReadManifest(ctx, c.open, job)
	if err != nil {
		return m, fmt.Errorf("coordinator: %w", err)
	}
	return m, nil
}

// eachManifestLine reads job's manifest summary and walks its shards,
// holding one line at a time.
func (c *Coordinator) eachManifestLine(ctx context.Context, job string, fn func(wire.ManifestLine) error) (wire.Manifest, error) {
	m, err := wire.ReadManifestSummary(ctx, c.open, job)
	if err == nil {
		err = wire.EachManifestLine(ctx, c.open, &m, fn)
	}
	if err != nil {
		return m, fmt.Errorf("coordinator: %w", err)
	}
	return m, nil
}

// errViewFull ends a walk of the shards once a list of the view is full.
var errViewFull = errors.New("coordinator: manifest view list full")

// writeManifestView writes job's manifest as one JSON object, frames,
// failed frames and tasks streamed from the shards (a pass over them for
// each), so that a million-frame manifest is never held whole. limit > 0
// keeps each list to its first limit entries (frames_total and the
// summary still tell the whole).
func (c *Coordinator) writeManifestView(ctx context.Context, w io.Writer, job string, limit int) error {
	m, err := wire.ReadManifestSummary(ctx, c.open, job)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	head, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("coordinator: encode manifest: %w", err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(head[:len(head)-1]) // the summary's fields, without its closing brace
	for _, part := range []struct {
		name string
		pick func(wire.ManifestLine) (any, bool)
	}{
		{"frames", func(l wire.ManifestLine) (any, bool) { return l.Frame, l.Frame != nil }},
		{"failed", func(l wire.ManifestLine) (any, bool) { return l.Failed, l.Failed != nil }},
		{"tasks", func(l wire.ManifestLine) (any, bool) { return l.Task, l.Task != nil }},
	} {
		fmt.Fprintf(bw, ",%q:[", part.name)
		n := 0
		err := wire.EachManifestLine(ctx, c.open, &m, func(l wire.ManifestLine) error {
			v, ok := part.pick(l)
			if !ok {
				return nil
			}
			if limit > 0 && n >= limit {
				return errViewFull
			}
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			if n++; n > 1 {
				bw.WriteByte(',')
			}
			_, err = bw.Write(b)
			return err
		})
		if err != nil && !errors.Is(err, errViewFull) {
			return fmt.Errorf("coordinator: %w", err)
		}
		bw.WriteByte(']')
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// presign returns a presigned GET URL of key.
func (c *Coordinator) presign(ctx context.Context, key string) (string, error) {
	u, err := c.s3.PresignedGetObject(ctx, c.opts.S3.Bucket, key, c.opts.PresignTTL, url.Values{})
	if err != nil {
		return "", fmt.Errorf("coordinator: presign %s: %w", key, err)
	}
	return u.String(), nil
}

// openObject opens key for proxying; the caller closes it.
func (c *Coordinator) openObject(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	obj, err := c.s3.GetObject(ctx, c.opts.S3.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("coordinator: get %s: %w", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, 0, fmt.Errorf("coordinator: get %s: %w", key, err)
	}
	return obj, st.Size, nil
}
