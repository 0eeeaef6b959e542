package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// resultsFlushEvery bounds how long applied results wait for their etcd
// write (and their ack): results are written ResultBatch at a time, or
// after this, or at once when a job's tasks have all ended. Each write puts
// one manifest shard per chunk it touched, so batching keeps a big job's
// shards few.
const resultsFlushEvery = time.Second

// resultsLoop follows the RESULTS stream. Results are applied in memory as
// they arrive, written to etcd (and their manifest lines to S3) a batch at
// a time, and only then acknowledged: a crash in between replays them, and
// applying a result twice changes nothing.
func (c *Coordinator) resultsLoop(ctx context.Context) error {
	cons, err := c.js.Consumer(ctx, wire.ResultsStream, wire.ResultsConsumer)
	if err != nil {
		return fmt.Errorf("coordinator: results consumer: %w", err)
	}
	// A continuous pull: results arrive as nodes publish them, so the last
	// result of a job is applied when it comes, not when a fetch expires.
	it, err := cons.Messages(jetstream.PullMaxMessages(c.opts.ResultBatch))
	if err != nil {
		return fmt.Errorf("coordinator: results: %w", err)
	}
	defer func() { it.Stop() }()
	var (
		held     []jetstream.Msg // applied, not yet written
		finished []string
		since    time.Time // when the oldest held result was applied
	)
	for ctx.Err() == nil {
		wait := 250 * time.Millisecond
		if len(held) > 0 {
			wait = max(min(wait, time.Until(since.Add(resultsFlushEvery))), time.Millisecond)
		}
		msgs, err := nextResults(it, wait, c.opts.ResultBatch-len(held))
		if len(msgs) > 0 {
			if len(held) == 0 {
				since = time.Now()
			}
			finished = append(finished, c.applyResults(msgs)...)
			held = append(held, msgs...)
		}
		if err != nil {
			// Stopped under us (the consumer was deleted, or the
			// connection closed): start again after a pause.
			c.log.Warn("following results failed", "error", err)
			sleepCtx(ctx, 500*time.Millisecond)
			it.Stop()
			if it, err = cons.Messages(jetstream.PullMaxMessages(c.opts.ResultBatch)); err != nil {
				return fmt.Errorf("coordinator: results: %w", err)
			}
			continue
		}
		if len(held) == 0 || (len(held) < c.opts.ResultBatch && len(finished) == 0 && time.Since(since) < resultsFlushEvery) {
			continue
		}
		if err := c.persist(ctx); err != nil {
			c.log.Warn("writing results to etcd failed; they will be redelivered", "error", err)
			for _, m := range held {
				_ = m.NakWithDelay(time.Second)
			}
			held, finished = nil, nil
			sleepCtx(ctx, 500*time.Millisecond)
			continue
		}
		for _, m := range held {
			_ = m.Ack()
		}
		for _, id := range finished {
			go c.finalize(ctx, id)
		}
		held, finished = nil, nil
	}
	return nil
}

// resultsGap is how long a run of results may pause before the results
// read so far are applied.
const resultsGap = 2 * time.Millisecond

// nextResults waits up to wait for a result, then takes those that follow
// it closely, up to limit. No result within wait is not an error.
func nextResults(it jetstream.MessagesContext, wait time.Duration, limit int) ([]jetstream.Msg, error) {
	var msgs []jetstream.Msg
	for len(msgs) < limit {
		m, err := it.Next(jetstream.NextMaxWait(wait))
		if errors.Is(err, nats.ErrTimeout) {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
		wait = resultsGap
	}
	return msgs, nil
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
		if ok && !j.active() && r.OK() && j.rec.State != wire.JobCancelled &&
			j.rec.FinishedAt != nil && r.FinishedAt.After(*j.rec.FinishedAt) {
			// A run that finished after the job ended: the task was
			// rendered again. Counted, never applied. (A result seen again
			// after a coordinator crash finished before the end.)
			j.rec.LateResults++
			j.recDirty = true
			c.log.Warn("task rendered again after the job ended", "job_id", r.JobID, "task_id", r.TaskID, "node_id", r.NodeID, "delivery", r.Delivery)
			continue
		}
		if !ok || !j.active() || wire.JobFinished(j.rec.State) {
			continue
		}
		i, ok := j.plan.Index(r.TaskID)
		if !ok {
			c.log.Warn("result for unknown task", "job_id", r.JobID, "task_id", r.TaskID)
			continue
		}
		if e := c.applyResult(j, i, &r); e != nil {
			exclusions = append(exclusions, *e)
		}
		if r.OK() && len(j.listeners) > 0 {
			p := wire.Progress{JobID: r.JobID, TaskID: r.TaskID, NodeID: r.NodeID, Stage: wire.StageDone,
				Step: r.Steps, Steps: r.Steps, Time: r.FinishedAt}
			for l := range j.listeners {
				l.sendProgress(p)
			}
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
	ch := j.chunkOf(i)
	k := i % wire.ChunkTasks
	delete(j.running, i)
	st := j.state[i]
	if st == tsDone && r.OK() && ch.rec.Run(k) != wire.RunID(r) {
		// Rendered twice: the task was handed out again while it ran.
		tr := j.ext(i)
		tr.Renders = max(tr.Renders, 1) + 1
		j.markTask(i)
		c.log.Warn("task rendered again", "job_id", j.rec.ID, "task_id", tr.ID, "node_id", r.NodeID, "renders", tr.Renders)
		return nil
	}
	if st == tsDone || st == tsFailed || st == tsCancelled {
		return nil // a replayed result, or a failure after the end
	}
	t := j.task(i)
	log := c.log.With("job_id", j.rec.ID, "task_id", t.ID, "node_id", r.NodeID)
	if r.OK() {
		if err := checkFrames(&t, r); err != nil {
			r.Error = &wire.Error{Code: wire.CodeInvalidTask, Message: "node reported a bad result: " + err.Error()}
			r.Retryable = ptr(true)
		} else {
			c.metrics.result(&t, r, false)
			if st == tsRetryWait {
				j.retryWaiting--
			}
			j.taskDone(i, &t, r)
			if j.rec.State == wire.JobQueued {
				j.rec.State = wire.JobRunning
			}
			return nil
		}
	}
	// A failure.
	tr := j.ext(i)
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
	c.metrics.result(&t, r, giveUp)
	switch {
	case giveUp:
		if st == tsRetryWait {
			j.retryWaiting--
		}
		tr.NotBefore = nil
		tr.PriorRuns = tr.Run(r) // every run, for the manifest
		j.taskFailed(i, &t)
		log.Warn("task failed", "code", r.Error.Code, "message", r.Error.Message, "failures", tr.Failures, "nodes", len(tr.FailedNodes))
	case current && st != tsRetryWait:
		// Retry: a new attempt after a backoff, avoiding the nodes it failed on.
		backoff := c.backoff(tr.Failures)
		nb := c.opts.Now().Add(backoff)
		tr.NotBefore = &nb
		tr.PriorRuns = tr.Run(r)
		tr.Attempt++
		j.setState(i, tsRetryWait)
		j.retryWaiting++
		log.Info("task will be retried", "code", r.Error.Code, "attempt", tr.Attempt, "backoff", backoff)
	}
	return excl
}

// taskDone records task i (t) rendered by r: its bit, run and sums in its
// chunk, its lines for the next manifest shard, the job's counts. Only an
// assembly keeps its record (the manifest's outputs come from its result).
// Call with c.mu held.
func (j *job) taskDone(i int, t *wire.Task, r *wire.Result) {
	ch := j.chunkOf(i)
	ch.rec.SetDone(i%wire.ChunkTasks, wire.RunID(r))
	var prior wire.TaskRecord
	if tr := ch.extra[i]; tr != nil {
		prior = *tr
		delete(ch.extra, i)
	}
	prior.State, prior.Node, prior.Error, prior.NotBefore, prior.Renders = wire.TaskDone, r.NodeID, nil, nil, 1
	if t.Assemble != nil {
		prior.ID, prior.Result = t.ID, r
		ch.extra[i] = &prior
	}
	j.state[i] = tsDone
	n := len(t.Frames)
	ch.rec.Frames += n
	ch.rec.GPUSeconds += r.GPUSeconds
	j.rec.TasksDone++
	j.rec.FramesDone += n
	j.rec.GPUSeconds += r.GPUSeconds
	if r.Price != nil {
		cost := r.Price.Cost(r.GPUSeconds)
		ch.rec.Cost.Add(cost, r.Price.Currency)
		j.rec.Cost.Add(cost, r.Price.Currency)
	}
	if n > 0 {
		if ch.rec.Nodes == nil {
			ch.rec.Nodes = map[string]int{}
		}
		ch.rec.Nodes[r.NodeID] += n
	}
	ch.addLines(frameLines(t, &prior, r)...)
	ch.addLines(wire.ManifestLine{Task: manifestTask(t, &prior, r)})
	j.markTask(i)
}

// taskFailed ends task i (t) as failed, with its lines for the manifest.
// Call with c.mu held.
func (j *job) taskFailed(i int, t *wire.Task) {
	tr := j.ext(i)
	j.setState(i, tsFailed)
	j.rec.TasksFailed++
	j.rec.FramesFailed += len(t.Frames)
	e := wire.Error{Code: wire.CodeTaskFailed, Message: "retries exhausted"}
	if tr.Error != nil {
		e = *tr.Error
	}
	ch := j.chunkOf(i)
	for _, f := range t.Frames {
		ch.addLines(wire.ManifestLine{Failed: &wire.FailedFrame{Index: f.Index, TaskID: t.ID, Error: e}})
	}
	ch.addLines(wire.ManifestLine{Task: manifestTask(t, tr, nil)})
	j.markTask(i)
}

// addLines appends manifest lines for the chunk's next shard.
func (ch *chunk) addLines(lines ...wire.ManifestLine) {
	for _, l := range lines {
		b, _ := json.Marshal(l)
		ch.lines = append(append(ch.lines, b...), '\n')
	}
}

// frameLines are the manifest lines of the frames r rendered of t.
func frameLines(t *wire.Task, tr *wire.TaskRecord, r *wire.Result) []wire.ManifestLine {
	per := 0.0
	if len(t.Frames) > 0 {
		per = r.GPUSeconds / float64(len(t.Frames))
	}
	byIndex := make(map[int]wire.FrameResult, len(r.Frames))
	for _, f := range r.Frames {
		byIndex[f.Index] = f
	}
	out := make([]wire.ManifestLine, 0, len(t.Frames))
	for _, f := range t.Frames {
		fr := byIndex[f.Index]
		secs := fr.GPUSeconds
		if secs == 0 {
			secs = per
		}
		out = append(out, wire.ManifestLine{Frame: &wire.ManifestFrame{
			Index: f.Index, Key: f.Key, Prompt: f.Prompt, Seed: f.Seed, Node: r.NodeID,
			GPU: r.GPU, TaskID: t.ID, Attempt: tr.Run(r), RenderMS: fr.RenderMS, GPUSeconds: secs,
			Cost: r.Price.Cost(secs),
		}})
	}
	return out
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
	if !ok || !j.active() {
		return
	}
	if i, ok := j.plan.Index(p.TaskID); ok && p.Stage != wire.StageDone && j.state[i] == tsQueued {
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
	if !ok || !j.active() || j.finalizing {
		c.mu.Unlock()
		return
	}
	j.finalizing = true
	c.mu.Unlock()

	m, err := c.lastShards(ctx, j)
	if err == nil {
		err = c.putManifest(ctx, m)
	}
	c.mu.Lock()
	j.finalizing = false
	if err != nil {
		c.mu.Unlock()
		if ctx.Err() != nil || errors.Is(err, errNotLeader) {
			return
		}
		c.log.Error("writing manifest failed; will retry", "job_id", id, "error", err)
		time.AfterFunc(2*time.Second, func() { c.finalize(ctx, id) })
		return
	}
	if j.rec.State != wire.JobCancelled {
		j.rec.State = m.State
		if j.rec.State == wire.JobFailed {
			j.rec.Error = fmt.Sprintf("%d of %d frames failed", j.rec.FramesFailed, m.FramesTotal)
			if j.rec.FramesFailed == 0 {
				j.rec.Error = "the animation could not be assembled"
			}
		}
		j.rec.FinishedAt = &m.FinishedAt
	}
	j.rec.ManifestKey = wire.ManifestKey(id)
	c.mu.Unlock()
	c.persistFinished(ctx, j)
	if j.rec.State == wire.JobCancelled {
		go c.sweepCancelled(context.WithoutCancel(ctx), id)
	}
	c.mu.Lock()
	j.notify()
	j.plan, j.state, j.chunks, j.running = nil, nil, nil, nil
	j.closeListeners()
	state, done, failed := j.rec.State, j.rec.FramesDone, j.rec.FramesFailed
	c.mu.Unlock()
	c.log.Info("job finished", "job_id", id, "state", state, "frames", done, "failed", failed, "wall_seconds", m.WallSeconds)
}

// lastShards writes j's last manifest lines and state, then returns its
// manifest summary, naming every shard.
func (c *Coordinator) lastShards(ctx context.Context, j *job) (wire.Manifest, error) {
	for {
		if err := c.persist(ctx); err != nil {
			return wire.Manifest{}, err
		}
		c.mu.Lock()
		flushed := true
		for _, ch := range j.chunks {
			flushed = flushed && len(ch.lines) == 0
		}
		if flushed {
			m := c.manifest(j, c.opts.Now())
			c.mu.Unlock()
			return m, nil
		}
		c.mu.Unlock()
	}
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

// manifest builds j's manifest summary, with the state the job ends in:
// the sums of its chunks and the shards they name. Call with c.mu held.
func (c *Coordinator) manifest(j *job, now time.Time) wire.Manifest {
	fin := now
	if j.rec.FinishedAt != nil {
		fin = *j.rec.FinishedAt
	}
	m := wire.Manifest{
		JobID: j.rec.ID, State: finalState(j), Spec: j.rec.Spec, CreatedAt: j.rec.CreatedAt, FinishedAt: fin,
		WallSeconds: fin.Sub(j.rec.CreatedAt).Seconds(), FramesTotal: j.rec.Spec.TotalFrames(),
		GPUSeconds: j.rec.GPUSeconds, Cost: j.rec.Cost, Nodes: map[string]int{},
	}
	for _, ch := range j.chunks {
		m.Shards = append(m.Shards, ch.rec.Shards...)
		for n, k := range ch.rec.Nodes {
			m.Nodes[n] += k
		}
		for i, tr := range ch.extra {
			if tr.Renders > 1 {
				if m.Rerendered == nil {
					m.Rerendered = map[string]int{}
				}
				m.Rerendered[tr.ID] = tr.Renders
			}
			if !j.plan.IsAssemble(i) {
				continue
			}
			switch {
			case tr.State == wire.TaskDone && tr.Result != nil:
				m.Outputs = append(m.Outputs, tr.Result.Outputs...)
				m.Notes = append(m.Notes, tr.Result.Notes...)
			case tr.State == wire.TaskFailed && tr.Error != nil:
				m.Notes = append(m.Notes, "animation: "+tr.Error.Message)
			case tr.State == wire.TaskFailed:
				m.Notes = append(m.Notes, "animation: retries exhausted")
			}
		}
	}
	if m.State == wire.JobCancelled {
		m.Notes = append(m.Notes, fmt.Sprintf("cancelled: the %d frames rendered before the cancel are listed; frames of tasks still rendering then are deleted", j.rec.FramesDone))
	}
	if j.rec.FramesDone > 0 && m.Cost.Currency != "" {
		m.CostPerImage = m.Cost.Amount / float64(j.rec.FramesDone)
	}
	return m
}

// manifestTask is the manifest's record of a task that ran to an end: done
// by r, or failed (r nil).
func manifestTask(t *wire.Task, tr *wire.TaskRecord, r *wire.Result) *wire.ManifestTask {
	mt := &wire.ManifestTask{ID: t.ID, State: wire.TaskFailed, Node: tr.Node, Attempt: tr.PriorRuns,
		FailedNodes: tr.FailedNodes, Error: tr.Error}
	if len(t.Frames) > 0 {
		mt.Frames = [2]int{t.Frames[0].Index, t.Frames[len(t.Frames)-1].Index}
	}
	if r != nil {
		mt.State, mt.Node, mt.Error, mt.Renders = wire.TaskDone, r.NodeID, nil, 1
		mt.Attempt, mt.StartedAt, mt.FinishedAt, mt.Timings = tr.Run(r), r.StartedAt, r.FinishedAt, r.Timings
	}
	return mt
}
