package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Causes of a task's context ending early.
var (
	errJobCancelled = errors.New("node: job cancelled")
	errDrainTimeout = errors.New("node: drain timeout")
)

// Delays before a returned task is offered again.
const (
	excludedDelay  = 2 * time.Second
	exclusionDelay = 10 * time.Second
	maxNakDelay    = 30 * time.Second
)

// handle runs one pulled task to its end: acked with a result, terminated
// with a result, or returned to the queue.
func (n *Node) handle(ctx context.Context, p *pulled) {
	received := time.Now().UTC()
	delivered := 1
	if meta, err := p.msg.Metadata(); err == nil {
		delivered = int(meta.NumDelivered)
	}
	task, err := n.decode(p)
	n.noteReceived(task.ID)
	log := n.log.With("task_id", task.ID, "job_id", task.JobID, "delivery", delivered)
	res := &wire.Result{TaskID: task.ID, JobID: task.JobID, NodeID: n.opts.ID, Attempt: task.Attempt,
		Delivery: delivered, StartedAt: received, GPU: n.gpuName()}
	if n.opts.PricePerHour > 0 {
		res.Price = &wire.Price{PerHour: n.opts.PricePerHour, Currency: n.opts.Currency}
	}
	if err != nil {
		log.Warn("refusing task", "error", err)
		n.fail(p.msg, &task, res, err, log)
		return
	}
	switch {
	case n.isCancelled(task.JobID):
		n.fail(p.msg, &task, res, Permanent(wire.CodeCancelled, errors.New("job cancelled before the task started")), log)
		return
	case n.exclusions.has(wire.ExclusionKey(n.opts.ID, task.FailureKind())):
		log.Debug("excluded from this kind of task, returning it", "kind", task.FailureKind())
		_ = p.msg.NakWithDelay(exclusionDelay)
		return
	case task.Excludes(n.opts.ID) && delivered < n.opts.ExcludedRunAfter:
		log.Debug("task failed here before, leaving it to others")
		_ = p.msg.NakWithDelay(excludedDelay)
		return
	case n.fp.Backend == wire.BackendCUDA && task.VRAMBytes > n.liveFree():
		// The card is in the class but another process holds its memory now.
		log.Debug("not enough free VRAM now, returning the task", "need", wire.FormatBytes(task.VRAMBytes), "free", wire.FormatBytes(n.liveFree()))
		_ = p.msg.NakWithDelay(excludedDelay)
		return
	case task.Assemble != nil && task.Assemble.MP4 && n.opts.FFmpeg == "" &&
		delivered < assembleLeaveFor*n.opts.ExcludedRunAfter && n.ffmpegNodeAlive(ctx):
		// A node with ffmpeg makes the MP4 too; pulls are a race between
		// nodes, so this one keeps leaving the task to it while one lives.
		log.Debug("no ffmpeg here, leaving the assembly to a node that has it")
		_ = p.msg.NakWithDelay(excludedDelay)
		return
	}
	n.run(ctx, p, &task, res, log)
}

// decode parses and checks a task message. The returned task carries what
// could be read even on error (ids for the result).
func (n *Node) decode(p *pulled) (wire.Task, error) {
	var t wire.Task
	err := json.Unmarshal(p.msg.Data(), &t)
	if t.JobID == "" {
		if _, _, job, ok := wire.ParseTaskSubject(p.msg.Subject()); ok {
			t.JobID = job
		}
	}
	if t.ID == "" {
		t.ID = p.msg.Headers().Get(wire.HeaderTaskID)
	}
	if err != nil {
		return t, Permanent(wire.CodeInvalidTask, fmt.Errorf("node: decode task: %w", err))
	}
	var problems []string
	if t.ID == "" || !wire.ValidID(t.JobID) {
		problems = append(problems, "missing task or job id")
	}
	if t.Assemble != nil {
		problems = append(problems, checkAssembly(&t)...)
	} else {
		if len(t.Frames) == 0 {
			problems = append(problems, "no frames")
		}
		if t.Width <= 0 || t.Height <= 0 || t.Steps <= 0 {
			problems = append(problems, fmt.Sprintf("size %dx%d, %d steps", t.Width, t.Height, t.Steps))
		}
	}
	if t.Backend != wire.BackendAny && t.Backend != n.fp.Backend {
		problems = append(problems, fmt.Sprintf("backend: task needs %s, node is %s", t.Backend, n.fp.Backend))
	}
	if t.VRAMBytes > n.fp.UsableBytes {
		problems = append(problems, fmt.Sprintf("vram: task needs %s, node has %s (class %s was mislabelled)",
			wire.FormatBytes(t.VRAMBytes), wire.FormatBytes(n.fp.UsableBytes), p.from.Class))
	}
	prefix := wire.FramesPrefix(t.JobID)
	for i := range t.Frames {
		f := &t.Frames[i]
		if f.Key == "" {
			f.Key = wire.FrameKey(t.JobID, f.Index)
		}
		// A key must be clean as well as under the prefix: an S3 gateway
		// that collapses ".." (the embedded one does) would otherwise write
		// jobs/<job>/frames/../../<other>/... into another job.
		if !strings.HasPrefix(f.Key, prefix) || path.Clean(f.Key) != f.Key {
			problems = append(problems, fmt.Sprintf("frame %d: key %q is outside %s", f.Index, f.Key, prefix))
		}
	}
	if len(problems) > 0 {
		return t, Permanent(wire.CodeInvalidTask, fmt.Errorf("node: task %s: %s", t.ID, strings.Join(problems, "; ")))
	}
	return t, nil
}

// run renders a task, keeping its message alive, and settles it. A task
// that succeeded is settled (its result published, then its message acked)
// while the node pulls its next task, so that the gap between two tasks is a
// pull rather than a publish, an ack and a pull; one settles at a time, and
// Run waits for the last one before it deregisters.
func (n *Node) run(ctx context.Context, p *pulled, task *wire.Task, res *wire.Result, log hclog.Logger) {
	tctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	n.mu.Lock()
	n.current = &running{job: task.JobID, cancel: cancel}
	if n.cancelSeen[task.JobID] {
		cancel(errJobCancelled)
	}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.current = nil
		n.mu.Unlock()
	}()
	n.reg.update(func(i *wire.NodeInfo) {
		if i.State == wire.NodeReady {
			i.State = wire.NodeBusy
		}
		i.CurrentTask, i.CurrentJob = task.ID, task.JobID
	})
	stop := n.keepAlive(ctx, p, cancel, log)

	if !task.PublishedAt.IsZero() {
		res.Timings.QueueMS = max(res.StartedAt.Sub(task.PublishedAt).Milliseconds(), 0)
	}
	log.Debug("task started", "frames", len(task.Frames), "queue_ms", res.Timings.QueueMS)
	err := n.render(tctx, task, res)
	if cause := context.Cause(tctx); err != nil && cause != nil && tctx.Err() != nil {
		err = cause
	}
	res.FinishedAt = time.Now().UTC()
	res.Timings.TotalMS = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	n.reg.update(func(i *wire.NodeInfo) {
		if i.State == wire.NodeBusy {
			i.State = wire.NodeReady
		}
		i.CurrentTask, i.CurrentJob = "", ""
	})
	if err != nil {
		n.fail(p.msg, task, res, err, log)
		stop()
		n.reg.update(func(i *wire.NodeInfo) { i.TasksFailed++ })
		return
	}
	n.settleSlot <- struct{}{}
	n.settling.Add(1)
	go func() {
		defer func() {
			<-n.settleSlot
			n.settling.Done()
		}()
		n.succeed(p.msg, task, res, log)
		stop()
		n.reg.update(func(i *wire.NodeInfo) { i.TasksDone++ })
	}()
}

// keepAlive signals progress on the message while the task runs, and
// cancels the task when the node has drained for longer than DrainTimeout.
func (n *Node) keepAlive(ctx context.Context, p *pulled, cancel context.CancelCauseFunc, log hclog.Logger) (stop func()) {
	every := inProgressEvery(p.ackWait)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		tick := t.C
		if n.opts.NoInProgressAcks {
			tick = nil
		}
		rootDone := ctx.Done()
		var drain <-chan time.Time
		for {
			select {
			case <-done:
				return
			case <-tick:
				if err := p.msg.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
					log.Warn("in-progress signal failed", "error", err)
				}
			case <-rootDone:
				rootDone = nil
				n.reg.update(func(i *wire.NodeInfo) { i.State = wire.NodeDraining })
				log.Info("draining: finishing the current task", "timeout", n.opts.DrainTimeout)
				drain = time.After(n.opts.DrainTimeout)
			case <-drain:
				cancel(errDrainTimeout)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// inProgressEvery is how often a held task message is signalled in
// progress: three times per ack wait (every 10 s when it is unknown).
func inProgressEvery(ackWait time.Duration) time.Duration {
	if ackWait <= 0 {
		return 10 * time.Second
	}
	return max(ackWait/3, 50*time.Millisecond)
}

// progressEvery is how long a task runs before its node says it started,
// and the least time between two of its step or quick frame events.
const progressEvery = 250 * time.Millisecond

// render prepares the renderer and renders and uploads every frame. A task
// quicker than progressEvery says nothing: its result says it all. A longer
// one says "started" (and "loading", while its model still loads) once it
// has run progressEvery, "step" at most every progressEvery while a frame
// renders, and "frame" (with the frame's steps) once a frame is in S3, for
// every frame that took progressEvery or more, else at most every
// progressEvery. The coordinator says "done" to the job's listeners when it
// applies the task's result.
func (n *Node) render(ctx context.Context, task *wire.Task, res *wire.Result) error {
	var preparing atomic.Bool
	preparing.Store(true)
	announce := time.AfterFunc(progressEvery, func() {
		n.progress(task, wire.Progress{Stage: wire.StageStarted})
		if preparing.Load() {
			n.progress(task, wire.Progress{Stage: wire.StageLoading})
		}
	})
	defer announce.Stop()
	if task.Assemble != nil {
		preparing.Store(false)
		return n.assemble(ctx, task, res)
	}
	t0 := time.Now()
	err := n.r.Prepare(ctx, task)
	preparing.Store(false)
	if err != nil {
		return err
	}
	res.Timings.LoadMS = time.Since(t0).Milliseconds()
	var renderTime time.Duration
	last := time.Now() // of the task's last event
	for i, f := range task.Frames {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i == len(task.Frames)-1 && n.pullAhead != nil {
			n.pullAhead()
		}
		fstart := time.Now()
		steps := 0
		png, err := n.r.Render(ctx, task, f, func(step, total int) {
			steps = total
			// The frame event reports the last step.
			if now := time.Now(); step < total && now.Sub(last) >= progressEvery {
				last = now
				n.progress(task, wire.Progress{Stage: wire.StageStep, Frame: f.Index, Step: step, Steps: total})
			}
		})
		if err != nil {
			return err
		}
		rendered := time.Now()
		renderTime += rendered.Sub(fstart)
		if err := n.upload(ctx, f.Key, png, "image/png"); err != nil {
			return err
		}
		res.Timings.UploadMS += time.Since(rendered).Milliseconds()
		res.Steps = steps
		res.Frames = append(res.Frames, wire.FrameResult{Index: f.Index, Seed: f.Seed, Key: f.Key,
			Bytes: int64(len(png)), RenderMS: time.Since(fstart).Milliseconds(),
			GPUSeconds: rendered.Sub(fstart).Seconds()})
		n.metrics.frames.Inc()
		n.metrics.frame.Observe(time.Since(fstart).Seconds())
		// A frame that took a while always says so; quick ones at most
		// every progressEvery (the task's result lists them all).
		if now := time.Now(); now.Sub(fstart) >= progressEvery || now.Sub(last) >= progressEvery {
			last = now
			n.progress(task, wire.Progress{Stage: wire.StageFrame, Frame: f.Index, Step: steps, Steps: steps})
		}
	}
	res.Timings.DenoiseMS = renderTime.Milliseconds()
	res.GPUSeconds = renderTime.Seconds()
	return nil
}

// upload writes a frame (or an assembled file) to S3, retrying a few
// times. Overwriting is fine: a redelivered task writes the same bytes to
// the same key.
func (n *Node) upload(ctx context.Context, key string, data []byte, ctype string) error {
	err := s3Retries(ctx, func() (bool, error) {
		uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return false, n.s3.PutBytes(uctx, n.opts.S3.Bucket, key, data, ctype)
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("node: upload %s: %w: %w", key, ErrUnavailable, err)
	}
	return err
}

// s3Retries runs op up to four times, 200, 400 and 800 ms apart, until it
// succeeds, says to stop (its error is then final) or ctx ends (ctx's
// error). It returns op's last error.
func s3Retries(ctx context.Context, op func() (stop bool, err error)) error {
	var err error
	delay := 200 * time.Millisecond
	for try := 0; try < 4; try++ {
		if try > 0 {
			sleepCtx(ctx, delay)
			delay *= 2
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var stop bool
		if stop, err = op(); err == nil || stop {
			return err
		}
	}
	return err
}

// succeed publishes the result, then acks.
func (n *Node) succeed(msg jetstream.Msg, task *wire.Task, res *wire.Result, log hclog.Logger) {
	// One message id per run: a publish retried by this run is
	// de-duplicated, while a second run's result reaches the coordinator,
	// which applies the first and counts the second as a double render.
	if err := n.publishResult(task, res, task.MsgID()+".d"+strconv.Itoa(res.Delivery)+".ok"); err != nil {
		log.Warn("result not published, returning the task", "error", err)
		_ = msg.NakWithDelay(nakDelay(res.Delivery))
		return
	}
	actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.metrics.tasks.WithLabelValues(resultDone).Inc()
	if err := msg.DoubleAck(actx); err != nil {
		// The task may come back; its frames are overwritten with the same
		// bytes, and the coordinator applies only the first result.
		log.Warn("ack failed", "error", err)
	}
	log.Debug("task done", "total_ms", res.Timings.TotalMS)
}

// fail settles a task that did not succeed: returned to the queue when the
// node or a backing system is at fault, otherwise terminated with a result
// that tells the coordinator what happened and whether a retry may help.
func (n *Node) fail(msg jetstream.Msg, task *wire.Task, res *wire.Result, err error, log hclog.Logger) {
	var te *TaskError
	switch {
	case errors.Is(err, errDrainTimeout):
		log.Warn("drain timeout, returning the task to the queue")
		n.metrics.tasks.WithLabelValues(resultReturned).Inc()
		_ = msg.Nak()
		return
	case errors.Is(err, ErrUnavailable):
		n.metrics.tasks.WithLabelValues(resultReturned).Inc()
		d := nakDelay(res.Delivery)
		log.Warn("backing system failed, returning the task", "error", err, "retry_in", d)
		_ = msg.NakWithDelay(d)
		n.pause(min(d, 5*time.Second))
		return
	case errors.Is(err, errJobCancelled):
		te = &TaskError{Code: wire.CodeCancelled, Permanent: true, Err: err}
	case errors.As(err, &te):
	default:
		te = &TaskError{Code: wire.CodeRenderFailed, Err: err}
	}
	res.Error = &wire.Error{Code: te.Code, Message: te.Err.Error()}
	if te.Permanent {
		no := false
		res.Retryable = &no
	}
	if res.FinishedAt.IsZero() {
		res.FinishedAt = time.Now().UTC()
	}
	if te.Code != wire.CodeCancelled {
		log.Warn("task failed", "code", te.Code, "error", te.Err, "retryable", res.CanRetry())
	}
	if res.JobID != "" && wire.ValidID(res.JobID) {
		msgID := task.MsgID() + ".d" + strconv.Itoa(res.Delivery) + ".fail"
		if perr := n.publishResult(task, res, msgID); perr != nil {
			log.Warn("failure not published, returning the task", "error", perr)
			_ = msg.NakWithDelay(nakDelay(res.Delivery))
			return
		}
	}
	n.metrics.tasks.WithLabelValues(resultFailed).Inc()
	if terr := msg.TermWithReason(string(te.Code) + ": " + truncate(te.Err.Error(), 200)); terr != nil {
		log.Warn("term failed", "error", terr)
	}
}

// publishResult publishes res on the RESULTS stream, retrying briefly.
func (n *Node) publishResult(task *wire.Task, res *wire.Result, msgID string) error {
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("node: encode result: %w", err)
	}
	m := &nats.Msg{Subject: wire.ResultSubject(res.JobID), Data: data, Header: nats.Header{}}
	m.Header.Set(wire.HeaderTaskID, task.ID)
	m.Header.Set(wire.HeaderMsgID, msgID)
	delay := 100 * time.Millisecond
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = n.js.PublishMsg(ctx, m)
		cancel()
		if err == nil || try == 3 {
			break
		}
		time.Sleep(delay)
		delay *= 2
	}
	if err != nil {
		return fmt.Errorf("node: publish result: %w", err)
	}
	return nil
}

// progress publishes a best-effort progress event.
func (n *Node) progress(task *wire.Task, p wire.Progress) {
	if task.JobID == "" {
		return
	}
	p.JobID, p.TaskID, p.NodeID, p.Time = task.JobID, task.ID, n.opts.ID, time.Now().UTC()
	if len(task.Frames) > 0 && (p.Stage == wire.StageStarted || p.Stage == wire.StageLoading) {
		p.Frame = task.Frames[0].Index
	}
	data, err := json.Marshal(p)
	if err == nil {
		_ = n.nc.Publish(wire.ProgressSubject(task.JobID), data)
	}
}

// nakDelay backs off with the delivery count: 1s, 2s, 4s ... up to 30s.
func nakDelay(delivered int) time.Duration {
	d := time.Second << min(max(delivered-1, 0), 5)
	return min(d, maxNakDelay)
}

func (n *Node) gpuName() string {
	if len(n.fp.Devices) > 0 {
		return n.fp.Devices[0].Name
	}
	return n.fp.Backend
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
