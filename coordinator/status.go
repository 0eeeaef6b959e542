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
	if j.active() && !wire.JobFinished(r.State) {
		st.TasksRunning = len(j.running)
		st.TasksWaiting = r.Tasks - r.TasksDone - r.TasksFailed - st.TasksRunning
	}
	if detail {
		spec := r.Spec
		st.Spec = &spec
	}
	return st
}

// maxListedQueued bounds the queued tasks a job's view lists (a big job
// has hundreds of thousands); the others are all listed.
const maxListedQueued = 1000

// taskStatuses lists j's tasks for the API: unfinished and failed ones, or
// all with all. Call with c.mu held.
func (c *Coordinator) taskStatuses(j *job, all bool) []wire.TaskStatus {
	var out []wire.TaskStatus
	queued := 0
	for i, s := range j.state {
		if !all && s == tsDone {
			continue
		}
		_, running := j.running[i]
		if !all && s == tsQueued && !running {
			if queued++; queued > maxListedQueued {
				continue
			}
		}
		first, last, _ := j.plan.FrameRange(i)
		out = append(out, taskStatus(j.record(i), [2]int{first, last}, j.plan.IsAssemble(i), j.running[i]))
	}
	return out
}

func taskStatus(tr wire.TaskRecord, frames [2]int, assemble bool, runningOn string) wire.TaskStatus {
	ts := wire.TaskStatus{
		ID: tr.ID, State: tr.State, Attempt: tr.Attempt, Node: tr.Node,
		FailedNodes: tr.FailedNodes, Error: tr.Error, Frames: frames,
	}
	if runningOn != "" && tr.State == wire.TaskQueued {
		ts.State = wire.TaskRunning
		ts.Node = runningOn
	}
	if assemble && tr.State == wire.TaskQueued && runningOn == "" {
		ts.Why = "assembles the animation once every frame is done"
	}
	if tr.State == wire.TaskRetryWait && tr.NotBefore != nil && tr.Error != nil {
		ts.Why = fmt.Sprintf("retrying after %s on %s; next attempt from %s", tr.Error.Code, tr.Node, tr.NotBefore.UTC().Format("15:04:05"))
	}
	return ts
}

// storedTasks lists a finished job's tasks from its manifest (its task
// state left etcd when it ended): the failed ones, or all with all.
func (c *Coordinator) storedTasks(ctx context.Context, id string, all bool) ([]wire.TaskStatus, error) {
	var out []wire.TaskStatus
	_, err := c.eachManifestLine(ctx, id, func(l wire.ManifestLine) error {
		mt := l.Task
		if mt == nil || (!all && mt.State == wire.TaskDone) {
			return nil
		}
		out = append(out, wire.TaskStatus{ID: mt.ID, State: mt.State, Attempt: mt.Attempt, Frames: mt.Frames,
			Node: mt.Node, FailedNodes: mt.FailedNodes, Error: mt.Error})
		return nil
	})
	return out, err
}
