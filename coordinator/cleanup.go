package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// sweepPoll is how often a sweep looks whether nodes still work on a
// cancelled job; sweepWait bounds that wait (a node's drain timeout is
// 2 minutes by default, and a node that dies drops its entry with its lease).
const (
	sweepPoll = 500 * time.Millisecond
	sweepWait = 10 * time.Minute
)

// sweepCancelled deletes the frames of cancelled job id that its manifest
// does not list: those of tasks that were rendering at the cancel. It first
// waits until no node works on the job, so that no upload lands after it,
// then records the sweep in the job record. The manifest lists what was
// rendered before the cancel; nothing else of the job stays in S3.
func (c *Coordinator) sweepCancelled(ctx context.Context, id string) {
	log := c.log.With("job_id", id)
	deadline := time.Now().Add(sweepWait)
	for {
		busy, err := c.nodesOnJob(ctx, id)
		if err == nil && busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			log.Warn("nodes still report the cancelled job; sweeping anyway", "nodes", busy, "error", err)
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(sweepPoll):
		}
	}
	var listed wire.FrameSet // the frames to keep
	kept := 0
	m, err := c.eachManifestLine(ctx, id, func(l wire.ManifestLine) error {
		if l.Frame != nil && listed.AddFrame(id, *l.Frame) {
			kept++
		}
		return nil
	})
	if err != nil {
		log.Error("sweep: no manifest", "error", err)
		return
	}
	keep := map[string]bool{wire.ManifestKey(id): true}
	for _, k := range m.Shards {
		keep[k] = true
	}
	for _, o := range m.Outputs {
		keep[o.Key] = true
	}
	n, err := c.removeObjects(ctx, wire.JobObjectsPrefix(id), func(key string) bool {
		if i, ok := wire.ParseFrameKey(id, key); ok {
			return listed.Has(i)
		}
		return keep[key]
	})
	if err != nil {
		log.Error("sweep failed", "error", err)
		return
	}
	c.mu.Lock()
	if j, ok := c.jobs[id]; ok {
		j.rec.Swept = true
		j.recDirty = true
	}
	c.mu.Unlock()
	if err := c.persist(ctx); err != nil {
		log.Warn("recording the sweep failed", "error", err)
	}
	log.Info("cancelled job swept", "deleted", n, "kept_frames", kept)
}

// nodesOnJob counts the live nodes whose entry says they work on job.
func (c *Coordinator) nodesOnJob(ctx context.Context, job string) (int, error) {
	nodes, err := c.readNodes(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range nodes {
		if e.CurrentJob == job {
			n++
		}
	}
	return n, nil
}

// removeObjects deletes the objects under prefix except those keep (when
// not nil) says to keep, and returns how many it deleted.
func (c *Coordinator) removeObjects(ctx context.Context, prefix string, keep func(key string) bool) (int, error) {
	objs := make(chan minio.ObjectInfo)
	var listErr error
	go func() {
		defer close(objs)
		for o := range c.s3.ListObjects(ctx, c.opts.S3.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if o.Err != nil {
				listErr = o.Err
				return
			}
			if keep == nil || !keep(o.Key) {
				objs <- o
			}
		}
	}()
	n := 0
	var errs []error
	for r := range c.s3.RemoveObjectsWithResult(ctx, c.opts.S3.Bucket, objs, minio.RemoveObjectsOptions{}) {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.ObjectName, r.Err))
			continue
		}
		n++
	}
	if listErr != nil {
		errs = append(errs, listErr)
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("coordinator: delete under %s: %w", prefix, err)
	}
	return n, nil
}

// deleteJob removes a finished job: every object under its prefix, then
// its record and cancel mark in etcd. An active job is a conflict.
func (c *Coordinator) deleteJob(ctx context.Context, id string) (int, error) {
	c.mu.Lock()
	if !c.leading {
		c.mu.Unlock()
		return 0, errNotLeader
	}
	j, ok := c.jobs[id]
	switch {
	case !ok:
		c.mu.Unlock()
		return 0, errNotFound
	case !wire.JobFinished(j.rec.State) || j.active():
		state := j.rec.State
		c.mu.Unlock()
		return 0, fmt.Errorf("%w: job %s is %s; cancel it first", errConflict, id, state)
	}
	c.mu.Unlock()
	n, err := c.removeObjects(ctx, wire.JobObjectsPrefix(id), nil)
	if err != nil {
		return n, err
	}
	if _, err := c.leaderTxn(ctx, nil, clientv3.OpDelete(wire.JobKey(id)), clientv3.OpDelete(wire.CancelledKey(id)),
		clientv3.OpDelete(wire.JobChunksPrefix(id), clientv3.WithPrefix())); err != nil {
		return n, err
	}
	c.mu.Lock()
	delete(c.jobs, id)
	c.mu.Unlock()
	c.log.Info("job deleted", "job_id", id, "objects", n)
	return n, nil
}
