package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/latentfarm/latentfarm/coordinator/comfy"
	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
)

// mountComfy adds ComfyUI's API to the authenticated mux.
func (c *Coordinator) mountComfy(mux *http.ServeMux) {
	s, err := comfy.New(comfy.Options{Farm: comfyFarm{c}, Logger: c.log.Named("comfy"), Now: c.opts.Now})
	if err != nil {
		c.log.Error("the ComfyUI API is off", "error", err)
		return
	}
	s.Mount(mux, c.leaderOnly)
}

// comfyFarm is the farm as the ComfyUI API sees it.
type comfyFarm struct{ c *Coordinator }

var _ comfy.Farm = comfyFarm{}

// comfyErr marks the errors ComfyUI's API answers as "not found".
func comfyErr(err error) error {
	var s3err minio.ErrorResponse
	if errors.Is(err, errNotFound) || (errors.As(err, &s3err) && s3err.Code == "NoSuchKey") {
		return fmt.Errorf("%w: %w", comfy.ErrNotFound, err)
	}
	return err
}

func (f comfyFarm) Leading() bool { return f.c.Leading() }

func (f comfyFarm) Submit(ctx context.Context, spec wire.JobSpec) (wire.JobStatus, error) {
	return f.c.submit(ctx, spec)
}

func (f comfyFarm) Job(_ context.Context, id string) (wire.JobStatus, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	j, ok := c.jobs[id]
	if !ok {
		return wire.JobStatus{}, fmt.Errorf("%w: job %s", comfy.ErrNotFound, id)
	}
	return c.status(j, false), nil
}

func (f comfyFarm) Jobs(context.Context) ([]wire.JobStatus, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]wire.JobStatus, 0, len(c.jobs))
	for _, j := range c.jobs {
		out = append(out, c.status(j, false))
	}
	return out, nil
}

func (f comfyFarm) Cancel(ctx context.Context, id string) error {
	_, err := f.c.cancel(ctx, id)
	return comfyErr(err)
}

// Follow streams a job's events as GET /v1/jobs/{id}/events does.
func (f comfyFarm) Follow(ctx context.Context, id string) (<-chan wire.JobEvent, error) {
	c := f.c
	l := newListener()
	c.mu.Lock()
	j, ok := c.jobs[id]
	if !ok {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: job %s", comfy.ErrNotFound, id)
	}
	st := c.status(j, false)
	finished := !j.active()
	if !finished {
		j.listeners[l] = struct{}{}
	}
	c.mu.Unlock()
	out := make(chan wire.JobEvent, 64)
	send := func(ev wire.JobEvent) bool {
		ev.Time = c.opts.Now()
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(out)
		defer func() {
			c.mu.Lock()
			delete(j.listeners, l)
			c.mu.Unlock()
		}()
		if !send(wire.JobEvent{Type: wire.EventStatus, Job: &st}) {
			return
		}
		if finished {
			send(wire.JobEvent{Type: wire.EventEnd, Job: &st})
			return
		}
		c.streamEvents(ctx, j, l, send)
	}()
	return out, nil
}

func (f comfyFarm) Manifest(ctx context.Context, id string) (wire.Manifest, error) {
	m, err := f.c.readManifest(ctx, id)
	return m, comfyErr(err)
}

func (f comfyFarm) OpenFrame(ctx context.Context, id string, index int) (io.ReadCloser, int64, error) {
	c := f.c
	total, _ := c.frameCount(id)
	if index < 0 || index >= total {
		return nil, 0, fmt.Errorf("%w: no frame %d of job %s", comfy.ErrNotFound, index, id)
	}
	body, size, err := c.openObject(ctx, wire.FrameKey(id, index))
	return body, size, comfyErr(err)
}

func (f comfyFarm) PutInput(ctx context.Context, data []byte) (wire.InputRef, error) {
	in, err := media.DecodeInput("input", data)
	if err != nil {
		return wire.InputRef{}, fmt.Errorf("coordinator: %w", err)
	}
	return f.c.putInput(ctx, data, in)
}

func (f comfyFarm) OpenInput(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	if !wire.ValidInputKey(key) {
		return nil, 0, fmt.Errorf("%w: %q is not an input key", comfy.ErrNotFound, key)
	}
	body, size, err := f.c.openObject(ctx, key)
	return body, size, comfyErr(err)
}

func (f comfyFarm) PutJobFile(ctx context.Context, id, name string, data []byte) error {
	c := f.c
	if err := c.s3.PutBytes(ctx, c.opts.S3.Bucket, wire.OutputKey(id, name), data, "application/json"); err != nil {
		return fmt.Errorf("coordinator: put %s of %s: %w", name, id, err)
	}
	return nil
}

func (f comfyFarm) ReadJobFile(ctx context.Context, id, name string) ([]byte, error) {
	body, _, err := f.c.openObject(ctx, wire.OutputKey(id, name))
	if err != nil {
		return nil, comfyErr(err)
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, wire.MaxSpecBytes*8))
	if err != nil {
		return nil, fmt.Errorf("coordinator: read %s of %s: %w", name, id, err)
	}
	return data, nil
}

func (f comfyFarm) Nodes(ctx context.Context) ([]wire.NodeInfo, error) { return f.c.readNodes(ctx) }

// Models lists the models on the nodes' disks and in their memory, and
// those in the model store.
func (f comfyFarm) Models(ctx context.Context) ([]string, error) {
	c := f.c
	nodes, err := c.readNodes(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		for _, m := range append(append([]string{}, n.ModelsOnDisk...), n.ModelsLoaded...) {
			seen[m] = true
		}
	}
	for obj := range c.s3.ListObjects(ctx, c.opts.S3.Bucket, minio.ListObjectsOptions{Prefix: wire.ModelsPrefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("coordinator: list models: %w", obj.Err)
		}
		name, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, wire.ModelsPrefix), "/model.json")
		if ok && !strings.Contains(name, "/") {
			seen[name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out, nil
}
