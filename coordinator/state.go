package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A task's state in memory: one byte per task (wire's task states are
// strings, kept in records).
const (
	tsQueued uint8 = iota
	tsDone
	tsFailed
	tsRetryWait
	tsCancelled
)

var taskStates = [...]string{tsQueued: wire.TaskQueued, tsDone: wire.TaskDone, tsFailed: wire.TaskFailed,
	tsRetryWait: wire.TaskRetryWait, tsCancelled: wire.TaskCancelled}

func stateCode(s string) uint8 {
	for i, v := range taskStates {
		if v == s {
			return uint8(i)
		}
	}
	return tsQueued
}

// job is the leader's in-memory view of one job: a few bytes per task, the
// tasks themselves computed from the plan when needed. Everything in it is
// also in etcd and S3, written by persist.
type job struct {
	rec wire.JobRecord
	// plan, state and chunks are nil once the job is finished.
	plan  *wire.Plan
	state []uint8
	// chunks[n] holds tasks n*wire.ChunkTasks.. (its wire.ChunkRecord).
	chunks []*chunk
	// running maps task index to the node that reported starting it (from
	// best-effort progress; not persisted).
	running      map[int]string
	dirty        map[int]bool // chunks to write
	recDirty     bool
	retryWaiting int
	finalizing   bool
	publishing   bool
	listeners    map[*listener]struct{}
}

// chunk is the leader's copy of one wire.ChunkRecord, with the records of
// its tasks with more to say and the manifest lines not yet in a shard.
type chunk struct {
	rec   wire.ChunkRecord
	extra map[int]*wire.TaskRecord // by task index in the job
	lines []byte
}

func newJob(rec wire.JobRecord, plan *wire.Plan) *job {
	j := &job{rec: rec, running: map[int]string{}, dirty: map[int]bool{}, listeners: map[*listener]struct{}{}}
	if plan != nil {
		n := plan.Len()
		j.plan = plan
		j.state = make([]uint8, n)
		for first := 0; first < n; first += wire.ChunkTasks {
			j.chunks = append(j.chunks, &chunk{rec: wire.NewChunkRecord(min(wire.ChunkTasks, n-first)),
				extra: map[int]*wire.TaskRecord{}})
		}
	}
	return j
}

// active reports whether j's tasks are held (it has not finished).
func (j *job) active() bool { return j.plan != nil }

func (j *job) chunkOf(i int) *chunk { return j.chunks[i/wire.ChunkTasks] }

// record is task i's record: its own when it has one, else made from its
// state.
func (j *job) record(i int) wire.TaskRecord {
	if tr := j.chunkOf(i).extra[i]; tr != nil {
		return *tr
	}
	return wire.TaskRecord{ID: j.plan.TaskID(i), State: taskStates[j.state[i]], Attempt: 1}
}

// ext is task i's own record, made when it has none.
func (j *job) ext(i int) *wire.TaskRecord {
	c := j.chunkOf(i)
	tr := c.extra[i]
	if tr == nil {
		tr = &wire.TaskRecord{ID: j.plan.TaskID(i), State: taskStates[j.state[i]], Attempt: 1}
		c.extra[i] = tr
	}
	return tr
}

// setState sets task i's state, in its record too when it has one.
func (j *job) setState(i int, s uint8) {
	j.state[i] = s
	if tr := j.chunkOf(i).extra[i]; tr != nil {
		tr.State = taskStates[s]
	}
}

// task is task i as published: its attempt and the nodes it failed on come
// from its record.
func (j *job) task(i int) wire.Task {
	t := j.plan.Task(i)
	if tr := j.chunkOf(i).extra[i]; tr != nil && tr.Attempt > 1 {
		t.Attempt = tr.Attempt
		t.ExcludeNodes = failedNodes(*tr)
	}
	return t
}

// recount recomputes the job's counts from its chunks.
func (j *job) recount() {
	r := &j.rec
	r.FramesDone, r.FramesFailed, r.TasksDone, r.TasksFailed, r.GPUSeconds = 0, 0, 0, 0, 0
	r.Cost = wire.Cost{}
	j.retryWaiting = 0
	for _, c := range j.chunks {
		r.TasksDone += c.rec.DoneCount()
		r.FramesDone += c.rec.Frames
		r.GPUSeconds += c.rec.GPUSeconds
		if c.rec.Cost.Currency != "" {
			r.Cost.Add(c.rec.Cost.Amount, c.rec.Cost.Currency)
		}
	}
	for i, s := range j.state {
		switch s {
		case tsFailed:
			r.TasksFailed++
			r.FramesFailed += j.plan.FrameCount(i)
		case tsRetryWait:
			j.retryWaiting++
		}
	}
}

// allTasksEnded reports whether every task is done or failed.
func (j *job) allTasksEnded() bool {
	return j.active() && j.rec.TasksDone+j.rec.TasksFailed == j.plan.Len()
}

func (j *job) markTask(i int) { j.dirty[i/wire.ChunkTasks] = true; j.recDirty = true }

// assembleIndex is the index of j's assemble task (the last task of an
// animation), or -1.
func (j *job) assembleIndex() int {
	if n := j.plan.Len(); n > 0 && j.plan.IsAssemble(n-1) {
		return n - 1
	}
	return -1
}

// framesDone reports whether every frame task of j is done.
func (j *job) framesDone() bool {
	a := j.assembleIndex()
	if a < 0 {
		return j.rec.TasksDone == j.plan.Len()
	}
	done := j.rec.TasksDone
	if j.state[a] == tsDone {
		done--
	}
	return done == j.plan.Len()-1
}

// assembleDue reports whether j's assemble task is next to publish and its
// frames are done.
func (j *job) assembleDue() bool {
	a := j.assembleIndex()
	return a >= 0 && j.rec.Published == a && j.framesDone()
}

// skipAssembly ends an unpublished assemble task as failed once every frame
// task ended and some failed: there is no whole animation to assemble.
func (j *job) skipAssembly() {
	a := j.assembleIndex()
	if a < 0 || j.rec.Published > a || j.state[a] != tsQueued {
		return
	}
	if j.rec.TasksDone+j.rec.TasksFailed != j.plan.Len()-1 || j.rec.TasksFailed == 0 {
		return
	}
	j.ext(a).Error = &wire.Error{Code: wire.CodeTaskFailed,
		Message: fmt.Sprintf("animation not assembled: %d frames failed", j.rec.FramesFailed)}
	t := j.plan.Task(a)
	j.taskFailed(a, &t)
}

// load rebuilds the leader's state from etcd.
func (c *Coordinator) load(ctx context.Context) error {
	resp, err := c.etcd.Get(ctx, wire.JobsPrefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("coordinator: load jobs: %w", err)
	}
	jobs := make(map[string]*job, len(resp.Kvs))
	active := 0
	for _, kv := range resp.Kvs {
		var rec wire.JobRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			c.log.Error("skipping unreadable job record", "key", string(kv.Key), "error", err)
			continue
		}
		if wire.JobFinished(rec.State) {
			jobs[rec.ID] = newJob(rec, nil)
			if rec.State == wire.JobCancelled && rec.ManifestKey != "" && !rec.Swept {
				go c.sweepCancelled(context.WithoutCancel(ctx), rec.ID)
			}
			continue
		}
		j, err := c.loadActive(ctx, rec)
		if err != nil {
			return err
		}
		jobs[rec.ID] = j
		active++
	}
	c.mu.Lock()
	c.jobs = jobs
	c.failures = map[string]map[string][]time.Time{}
	c.mu.Unlock()
	c.log.Info("state loaded", "jobs", len(jobs), "active", active)
	return nil
}

func (c *Coordinator) loadActive(ctx context.Context, rec wire.JobRecord) (*job, error) {
	plan, err := wire.NewPlan(rec.ID, rec.Spec)
	if err != nil {
		return nil, fmt.Errorf("coordinator: job %s: stored spec no longer plans: %w", rec.ID, err)
	}
	j := newJob(rec, plan)
	resp, err := c.etcd.Get(ctx, wire.JobChunksPrefix(rec.ID), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("coordinator: load task state of %s: %w", rec.ID, err)
	}
	for _, kv := range resp.Kvs {
		if err := j.loadChunk(kv.Key, kv.Value); err != nil {
			c.log.Error("skipping unreadable task state", "key", string(kv.Key), "error", err)
		}
	}
	j.recount()
	j.skipAssembly()
	return j, nil
}

// loadChunk restores one chunk of j from its etcd record.
func (j *job) loadChunk(key, value []byte) error {
	var n int
	if _, err := fmt.Sscanf(string(key[len(wire.JobChunksPrefix(j.rec.ID)):]), "%d", &n); err != nil || n < 0 || n >= len(j.chunks) {
		return fmt.Errorf("no chunk %q in a job of %d tasks", key, j.plan.Len())
	}
	c := j.chunks[n]
	var cr wire.ChunkRecord
	if err := json.Unmarshal(value, &cr); err != nil {
		return err
	}
	if len(cr.Done) != len(c.rec.Done) || len(cr.Runs) != len(c.rec.Runs) {
		return fmt.Errorf("chunk %d holds %d tasks' state, want %d", n, len(cr.Runs)/2, len(c.rec.Runs)/2)
	}
	tasks := cr.Tasks
	cr.Tasks = nil
	c.rec = cr
	first := n * wire.ChunkTasks
	for k := range len(cr.Runs) / 2 {
		if cr.IsDone(k) {
			j.state[first+k] = tsDone
		}
	}
	for _, tr := range tasks {
		i, ok := j.plan.Index(tr.ID)
		if !ok || i/wire.ChunkTasks != n {
			return fmt.Errorf("chunk %d: record of task %q not in it", n, tr.ID)
		}
		c.extra[i] = &tr
		j.state[i] = stateCode(tr.State)
	}
	return nil
}

// failedNodes lists the nodes a task failed on, sorted.
func failedNodes(tr wire.TaskRecord) []string {
	out := make([]string, 0, len(tr.FailedNodes))
	for n := range tr.FailedNodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// shardWrite is a manifest shard to put before the etcd write recording it.
type shardWrite struct {
	key   string
	lines []byte
	c     *chunk
}

// pending is a set of writes taken from dirty state, with what to restore
// if writing fails.
type pending struct {
	shards []shardWrite
	ops    []clientv3.Op
	marks  map[*job][]int
}

// takeDirty collects the writes of every dirty job and clears the marks:
// each dirty chunk's record, with a new shard for its manifest lines, and
// the job record. Call with c.mu held.
func (c *Coordinator) takeDirty() pending {
	p := pending{marks: map[*job][]int{}}
	for _, j := range c.jobs {
		if !j.recDirty && len(j.dirty) == 0 {
			continue
		}
		idx := make([]int, 0, len(j.dirty))
		for n := range j.dirty {
			idx = append(idx, n)
			ch := j.chunks[n]
			if len(ch.lines) > 0 {
				key := wire.ManifestShardKey(j.rec.ID, n, c.fence.rev, len(ch.rec.Shards))
				p.shards = append(p.shards, shardWrite{key: key, lines: ch.lines, c: ch})
				ch.rec.Shards = append(ch.rec.Shards, key)
				ch.lines = nil
			}
			p.ops = append(p.ops, clientv3.OpPut(wire.ChunkKey(j.rec.ID, n), string(ch.encode())))
		}
		b, _ := json.Marshal(j.rec)
		p.ops = append(p.ops, clientv3.OpPut(wire.JobKey(j.rec.ID), string(b)))
		p.marks[j] = idx
		j.dirty = map[int]bool{}
		j.recDirty = false
	}
	return p
}

// encode is the chunk's etcd record.
func (ch *chunk) encode() []byte {
	cr := ch.rec
	cr.Tasks = make([]wire.TaskRecord, 0, len(ch.extra))
	for _, tr := range ch.extra {
		cr.Tasks = append(cr.Tasks, *tr)
	}
	sort.Slice(cr.Tasks, func(a, b int) bool { return cr.Tasks[a].ID < cr.Tasks[b].ID })
	b, _ := json.Marshal(cr)
	return b
}

// restore undoes takeDirty after a failed write: the records are dirty
// again and the lines wait for the next shard (which reuses the key, so a
// shard put but never recorded is overwritten). Call with c.mu held.
func (p pending) restore() {
	for _, s := range p.shards {
		s.c.rec.Shards = slices.DeleteFunc(s.c.rec.Shards, func(k string) bool { return k == s.key })
		s.c.lines = append(s.lines, s.c.lines...)
	}
	for j, idx := range p.marks {
		j.recDirty = true
		for _, n := range idx {
			j.dirty[n] = true
		}
	}
}

// maxTxnOps stays under etcd's default limit of 128 operations per txn
// (the fence's nested transaction counts as one more).
const maxTxnOps = 120

// persist writes the manifest shards of newly ended tasks to S3, then
// every dirty record to etcd: a chunk's record names its shards, so an
// ended task is recorded exactly when its manifest lines are. On failure
// everything is marked dirty again for a later persist.
func (c *Coordinator) persist(ctx context.Context) error {
	// One writer at a time, so an older snapshot never overwrites a newer one.
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	c.mu.Lock()
	p := c.takeDirty()
	c.mu.Unlock()
	err := c.putShards(ctx, p.shards)
	if err == nil {
		err = c.writeOps(ctx, p.ops)
	}
	if err != nil {
		c.mu.Lock()
		p.restore()
		c.mu.Unlock()
	}
	return err
}

func (c *Coordinator) putShards(ctx context.Context, shards []shardWrite) error {
	for _, s := range shards {
		if err := c.s3.PutBytes(ctx, c.opts.S3.Bucket, s.key, s.lines, "application/x-ndjson"); err != nil {
			return fmt.Errorf("coordinator: put manifest shard %s: %w", s.key, err)
		}
	}
	return nil
}

func (c *Coordinator) writeOps(ctx context.Context, ops []clientv3.Op) error {
	for len(ops) > 0 {
		n := min(len(ops), maxTxnOps)
		if _, err := c.leaderTxn(ctx, nil, ops[:n]...); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// persistFinished writes a finished job's record and removes its task
// state in one transaction: the manifest, already in S3, is the job's
// record of its tasks from now on. It retries until it succeeds or the
// term ends.
func (c *Coordinator) persistFinished(ctx context.Context, j *job) {
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	for {
		c.mu.Lock()
		b, _ := json.Marshal(j.rec)
		j.recDirty = false
		j.dirty = map[int]bool{}
		c.mu.Unlock()
		_, err := c.leaderTxn(ctx, nil, clientv3.OpPut(wire.JobKey(j.rec.ID), string(b)),
			clientv3.OpDelete(wire.JobChunksPrefix(j.rec.ID), clientv3.WithPrefix()))
		if err == nil {
			return
		}
		c.mu.Lock()
		j.recDirty = true
		c.mu.Unlock()
		if errors.Is(err, errNotLeader) || ctx.Err() != nil {
			return
		}
		c.log.Error("recording finished job failed; will retry", "job_id", j.rec.ID, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}
