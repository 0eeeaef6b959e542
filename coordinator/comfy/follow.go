package comfy

import (
	"context"
	"slices"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// follower turns one job's events into the messages ComfyUI sends the
// client that queued the prompt: execution_start, execution_cached and
// executing for the nodes before the sampler once a node takes the job;
// progress as the nodes step (summed over the job's images); then
// executing and executed for the nodes after the sampler, execution_success
// (or execution_error, execution_interrupted) and executing with no node.
type follower struct {
	s       *Server
	id      string
	r       *record
	started bool
	total   int         // frames of the job
	steps   map[int]int // frame -> last step reported
}

// follow turns the events of prompt id's job into messages to its client
// until the job ends or this coordinator stops leading.
func (s *Server) follow(id string, r *record, events <-chan wire.JobEvent) {
	ctx := context.Background()
	f := &follower{s: s, id: id, r: r, steps: map[int]int{}}
	for ev := range events {
		if ev.Job != nil {
			f.total = ev.Job.FramesTotal
		}
		switch ev.Type {
		case wire.EventStatus:
			if !f.started && (ev.Job.TasksRunning > 0 || ev.Job.FramesDone > 0) {
				f.start()
			}
		case wire.EventProgress:
			f.progress(ev.Progress)
		case wire.EventEnd:
			f.finish(ctx, *ev.Job)
		}
	}
}

// send queues a message for the prompt's client. As in ComfyUI, a prompt
// queued without a client_id has its run reported to no one.
func (f *follower) send(typ string, data any) {
	if f.r.ClientID != "" {
		f.s.hub.send(f.r.ClientID, textFrame(typ, data))
	}
}

func (f *follower) executing(node any) {
	f.send("executing", map[string]any{"node": node, "display_node": node, "prompt_id": f.id})
}

// start reports the run as begun, up to the sampler.
func (f *follower) start() {
	f.started = true
	now := f.s.opts.Now().UnixMilli()
	f.send("execution_start", map[string]any{"prompt_id": f.id, "timestamp": now})
	f.send("execution_cached", map[string]any{"nodes": []string{}, "prompt_id": f.id, "timestamp": now})
	for _, n := range f.r.Pre {
		f.executing(n)
	}
	f.executing(f.r.Sampler)
}

// progress reports the steps done (a step event's frame, a frame event's
// frame or a done task's frames), and a preview.
func (f *follower) progress(p *wire.Progress) {
	if !f.started {
		f.start()
	}
	if first, last, ok := p.FrameRange(); ok && p.Steps > 0 {
		for i := first; i <= last; i++ {
			f.steps[i] = max(f.steps[i], p.Step)
		}
		done := 0
		for _, s := range f.steps {
			done += s
		}
		f.send("progress", map[string]any{"value": done, "max": p.Steps * max(f.total, 1),
			"prompt_id": f.id, "node": f.r.Sampler})
	}
	if len(p.Preview) > 0 && f.r.ClientID != "" {
		f.s.hub.send(f.r.ClientID, previewFrame(p.Preview))
	}
}

// finish reports the end of the run.
func (f *follower) finish(ctx context.Context, st wire.JobStatus) {
	defer f.s.broadcastStatus(ctx)
	switch {
	case st.State == wire.JobCancelled && !f.started:
		return // taken off the queue before it ran, as ComfyUI's queue delete
	case st.State == wire.JobCancelled:
		f.send("execution_interrupted", f.r.interruptData(st))
	case st.State == wire.JobDone:
		if !f.started {
			f.start()
		}
		frames, err := frames(ctx, f.s.farm, st)
		if err != nil {
			f.s.log.Warn("cannot list the frames of a prompt", "job_id", f.id, "error", err)
		}
		outputs := f.r.outputs(f.id, frames)
		for _, n := range f.r.Post {
			f.executing(n)
			if slices.Contains(f.r.outputIDs(), n) {
				f.send("executed", map[string]any{"node": n, "display_node": n, "output": outputs[n], "prompt_id": f.id})
			}
		}
		f.send("execution_success", f.r.finishData(st))
	default:
		if !f.started {
			f.start()
		}
		f.send("execution_error", f.r.errorData(st))
	}
	f.executing(nil)
}
