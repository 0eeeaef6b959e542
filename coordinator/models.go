package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
)

// maxListedModels bounds the known models named in a refusal.
const maxListedModels = 20

// checkModel refuses a spec whose model neither the model store nor any
// registered node has, listing the models that exist, unless the spec
// allows a pending model.
func (c *Coordinator) checkModel(ctx context.Context, spec *wire.JobSpec) error {
	if spec.AllowPendingModel {
		return nil
	}
	nodes, err := c.readNodes(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, n := range nodes {
		if n.HasModel(spec.Model) {
			return nil
		}
		for _, m := range append(n.ModelsOnDisk, n.ModelsLoaded...) {
			known[m] = true
		}
	}
	// The model store: models/<name>/model.json.
	if _, err := c.s3.StatObject(ctx, c.opts.S3.Bucket, wire.ModelManifestKey(spec.Model), minio.StatObjectOptions{}); err == nil {
		return nil
	} else if minio.ToErrorResponse(err).Code != "NoSuchKey" {
		return fmt.Errorf("coordinator: model store: %w", err)
	}
	for obj := range c.s3.ListObjects(ctx, c.opts.S3.Bucket, minio.ListObjectsOptions{Prefix: wire.ModelsPrefix}) {
		if obj.Err != nil {
			return fmt.Errorf("coordinator: model store: %w", obj.Err)
		}
		if name, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, wire.ModelsPrefix), "/"); ok {
			known[name] = true
		}
		if len(known) > maxListedModels {
			break
		}
	}
	names := make([]string, 0, len(known))
	for m := range known {
		names = append(names, m)
	}
	slices.Sort(names)
	list := "none"
	if len(names) > 0 {
		list = strings.Join(names, ", ")
	}
	return wire.FieldErrors{{Field: "model", Reason: fmt.Sprintf(
		"no registered node and not the model store has model %q (known: %s); farm model push adds it to the store, or allow_pending_model (farm submit --allow-pending-model) lets the job wait for a node that brings it",
		spec.Model, list)}}
}
