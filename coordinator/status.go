package coordinator

import (
	"context"
	"fmt"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// listener is one open event stream of a job.
type listener struct {
	notifyC  chan struct{}
	progress chan wire.Progress
	done     chan struct{}
}

func newListener() *listener {
	return &listener{notifyC: make(chan struct{}, 1), progress: make(chan wire.Progress, 256), done: make(chan struct{})}
}

// sendProgress forwards p unless the listener is behind (progress is best effort).
func (l *listener) sendProgress(p wire.Progress) {
	select {
	case l.progress <- p:
	default:
	}
}

// notify tells j's listeners that its status changed. Call with c.mu held.
func (j *job) notify() {
	for l := range j.listeners {
		select {
		case l.notifyC <- struct{}{}:
		default:
		}
	}
}

// closeListeners ends j's event streams. Call with c.mu held.
func (j *job) closeListeners() {
	for l := range j.listeners {
		close(l.done)
	}
	j.listeners = map[*listener]struct{}{}
}

// status renders j for the API. detail adds the spec and the unfinished
// tasks (all tasks with allTasks). Call with c.mu held.
func (c *Coordinator) status(j *job, detail bool) wire.JobStatus {
	r := &j.rec
	st := wire.JobStatus{
		ID: r.ID, Name: r.Spec.Name, State: r.State, Model: r.Spec.Model, Priority: r.Spec.Priority,
		Class: r.Class, VRAMBytes: r.VRAMBytes, FramesTotal: r.Spec.TotalFrames(), FramesDone: r.FramesDone,
		FramesFailed: r.FramesFailed, TasksTotal: r.Tasks, TasksDone: r.TasksDone, TasksFailed: r.TasksFailed,
		GPUSeconds: r.GPUSeconds, Cost: r.Cost, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt, Error: r.Error,
		ManifestKey: r.ManifestKey, LateResults: r.LateResults,
	}
	if j.tasks != nil && !wire.JobFinished(r.State) {
		st.TasksRunning = len(j.running)
		st.TasksWaiting = r.Tasks - r.TasksDone - r.TasksFailed - st.TasksRunning
	}
	if detail {
		spec := r.Spec
		st.Spec = &spec
	}
	return st
}

// taskStatuses lists j's tasks for the API: unfinished and failed ones, or
// all with all. Call with c.mu held.
func (c *Coordinator) taskStatuses(j *job, all bool) []wire.TaskStatus {
	var out []wire.TaskStatus
	for i, tr := range j.trecs {
		if !all && tr.State == wire.TaskDone {
			continue
		}
		out = append(out, taskStatus(&j.tasks[i], tr, j.running[i]))
	}
	return out
}

func taskStatus(t *wire.Task, tr wire.TaskRecord, runningOn string) wire.TaskStatus {
	ts := wire.TaskStatus{
		ID: t.ID, State: tr.State, Attempt: tr.Attempt, Node: tr.Node,
		FailedNodes: tr.FailedNodes, Error: tr.Error,
	}
	if len(t.Frames) > 0 {
		ts.Frames = [2]int{t.Frames[0].Index, t.Frames[len(t.Frames)-1].Index}
	}
	if runningOn != "" && tr.State == wire.TaskQueued {
		ts.State = wire.TaskRunning
		ts.Node = runningOn
	}
	if t.Assemble != nil && tr.State == wire.TaskQueued && runningOn == "" {
		ts.Why = "assembles the animation once every frame is done"
	}
	if tr.State == wire.TaskRetryWait && tr.NotBefore != nil && tr.Error != nil {
		ts.Why = fmt.Sprintf("retrying after %s on %s; next attempt from %s", tr.Error.Code, tr.Node, tr.NotBefore.UTC().Format("15:04:05"))
	}
	return ts
}

// storedTasks lists a finished job's tasks from its manifest (its task
// records left etcd when it ended): the failed ones, or all with all.
func (c *Coordinator) storedTasks(ctx context.Context, id string, all bool) ([]wire.TaskStatus, error) {
	m, err := c.readManifest(ctx, id)
	if err != nil {
		return nil, err
	}
	var out []wire.TaskStatus
	for _, mt := range m.Tasks {
		if !all && mt.State == wire.TaskDone {
			continue
		}
		out = append(out, wire.TaskStatus{ID: mt.ID, State: mt.State, Attempt: mt.Attempt, Frames: mt.Frames,
			Node: mt.Node, FailedNodes: mt.FailedNodes, Error: mt.Error})
	}
	return out, nil
}
