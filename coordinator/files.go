package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
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
	_, err = c.s3.PutObject(ctx, c.opts.S3.Bucket, wire.ManifestKey(m.JobID), bytes.NewReader(b), int64(len(b)),
		minio.PutObjectOptions{ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("coordinator: put manifest of %s: %w", m.JobID, err)
	}
	return nil
}

// readManifest reads job's manifest from S3.
func (c *Coordinator) readManifest(ctx context.Context, job string) (wire.Manifest, error) {
	var m wire.Manifest
	obj, err := c.s3.GetObject(ctx, c.opts.S3.Bucket, wire.ManifestKey(job), minio.GetObjectOptions{})
	if err != nil {
		return m, fmt.Errorf("coordinator: manifest of %s: %w", job, err)
	}
	defer obj.Close()
	if err := json.NewDecoder(obj).Decode(&m); err != nil {
		return m, fmt.Errorf("coordinator: manifest of %s: %w", job, err)
	}
	return m, nil
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
