package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// resultsLoop follows the RESULTS stream. Each batch is applied in memory,
// written to etcd, and only then acknowledged: a crash in between replays
// the batch, and applying a result twice changes nothing.
func (c *Coordinator) resultsLoop(ctx context.Context) error {
	cons, err := c.js.Consumer(ctx, wire.ResultsStream, wire.ResultsConsumer)
	if err != nil {
		return fmt.Errorf("coordinator: results consumer: %w", err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(c.opts.ResultBatch, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("fetching results failed", "error", err)
				sleepCtx(ctx, 500*time.Millisecond)
			}
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			continue
		}
		finished := c.applyResults(msgs)
		if err := c.persist(ctx); err != nil {
			c.log.Warn("writing results to etcd failed; they will be redelivered", "error", err)
			for _, m := range msgs {
				_ = m.NakWithDelay(time.Second)
			}
			sleepCtx(ctx, 500*time.Millisecond)
			continue
		}
		for _, m := range msgs {
			_ = m.Ack()
		}
		for _, id := range finished {
			go c.finalize(ctx, id)
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// applyResults applies msgs and returns the jobs whose tasks all ended.
func (c *Coordinator) applyResults(msgs []jetstream.Msg) []string {
	var exclusions []wire.Exclusion
	var finished []string
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		for _, e := range exclusions {
			go c.exclude(e)
		}
	}()
	touched := map[*job]bool{}
	for _, m := range msgs {
		var r wire.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			c.log.Error("dropping unreadable result", "subject", m.Subject(), "error", err)
			continue
		}
		j, ok := c.jobs[r.JobID]
		if ok && j.tasks == nil && r.OK() && j.rec.State != wire.JobCancelled &&
			j.rec.FinishedAt != nil && r.FinishedAt.After(*j.rec.FinishedAt) {
			// A run that finished after the job ended: the task was
			// rendered again. Counted, never applied. (A result seen again
			// after a coordinator crash finished before the end.)
			j.rec.LateResults++
			j.recDirty = true
			c.log.Warn("task rendered again after the job ended", "job_id", r.JobID, "task_id", r.TaskID, "node_id", r.NodeID, "delivery", r.Delivery)
			continue
		}
		if !ok || j.tasks == nil || wire.JobFinished(j.rec.State) {
			continue
		}
		i, ok := j.byID[r.TaskID]
		if !ok {
			c.log.Warn("result for unknown task", "job_id", r.JobID, "task_id", r.TaskID)
			continue
		}
		if e := c.applyResult(j, i, &r); e != nil {
			exclusions = append(exclusions, *e)
		}
		touched[j] = true
	}
	for j := range touched {
		j.skipAssembly()
		j.notify()
		if j.allTasksEnded() && !j.finalizing {
			finished = append(finished, j.rec.ID)
		}
	}
	return finished
}

// applyResult applies one result to task i of j and returns an exclusion to
// record, if the node crossed the failure threshold. Call with c.mu held.
func (c *Coordinator) applyResult(j *job, i int, r *wire.Result) *wire.Exclusion {
	tr := &j.trecs[i]
	t := &j.tasks[i]
	delete(j.running, i)
	if tr.State == wire.TaskDone && r.OK() && !sameRun(tr.Result, r) {
		// Rendered twice: the task was handed out again while it ran.
		tr.Renders++
		j.markTask(i)
		c.log.Warn("task rendered again", "job_id", j.rec.ID, "task_id", t.ID, "node_id", r.NodeID, "renders", tr.Renders)
		return nil
	}
	if tr.State == wire.TaskDone || tr.State == wire.TaskFailed || tr.State == wire.TaskCancelled {
		return nil // a replayed result, or a failure after the end
	}
	log := c.log.With("job_id", j.rec.ID, "task_id", t.ID, "node_id", r.NodeID)
	if r.OK() {
		if err := checkFrames(t, r); err != nil {
			r.Error = &wire.Error{Code: wire.CodeInvalidTask, Message: "node reported a bad result: " + err.Error()}
			r.Retryable = ptr(true)
		} else {
			c.metrics.result(t, r, false)
			if tr.State == wire.TaskRetryWait {
				j.retryWaiting--
			}
			tr.State, tr.Node, tr.Result, tr.Error, tr.NotBefore, tr.Renders = wire.TaskDone, r.NodeID, r, nil, nil, 1
			j.rec.TasksDone++
			j.rec.FramesDone += len(t.Frames)
			j.rec.GPUSeconds += r.GPUSeconds
			if r.Price != nil {
				j.rec.Cost.Add(r.Price.Cost(r.GPUSeconds), r.Price.Currency)
			}
			if j.rec.State == wire.JobQueued {
				j.rec.State = wire.JobRunning
			}
			j.markTask(i)
			return nil
		}
	}
	// A failure.
	if tr.FailedNodes == nil {
		tr.FailedNodes = map[string]int{}
	}
	tr.FailedNodes[r.NodeID]++
	tr.Failures++
	tr.Node, tr.Error = r.NodeID, r.Error
	j.markTask(i)
	excl := c.noteFailure(r.NodeID, t.FailureKind(), r.Error)
	current := r.Attempt >= tr.Attempt
	giveUp := !r.CanRetry() || tr.Failures > j.rec.Spec.Retries() || len(tr.FailedNodes) >= c.opts.MaxNodeFailures
	c.metrics.result(t, r, giveUp)
	switch {
	case giveUp:
		if tr.State == wire.TaskRetryWait {
			j.retryWaiting--
		}
		tr.State, tr.NotBefore = wire.TaskFailed, nil
		tr.PriorRuns = tr.Run(r) // every run, for the manifest
		j.rec.TasksFailed++
		j.rec.FramesFailed += len(t.Frames)
		log.Warn("task failed", "code", r.Error.Code, "message", r.Error.Message, "failures", tr.Failures, "nodes", len(tr.FailedNodes))
	case current && tr.State != wire.TaskRetryWait:
		// Retry: a new attempt after a backoff, avoiding the nodes it failed on.
		backoff := c.backoff(tr.Failures)
		nb := c.opts.Now().Add(backoff)
		tr.State, tr.NotBefore = wire.TaskRetryWait, &nb
		tr.PriorRuns = tr.Run(r)
		tr.Attempt++
		t.Attempt = tr.Attempt
		t.ExcludeNodes = failedNodes(*tr)
		j.retryWaiting++
		log.Info("task will be retried", "code", r.Error.Code, "attempt", tr.Attempt, "backoff", backoff)
	}
	return excl
}

// sameRun reports whether two results report the same run of a task (a
// result seen twice), rather than two runs.
func sameRun(a, b *wire.Result) bool {
	return a != nil && a.NodeID == b.NodeID && a.Attempt == b.Attempt && a.Delivery == b.Delivery && a.StartedAt.Equal(b.StartedAt)
}

// Bounds on the numbers a node reports for one task. The coordinator sums
// them into the job record and manifest, which must stay encodable (JSON
// has no Inf: a record that fails to encode is written empty and lost at
// the next restart); a time or a price past these is a broken node.
const (
	maxTaskGPUSeconds = 1e7 // 115 days
	maxPricePerHour   = 1e6
)

// checkNumbers refuses device times and prices that no run has.
func checkNumbers(r *wire.Result) error {
	bad := func(v, max float64) bool { return !(v >= 0 && v <= max) }
	if bad(r.GPUSeconds, maxTaskGPUSeconds) {
		return fmt.Errorf("gpu_seconds %g outside 0..%g", r.GPUSeconds, maxTaskGPUSeconds)
	}
	if r.Price != nil && bad(r.Price.PerHour, maxPricePerHour) {
		return fmt.Errorf("price per hour %g outside 0..%g", r.Price.PerHour, maxPricePerHour)
	}
	for _, f := range r.Frames {
		if bad(f.GPUSeconds, maxTaskGPUSeconds) {
			return fmt.Errorf("frame %d: gpu_seconds %g outside 0..%g", f.Index, f.GPUSeconds, maxTaskGPUSeconds)
		}
	}
	return nil
}

// checkFrames verifies that a successful result covers exactly the task's
// frames with device times and a price in range (checkNumbers), and that
// an assemble task's result holds the GIF.
func checkFrames(t *wire.Task, r *wire.Result) error {
	if err := checkNumbers(r); err != nil {
		return err
	}
	if a := t.Assemble; a != nil {
		for _, o := range r.Outputs {
			if o.Key == a.GIFKey {
				return nil
			}
		}
		return fmt.Errorf("no %s among the outputs", wire.AnimationGIF)
	}
	if len(r.Frames) != len(t.Frames) {
		return fmt.Errorf("%d frames reported, task has %d", len(r.Frames), len(t.Frames))
	}
	seen := make(map[int]bool, len(r.Frames))
	for _, f := range r.Frames {
		seen[f.Index] = true
	}
	for _, f := range t.Frames {
		if !seen[f.Index] {
			return fmt.Errorf("frame %d missing", f.Index)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// backoff is RetryBase doubled per earlier failure, at most RetryMax.
func (c *Coordinator) backoff(failures int) time.Duration {
	d := c.opts.RetryBase
	for k := 1; k < failures && d < c.opts.RetryMax; k++ {
		d *= 2
	}
	return min(d, c.opts.RetryMax)
}

// noteFailure counts a failure of kind on node and returns an exclusion
// once the node failed ExcludeAfter times within ExcludeWindow. Failures
// that say nothing about the node (cancelled, draining) do not count.
// Call with c.mu held.
func (c *Coordinator) noteFailure(node, kind string, e *wire.Error) *wire.Exclusion {
	if e != nil && (e.Code == wire.CodeCancelled || e.Code == wire.CodeNodeDraining) {
		return nil
	}
	now := c.opts.Now()
	if c.failures[node] == nil {
		c.failures[node] = map[string][]time.Time{}
	}
	var recent []time.Time
	for _, t := range c.failures[node][kind] {
		if now.Sub(t) < c.opts.ExcludeWindow {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	c.failures[node][kind] = recent
	if len(recent) < c.opts.ExcludeAfter {
		return nil
	}
	c.failures[node][kind] = nil
	reason := "repeated failures"
	if e != nil {
		reason = fmt.Sprintf("%d failures in %s, last %s: %s", len(recent), c.opts.ExcludeWindow, e.Code, e.Message)
	}
	return &wire.Exclusion{NodeID: node, Kind: kind, Failures: len(recent), Reason: reason, Since: now, Until: now.Add(c.opts.ExcludeFor)}
}

// exclude records e in etcd under a lease that ends the exclusion.
func (c *Coordinator) exclude(e wire.Exclusion) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := c.etcd.Grant(ctx, int64(c.opts.ExcludeFor/time.Second)+1)
	if err == nil {
		b, _ := json.Marshal(e)
		_, err = c.leaderTxn(ctx, nil, clientv3.OpPut(wire.ExclusionKey(e.NodeID, e.Kind), string(b), clientv3.WithLease(lease.ID)))
	}
	if err != nil {
		c.log.Error("recording exclusion failed", "node_id", e.NodeID, "kind", e.Kind, "error", err)
		return
	}
	c.log.Warn("node excluded", "node_id", e.NodeID, "kind", e.Kind, "until", e.Until, "reason", e.Reason)
}

// onProgress routes a node's progress event to the job's listeners and
// marks the task running.
func (c *Coordinator) onProgress(m *nats.Msg) {
	var p wire.Progress
	if err := json.Unmarshal(m.Data, &p); err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	j, ok := c.jobs[p.JobID]
	if !ok || j.tasks == nil {
		return
	}
	if i, ok := j.byID[p.TaskID]; ok && p.Stage != wire.StageDone && j.trecs[i].State == wire.TaskQueued {
		if _, was := j.running[i]; !was {
			j.running[i] = p.NodeID
			j.notify()
		}
	}
	for l := range j.listeners {
		l.sendProgress(p)
	}
}

// finalizeReady finalizes jobs whose tasks all ended before a restart.
func (c *Coordinator) finalizeReady() {
	c.mu.Lock()
	var ids []string
	for id, j := range c.jobs {
		if j.allTasksEnded() && !wire.JobFinished(j.rec.State) {
			ids = append(ids, id)
		}
	}
	c.mu.Unlock()
	for _, id := range ids {
		go c.finalize(context.Background(), id)
	}
}

// finalize writes job id's manifest to S3, then marks the job done (or
// failed, when frames failed) in etcd. For a cancelled job it writes the
// manifest of the frames done so far. It is safe to run twice.
func (c *Coordinator) finalize(ctx context.Context, id string) {
	c.mu.Lock()
	j, ok := c.jobs[id]
	if !ok || j.tasks == nil || j.finalizing {
		c.mu.Unlock()
		return
	}
	j.finalizing = true
	now := c.opts.Now()
	m := c.manifest(j, now)
	c.mu.Unlock()

	err := c.putManifest(ctx, m)
	c.mu.Lock()
	j.finalizing = false
	if err != nil {
		c.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		c.log.Error("writing manifest failed; will retry", "job_id", id, "error", err)
		time.AfterFunc(2*time.Second, func() { c.finalize(ctx, id) })
		return
	}
	if j.rec.State != wire.JobCancelled {
		j.rec.State = finalState(j)
		if j.rec.State == wire.JobFailed {
			j.rec.Error = fmt.Sprintf("%d of %d frames failed", j.rec.FramesFailed, m.FramesTotal)
			if j.rec.FramesFailed == 0 {
				j.rec.Error = "the animation could not be assembled"
			}
		}
		j.rec.FinishedAt = &now
	}
	j.rec.ManifestKey = wire.ManifestKey(id)
	c.mu.Unlock()
	c.persistFinished(ctx, j)
	if j.rec.State == wire.JobCancelled {
		go c.sweepCancelled(context.WithoutCancel(ctx), id)
	}
	c.mu.Lock()
	j.notify()
	j.tasks, j.byID, j.trecs, j.running = nil, nil, nil, nil
	j.closeListeners()
	state := j.rec.State
	c.mu.Unlock()
	c.log.Info("job finished", "job_id", id, "state", state, "frames", len(m.Frames), "failed", len(m.Failed), "wall_seconds", m.WallSeconds)
}

// finalState is the state j ends in: cancelled, failed when frames failed,
// otherwise done. Call with c.mu held.
func finalState(j *job) string {
	switch {
	case j.rec.State == wire.JobCancelled:
		return wire.JobCancelled
	case j.rec.FramesFailed > 0 || j.rec.TasksFailed > 0:
		return wire.JobFailed
	}
	return wire.JobDone
}

// manifest builds j's manifest from its task records, with the state the
// job ends in. Call with c.mu held.
func (c *Coordinator) manifest(j *job, now time.Time) wire.Manifest {
	fin := now
	if j.rec.FinishedAt != nil {
		fin = *j.rec.FinishedAt
	}
	m := wire.Manifest{
		JobID: j.rec.ID, State: finalState(j), Spec: j.rec.Spec, CreatedAt: j.rec.CreatedAt, FinishedAt: fin,
		WallSeconds: fin.Sub(j.rec.CreatedAt).Seconds(), FramesTotal: j.rec.Spec.TotalFrames(),
		Nodes: map[string]int{}, Frames: make([]wire.ManifestFrame, 0, j.rec.FramesDone),
	}
	for i, tr := range j.trecs {
		t := &j.tasks[i]
		if mt, ok := manifestTask(t, &tr); ok {
			m.Tasks = append(m.Tasks, mt)
		}
		switch {
		case tr.State == wire.TaskDone && tr.Result != nil && t.Assemble != nil:
			m.GPUSeconds += tr.Result.GPUSeconds
			m.Outputs = append(m.Outputs, tr.Result.Outputs...)
			m.Notes = append(m.Notes, tr.Result.Notes...)
		case tr.State == wire.TaskDone && tr.Result != nil:
			r := tr.Result
			m.GPUSeconds += r.GPUSeconds
			if r.Price != nil {
				m.Cost.Add(r.Price.Cost(r.GPUSeconds), r.Price.Currency)
			}
			per := r.GPUSeconds / float64(len(t.Frames))
			byIndex := map[int]wire.FrameResult{}
			for _, f := range r.Frames {
				byIndex[f.Index] = f
			}
			for _, f := range t.Frames {
				fr := byIndex[f.Index]
				secs := fr.GPUSeconds
				if secs == 0 {
					secs = per
				}
				m.Frames = append(m.Frames, wire.ManifestFrame{
					Index: f.Index, Key: f.Key, Prompt: f.Prompt, Seed: f.Seed, Node: r.NodeID,
					GPU: r.GPU, TaskID: t.ID, Attempt: tr.Run(r), RenderMS: fr.RenderMS, GPUSeconds: secs,
					Cost: r.Price.Cost(secs),
				})
				m.Nodes[r.NodeID]++
			}
		case tr.State == wire.TaskFailed:
			e := wire.Error{Code: wire.CodeTaskFailed, Message: "retries exhausted"}
			if tr.Error != nil {
				e = *tr.Error
			}
			if t.Assemble != nil {
				m.Notes = append(m.Notes, "animation: "+e.Message)
			}
			for _, f := range t.Frames {
				m.Failed = append(m.Failed, wire.FailedFrame{Index: f.Index, TaskID: t.ID, Error: e})
			}
		}
	}
	if m.State == wire.JobCancelled {
		m.Notes = append(m.Notes, fmt.Sprintf("cancelled: the %d frames rendered before the cancel are listed; frames of tasks still rendering then are deleted", len(m.Frames)))
	}
	sort.Slice(m.Frames, func(a, b int) bool { return m.Frames[a].Index < m.Frames[b].Index })
	if len(m.Frames) > 0 && m.Cost.Currency != "" {
		m.CostPerImage = m.Cost.Amount / float64(len(m.Frames))
	}
	return m
}

// manifestTask records a task that ran to an end (done or failed).
func manifestTask(t *wire.Task, tr *wire.TaskRecord) (wire.ManifestTask, bool) {
	if tr.State != wire.TaskDone && tr.State != wire.TaskFailed {
		return wire.ManifestTask{}, false
	}
	mt := wire.ManifestTask{ID: t.ID, State: tr.State, Node: tr.Node, Attempt: tr.PriorRuns,
		Renders: tr.Renders, FailedNodes: tr.FailedNodes, Error: tr.Error}
	if len(t.Frames) > 0 {
		mt.Frames = [2]int{t.Frames[0].Index, t.Frames[len(t.Frames)-1].Index}
	}
	if r := tr.Result; r != nil && tr.State == wire.TaskDone {
		mt.Attempt, mt.StartedAt, mt.FinishedAt, mt.Timings = tr.Run(r), r.StartedAt, r.FinishedAt, r.Timings
	}
	return mt, true
}
