package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errNotLeader is returned by leader-only operations on a follower.
var errNotLeader = errors.New("coordinator: not the leader")

// errNotFound is returned for an unknown job.
var errNotFound = errors.New("coordinator: no such job")

// errConflict is returned when a job's state does not allow the operation.
var errConflict = errors.New("coordinator: conflict")

// newJobID returns a time-ordered, readable, unique job id.
func newJobID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "j-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

func randomSeedStart() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]) % (1 << 32))
}

// submit validates spec, stores the job and publishes its tasks. A spec
// with problems returns wire.FieldErrors and stores nothing.
func (c *Coordinator) submit(ctx context.Context, spec wire.JobSpec) (wire.JobStatus, error) {
	spec.Normalize()
	if spec.Kind == wire.KindBatch && spec.Seeds.IsZero() {
		spec.Seeds = wire.SeedRange(randomSeedStart(), spec.ImagesPerPrompt)
	}
	if err := spec.Validate(); err != nil {
		fe, _ := wire.AsFieldErrors(err)
		return wire.JobStatus{}, append(fe, spec.InputKeyErrors()...)
	}
	if fe := spec.InputKeyErrors(); len(fe) > 0 {
		return wire.JobStatus{}, fe
	}
	if err := c.checkModel(ctx, &spec); err != nil {
		return wire.JobStatus{}, err
	}
	if err := c.checkInputs(ctx, &spec); err != nil {
		return wire.JobStatus{}, err
	}
	now := c.opts.Now()
	id := newJobID(now)
	plan, err := wire.NewPlan(id, spec)
	if err != nil {
		return wire.JobStatus{}, err
	}
	rec := wire.JobRecord{
		ID: id, Spec: spec, State: wire.JobQueued, Tasks: plan.Len(),
		Class: plan.Class(), VRAMBytes: plan.VRAMBytes(), CreatedAt: now,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return wire.JobStatus{}, fmt.Errorf("coordinator: encode job: %w", err)
	}
	c.mu.Lock()
	leading := c.leading
	c.mu.Unlock()
	if !leading {
		return wire.JobStatus{}, errNotLeader
	}
	// Stored first: once the job is in etcd a new leader publishes its tasks.
	fresh, err := c.leaderTxn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(wire.JobKey(id)), "=", 0)},
		clientv3.OpPut(wire.JobKey(id), string(b)))
	if err != nil {
		return wire.JobStatus{}, fmt.Errorf("coordinator: store job: %w", err)
	}
	if !fresh {
		return wire.JobStatus{}, fmt.Errorf("coordinator: job id %s already taken", id)
	}
	j := newJob(rec, plan)
	c.mu.Lock()
	if !c.leading {
		c.mu.Unlock()
		return wire.JobStatus{}, errNotLeader
	}
	c.jobs[id] = j
	c.mu.Unlock()
	c.log.Info("job accepted", "job_id", id, "frames", spec.TotalFrames(), "tasks", rec.Tasks, "class", rec.Class, "priority", spec.Priority)
	if err := c.publishJob(ctx, j); err != nil {
		// The publisher loop retries; the job is accepted either way.
		c.log.Warn("publishing tasks failed; will retry", "job_id", id, "error", err)
		c.nudge()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status(j, false), nil
}

// nudge wakes the publisher loop.
func (c *Coordinator) nudge() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// toPublish lists the tasks of j due for publishing, stamped: those never
// published and retries whose backoff ended. An animation's assemble task
// is due once every frame is done; mp4 says whether a node can encode MP4.
// Call with c.mu held.
func (c *Coordinator) toPublish(j *job, now time.Time, mp4 bool) ([]int, []wire.Task) {
	if !j.active() || wire.JobFinished(j.rec.State) {
		return nil, nil
	}
	var idx []int
	for i := j.rec.Published; i < j.plan.Len() && len(idx) < maxPublishBatch; i++ {
		if j.plan.IsAssemble(i) && !j.framesDone() {
			break
		}
		idx = append(idx, i)
	}
	if j.retryWaiting > 0 {
		idx = append(idx, j.retriesDue(now)...)
	}
	tasks := make([]wire.Task, len(idx))
	for k, i := range idx {
		tasks[k] = j.task(i)
		tasks[k].PublishedAt = now
		if a := tasks[k].Assemble; a != nil {
			a.MP4 = mp4
		}
	}
	return idx, tasks
}

// retriesDue lists j's tasks waiting for a retry whose backoff ended. Call
// with c.mu held.
func (j *job) retriesDue(now time.Time) []int {
	var idx []int
	for _, ch := range j.chunks {
		for i, tr := range ch.extra {
			if j.state[i] == tsRetryWait && (tr.NotBefore == nil || !now.Before(*tr.NotBefore)) {
				idx = append(idx, i)
			}
		}
	}
	sort.Ints(idx)
	return idx
}

// maxPublishBatch bounds the new tasks one publishJob sends: the messages
// and their acks in flight stay small whatever the job's size, and a big
// job's submit answers after its first batch.
const maxPublishBatch = 1024

// publishJob publishes a batch of j's due tasks (at most maxPublishBatch
// new ones, plus due retries) and records what JetStream acknowledged; the
// publisher loop sends the rest.
func (c *Coordinator) publishJob(ctx context.Context, j *job) error {
	c.mu.Lock()
	if j.publishing {
		c.mu.Unlock()
		return nil
	}
	j.publishing = true
	defer func() {
		c.mu.Lock()
		j.publishing = false
		c.mu.Unlock()
	}()
	mp4 := false
	if j.assembleDue() {
		c.mu.Unlock()
		mp4 = c.nodeCan(ctx, wire.CapabilityFFmpeg)
		c.mu.Lock()
	}
	idx, tasks := c.toPublish(j, c.opts.Now(), mp4)
	msgs := make([]*nats.Msg, len(idx))
	for k := range idx {
		t := &tasks[k]
		data, err := json.Marshal(t)
		if err != nil {
			c.mu.Unlock()
			return fmt.Errorf("coordinator: encode task %s: %w", t.ID, err)
		}
		m := nats.NewMsg(t.Subject())
		m.Data = data
		m.Header.Set(wire.HeaderMsgID, t.MsgID())
		m.Header.Set(wire.HeaderTaskID, t.ID)
		msgs[k] = m
	}
	c.mu.Unlock()
	if len(msgs) == 0 {
		return nil
	}
	ok := c.publishAll(ctx, msgs)

	c.mu.Lock()
	if !j.active() {
		// The job ended (a cancel finalized it) while these were in flight:
		// its state is gone; take the tasks back out.
		c.mu.Unlock()
		c.purgeJob(ctx, j.rec.ID)
		return nil
	}
	published := j.rec.Published
	var firstErr error
	for k, i := range idx {
		if ok[k] != nil {
			if firstErr == nil {
				firstErr = ok[k]
			}
			continue
		}
		if i == published {
			published++
		}
		if j.state[i] == tsRetryWait {
			j.setState(i, tsQueued)
			j.ext(i).NotBefore = nil
			j.retryWaiting--
			j.markTask(i)
		}
	}
	if published != j.rec.Published {
		j.rec.Published = published
		j.recDirty = true
	}
	more := published < j.plan.Len() && !j.plan.IsAssemble(published)
	cancelled := j.rec.State == wire.JobCancelled
	c.mu.Unlock()
	if cancelled {
		// A cancel raced with this publish: take the tasks back out.
		c.purgeJob(ctx, j.rec.ID)
	}
	if err := c.persist(ctx); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return fmt.Errorf("coordinator: publish tasks of %s: %w", j.rec.ID, firstErr)
	}
	if more && !cancelled {
		c.nudge() // the next batch
	}
	return nil
}

// publishAll publishes msgs asynchronously and returns each one's error.
func (c *Coordinator) publishAll(ctx context.Context, msgs []*nats.Msg) []error {
	errs := make([]error, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for k, m := range msgs {
		f, err := c.js.PublishMsgAsync(m, jetstream.WithMsgID(m.Header.Get(wire.HeaderMsgID)), jetstream.WithExpectStream(wire.TasksStream))
		if err != nil {
			errs[k] = err
			continue
		}
		futures[k] = f
	}
	timeout := time.After(30 * time.Second)
	for k, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs[k] = err
		case <-timeout:
			errs[k] = errors.New("publish ack timed out")
		case <-ctx.Done():
			errs[k] = ctx.Err()
		}
	}
	// The tasks are in the stream: wake their nodes, once per class and
	// priority. A lost wake costs a node's poll interval, no task.
	woken := map[string]bool{}
	for k, m := range msgs {
		class, prio, _, ok := wire.ParseTaskSubject(m.Subject)
		if !ok || errs[k] != nil {
			continue
		}
		if wake := wire.WakeSubject(class, prio); !woken[wake] {
			woken[wake] = true
			_ = c.nc.Publish(wake, nil)
		}
	}
	return errs
}

// publishLoop publishes retries when their backoff ends and tasks whose
// first publish failed.
func (c *Coordinator) publishLoop(ctx context.Context) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-c.wake:
		}
		now := c.opts.Now()
		c.mu.Lock()
		var due []*job
		for _, j := range c.jobs {
			if !j.active() || wire.JobFinished(j.rec.State) {
				continue
			}
			if j.rec.Published < j.plan.Len() || (j.retryWaiting > 0 && len(j.retriesDue(now)) > 0) {
				due = append(due, j)
			}
		}
		c.mu.Unlock()
		for _, j := range due {
			if err := c.publishJob(ctx, j); err != nil && ctx.Err() == nil {
				c.log.Warn("publish failed", "job_id", j.rec.ID, "error", err)
			}
		}
	}
}

// cancel cancels job id: state in etcd first (nodes check it before
// starting a task), then the cancel subject (nodes rendering it stop), then
// the pending tasks are purged from the stream.
func (c *Coordinator) cancel(ctx context.Context, id string) (wire.JobStatus, error) {
	c.mu.Lock()
	if !c.leading {
		c.mu.Unlock()
		return wire.JobStatus{}, errNotLeader
	}
	j, ok := c.jobs[id]
	if !ok {
		c.mu.Unlock()
		return wire.JobStatus{}, errNotFound
	}
	if wire.JobFinished(j.rec.State) {
		st := c.status(j, false)
		c.mu.Unlock()
		return st, fmt.Errorf("%w: job %s is already %s", errConflict, id, st.State)
	}
	now := c.opts.Now()
	j.rec.State = wire.JobCancelled
	j.rec.FinishedAt = &now
	j.rec.Error = "cancelled by user"
	j.recDirty = true
	for i, s := range j.state {
		if s != tsDone && s != tsFailed {
			j.setState(i, tsCancelled)
		}
	}
	c.mu.Unlock()

	mark, _ := json.Marshal(wire.Cancel{JobID: id, Reason: "cancelled by user"})
	if _, err := c.leaderTxn(ctx, nil, clientv3.OpPut(wire.CancelledKey(id), string(mark))); err != nil {
		return wire.JobStatus{}, fmt.Errorf("coordinator: cancel %s: %w", id, err)
	}
	if err := c.persist(ctx); err != nil {
		return wire.JobStatus{}, fmt.Errorf("coordinator: cancel %s: %w", id, err)
	}
	if err := c.nc.Publish(wire.CancelSubject(id), mark); err != nil {
		c.log.Warn("cancel announcement failed", "job_id", id, "error", err)
	}
	c.purgeJob(ctx, id)
	c.log.Info("job cancelled", "job_id", id)
	go c.finalize(context.WithoutCancel(ctx), id)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status(j, false), nil
}

// purgeJob removes the job's pending tasks from the TASKS stream.
func (c *Coordinator) purgeJob(ctx context.Context, id string) {
	s, err := c.js.Stream(ctx, wire.TasksStream)
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject(wire.JobTasksFilter(id)))
	}
	if err != nil {
		c.log.Warn("purging tasks failed", "job_id", id, "error", err)
	}
}

// nodeCan reports whether some live node advertises capability.
func (c *Coordinator) nodeCan(ctx context.Context, capability string) bool {
	nodes, err := c.readNodes(ctx)
	if err != nil {
		c.log.Warn("reading nodes failed", "error", err)
		return false
	}
	for _, n := range nodes {
		if n.Can(capability) {
			return true
		}
	}
	return false
}
