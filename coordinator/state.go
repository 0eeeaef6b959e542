package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// job is the leader's in-memory view of one job. Everything in it is also
// in etcd (or derivable from the spec), written by persist.
type job struct {
	rec wire.JobRecord
	// tasks, byID and trecs are nil once the job is finished.
	tasks []wire.Task
	byID  map[string]int
	trecs []wire.TaskRecord
	// running maps task index to the node that reported starting it (from
	// best-effort progress; not persisted).
	running      map[int]string
	dirty        map[int]bool
	recDirty     bool
	retryWaiting int
	finalizing   bool
	publishing   bool
	listeners    map[*listener]struct{}
}

func newJob(rec wire.JobRecord, tasks []wire.Task) *job {
	j := &job{rec: rec, running: map[int]string{}, dirty: map[int]bool{}, listeners: map[*listener]struct{}{}}
	if tasks != nil {
		j.tasks = tasks
		j.byID = make(map[string]int, len(tasks))
		j.trecs = make([]wire.TaskRecord, len(tasks))
		for i, t := range tasks {
			j.byID[t.ID] = i
			j.trecs[i] = wire.TaskRecord{ID: t.ID, State: wire.TaskQueued, Attempt: 1}
		}
	}
	return j
}

// recount recomputes the job's counts from its task records.
func (j *job) recount() {
	r := &j.rec
	r.FramesDone, r.FramesFailed, r.TasksDone, r.TasksFailed, r.GPUSeconds = 0, 0, 0, 0, 0
	r.Cost = wire.Cost{}
	j.retryWaiting = 0
	for i, tr := range j.trecs {
		n := len(j.tasks[i].Frames)
		switch tr.State {
		case wire.TaskDone:
			r.TasksDone++
			r.FramesDone += n
			if res := tr.Result; res != nil {
				r.GPUSeconds += res.GPUSeconds
				if res.Price != nil {
					r.Cost.Add(res.Price.Cost(res.GPUSeconds), res.Price.Currency)
				}
			}
		case wire.TaskFailed:
			r.TasksFailed++
			r.FramesFailed += n
		case wire.TaskRetryWait:
			j.retryWaiting++
		}
	}
}

// allTasksEnded reports whether every task is done or failed.
func (j *job) allTasksEnded() bool {
	return j.tasks != nil && j.rec.TasksDone+j.rec.TasksFailed == len(j.tasks)
}

func (j *job) markTask(i int) { j.dirty[i] = true; j.recDirty = true }

// assembleIndex is the index of j's assemble task (the last task of an
// animation), or -1.
func (j *job) assembleIndex() int {
	if n := len(j.tasks); n > 0 && j.tasks[n-1].Assemble != nil {
		return n - 1
	}
	return -1
}

// framesDone reports whether every frame task of j is done.
func (j *job) framesDone() bool {
	a := j.assembleIndex()
	if a < 0 {
		return j.rec.TasksDone == len(j.tasks)
	}
	done := j.rec.TasksDone
	if j.trecs[a].State == wire.TaskDone {
		done--
	}
	return done == len(j.tasks)-1
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
	if a < 0 || j.rec.Published > a || j.trecs[a].State != wire.TaskQueued {
		return
	}
	if j.rec.TasksDone+j.rec.TasksFailed != len(j.tasks)-1 || j.rec.TasksFailed == 0 {
		return
	}
	j.trecs[a].State = wire.TaskFailed
	j.trecs[a].Error = &wire.Error{Code: wire.CodeTaskFailed,
		Message: fmt.Sprintf("animation not assembled: %d frames failed", j.rec.FramesFailed)}
	j.rec.TasksFailed++
	j.markTask(a)
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
	tasks, err := wire.Split(rec.ID, rec.Spec)
	if err != nil {
		return nil, fmt.Errorf("coordinator: job %s: stored spec no longer splits: %w", rec.ID, err)
	}
	j := newJob(rec, tasks)
	resp, err := c.etcd.Get(ctx, wire.JobTasksPrefix(rec.ID), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("coordinator: load tasks of %s: %w", rec.ID, err)
	}
	for _, kv := range resp.Kvs {
		var tr wire.TaskRecord
		if err := json.Unmarshal(kv.Value, &tr); err != nil {
			c.log.Error("skipping unreadable task record", "key", string(kv.Key), "error", err)
			continue
		}
		if i, ok := j.byID[tr.ID]; ok {
			j.trecs[i] = tr
			if tr.Attempt > 1 {
				j.tasks[i].Attempt = tr.Attempt
				j.tasks[i].ExcludeNodes = failedNodes(tr)
			}
		}
	}
	j.recount()
	j.skipAssembly()
	return j, nil
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

// pending is a set of writes taken from dirty state, with what to mark
// dirty again if writing fails.
type pending struct {
	ops   []clientv3.Op
	marks map[*job][]int
}

// takeDirty collects the writes of every dirty job and clears the marks.
// Call with c.mu held.
func (c *Coordinator) takeDirty() pending {
	p := pending{marks: map[*job][]int{}}
	for _, j := range c.jobs {
		if !j.recDirty && len(j.dirty) == 0 {
			continue
		}
		idx := make([]int, 0, len(j.dirty))
		for i := range j.dirty {
			idx = append(idx, i)
			b, _ := json.Marshal(j.trecs[i])
			p.ops = append(p.ops, clientv3.OpPut(wire.TaskKey(j.rec.ID, j.trecs[i].ID), string(b)))
		}
		b, _ := json.Marshal(j.rec)
		p.ops = append(p.ops, clientv3.OpPut(wire.JobKey(j.rec.ID), string(b)))
		p.marks[j] = idx
		j.dirty = map[int]bool{}
		j.recDirty = false
	}
	return p
}

// maxTxnOps stays under etcd's default limit of 128 operations per txn
// (the fence's nested transaction counts as one more).
const maxTxnOps = 120

// persist writes every dirty record to etcd. On failure the records are
// marked dirty again, so a later persist writes their newest state.
func (c *Coordinator) persist(ctx context.Context) error {
	// One writer at a time, so an older snapshot never overwrites a newer one.
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	c.mu.Lock()
	p := c.takeDirty()
	c.mu.Unlock()
	if err := c.writeOps(ctx, p.ops); err != nil {
		c.mu.Lock()
		for j, idx := range p.marks {
			j.recDirty = true
			for _, i := range idx {
				j.dirty[i] = true
			}
		}
		c.mu.Unlock()
		return err
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
// records in one transaction: the manifest, already in S3, is the job's
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
			clientv3.OpDelete(wire.JobTasksPrefix(j.rec.ID), clientv3.WithPrefix()))
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
