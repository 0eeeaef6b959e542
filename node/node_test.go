package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
)

func TestNode_RegistersAndDeregisters(t *testing.T) {
	f := newTestFarm(t)
	o := f.options("reg-node", 8)
	o.Labels = map[string]string{"zone": "lab"}
	rn := f.start(t, o)

	e := f.entry(t, "reg-node")
	if e.Backend != wire.BackendCPU || e.State != wire.NodeReady || e.Labels["zone"] != "lab" || e.Renderer != "load-test" {
		t.Errorf("entry = %+v", e)
	}
	if len(e.GPUs) != 1 || e.GPUs[0].TotalVRAM != 8<<30 || e.UsableBytes != 8<<30 {
		t.Errorf("devices = %+v, usable %d; want one device of 8 GiB", e.GPUs, e.UsableBytes)
	}
	want := wire.ClassesForNode(wire.BackendCPU, 8<<30)
	if len(e.Classes) != len(want) || e.Classes[0] != "cpu8" {
		t.Errorf("classes = %v, want %v", e.Classes, want)
	}
	resp, err := f.etcd.Get(context.Background(), wire.NodeKey("reg-node"))
	if err != nil || resp.Kvs[0].Lease == 0 {
		t.Fatalf("entry not under a lease: %v", err)
	}

	rn.stop()
	if err := rn.wait(t, 10*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if e := f.entry(t, "reg-node"); e != nil {
		t.Errorf("entry still present after stop: %+v", e)
	}
}

func TestNode_SameIDWaitsForLiveOwner(t *testing.T) {
	f := newTestFarm(t)
	f.start(t, f.options("twin", 8))
	o := f.options("twin", 8)
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(context.Background())
	if !errors.Is(err, ErrIDTaken) {
		t.Fatalf("second node with the same id: Run = %v, want ErrIDTaken", err)
	}
}

func TestNode_RunsTaskUploadsFramesAndAcks(t *testing.T) {
	f := newTestFarm(t)
	o := f.options("worker", 8)
	// Longer than the consumer's ack wait: only in-progress signals keep
	// the task from being redelivered.
	o.LoadTestDelay = 700 * time.Millisecond
	f.start(t, o)
	// An idle second node would get the task if it were redelivered.
	standby := f.options("standby", 8)
	standby.LoadTestDelay = o.LoadTestDelay
	f.start(t, standby)
	tasks := job(t, "job1", 3, 3, nil)
	f.publish(t, tasks...)

	res := f.results(t, 1, 20*time.Second)
	if len(res) != 1 {
		t.Fatalf("got %d results, want 1", len(res))
	}
	r := res[0]
	if !r.OK() || r.TaskID != tasks[0].ID || len(r.Frames) != 3 || r.Delivery != 1 {
		t.Fatalf("result = %+v", r)
	}
	if r.Timings.TotalMS < 2000 || r.FinishedAt.Before(r.StartedAt) {
		t.Errorf("timings = %+v", r.Timings)
	}
	for i, fr := range r.Frames {
		if fr.Key != wire.FrameKey("job1", i) || fr.Seed != int64(7+i) {
			t.Errorf("frame %d = %+v", i, fr)
		}
		data := f.object(t, fr.Key)
		if _, err := png.Decode(bytes.NewReader(data)); err != nil || int64(len(data)) != fr.Bytes {
			t.Errorf("frame %s: %d bytes, png error %v", fr.Key, len(data), err)
		}
	}
	farmtest.Eventually(t, 5*time.Second, func() bool { return f.pendingTasks(t) == 0 })
	// A redelivery would run the task on the other node too (its result
	// would be de-duplicated, so count what the nodes did).
	time.Sleep(2 * ackWait)
	f.waitState(t, "worker", wire.NodeReady)
	f.waitState(t, "standby", wire.NodeReady)
	if done := f.entry(t, "worker").TasksDone + f.entry(t, "standby").TasksDone; done != 1 {
		t.Errorf("the nodes ran the task %d times, want 1", done)
	}
}

func TestNode_TooSmallNeverReceivesBigTask(t *testing.T) {
	f := newTestFarm(t)
	big := job(t, "bigjob", 1, 1, func(s *wire.JobSpec) {
		s.Model, s.ModelFamily, s.Width, s.Height, s.Precision = "sd15", wire.FamilySD1, 1024, 1024, wire.PrecisionFP32
	})
	small := job(t, "smalljob", 1, 1, nil)
	if big[0].VRAMBytes <= 8<<30 {
		t.Fatalf("test setup: big task needs only %s", wire.FormatBytes(big[0].VRAMBytes))
	}
	f.publish(t, big[0], small[0])
	f.start(t, f.options("small", 8))

	res := f.results(t, 2, 3*time.Second)
	if len(res) != 1 || res[0].TaskID != small[0].ID {
		t.Fatalf("small node results = %+v, want only %s", res, small[0].ID)
	}
	if n := f.pendingTasks(t); n != 1 {
		t.Fatalf("pending tasks = %d, want the big one", n)
	}
	f.start(t, f.options("large", 80))
	res = f.results(t, 1, 10*time.Second)
	if len(res) != 1 || res[0].TaskID != big[0].ID || res[0].NodeID != "large" {
		t.Fatalf("large node results = %+v", res)
	}
}

func TestNode_CancelAbortsRender(t *testing.T) {
	f := newTestFarm(t)
	o := f.options("canceller", 8)
	o.LoadTestDelay = time.Minute
	f.start(t, o)
	tasks := job(t, "longjob", 2, 2, nil)
	f.publish(t, tasks...)
	farmtest.Eventually(t, 10*time.Second, func() bool {
		e := f.entry(t, "canceller")
		return e != nil && e.CurrentTask == tasks[0].ID
	})
	data, _ := json.Marshal(wire.Cancel{JobID: "longjob", Reason: "test"})
	sent := time.Now()
	if err := f.nc.Publish(wire.CancelSubject("longjob"), data); err != nil {
		t.Fatal(err)
	}
	res := f.results(t, 1, 5*time.Second)
	if len(res) != 1 || res[0].Error == nil || res[0].Error.Code != wire.CodeCancelled || res[0].CanRetry() {
		t.Fatalf("results = %+v, want one cancelled", res)
	}
	if d := time.Since(sent); d > 2*time.Second {
		t.Errorf("cancel took %s", d)
	}
	farmtest.Eventually(t, 5*time.Second, func() bool { return f.pendingTasks(t) == 0 })
	f.waitState(t, "canceller", wire.NodeReady)
}

func TestNode_SkipsTaskOfCancelledJob(t *testing.T) {
	f := newTestFarm(t)
	if _, err := f.etcd.Put(context.Background(), wire.CancelledKey("gone"), "{}"); err != nil {
		t.Fatal(err)
	}
	f.start(t, f.options("skipper", 8))
	f.publish(t, job(t, "gone", 1, 1, nil)...)
	res := f.results(t, 1, 10*time.Second)
	if len(res) != 1 || res[0].Error == nil || res[0].Error.Code != wire.CodeCancelled || len(res[0].Frames) != 0 {
		t.Fatalf("results = %+v", res)
	}
	if data := f.object(t, wire.FrameKey("gone", 0)); data != nil {
		t.Error("a frame of a cancelled job was written")
	}
}

func TestNode_DrainFinishesCurrentTask(t *testing.T) {
	f := newTestFarm(t)
	o := f.options("drainer", 8)
	o.LoadTestDelay = 600 * time.Millisecond
	rn := f.start(t, o)
	tasks := job(t, "drainjob", 2, 2, nil)
	f.publish(t, tasks...)
	farmtest.Eventually(t, 10*time.Second, func() bool {
		e := f.entry(t, "drainer")
		return e != nil && e.CurrentTask != ""
	})
	rn.stop() // SIGTERM
	farmtest.Eventually(t, 5*time.Second, func() bool {
		e := f.entry(t, "drainer")
		return e == nil || e.State == wire.NodeDraining
	})
	if err := rn.wait(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	res := f.results(t, 1, 5*time.Second)
	if len(res) != 1 || !res[0].OK() || len(res[0].Frames) != 2 {
		t.Fatalf("results = %+v, want the task finished", res)
	}
	if n := f.pendingTasks(t); n != 0 {
		t.Errorf("pending = %d", n)
	}
	if f.entry(t, "drainer") != nil {
		t.Error("entry left after drain")
	}
}

func TestNode_DrainTimeoutReturnsTask(t *testing.T) {
	f := newTestFarm(t)
	o := f.options("slow", 8)
	o.LoadTestDelay = time.Minute
	o.DrainTimeout = 300 * time.Millisecond
	rn := f.start(t, o)
	tasks := job(t, "returned", 1, 1, nil)
	f.publish(t, tasks...)
	farmtest.Eventually(t, 10*time.Second, func() bool {
		e := f.entry(t, "slow")
		return e != nil && e.CurrentTask != ""
	})
	rn.stop()
	if err := rn.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if res := f.results(t, 1, 500*time.Millisecond); len(res) != 0 {
		t.Fatalf("a returned task published a result: %+v", res)
	}
	// Nothing lost: another node picks the returned task up.
	f.start(t, f.options("fast", 8))
	res := f.results(t, 1, 10*time.Second)
	if len(res) != 1 || !res[0].OK() || res[0].NodeID != "fast" || res[0].Delivery != 2 {
		t.Fatalf("results = %+v", res)
	}
}

// failingRenderer fails every task in Prepare.
type failingRenderer struct{ err error }

func (r *failingRenderer) Name() string { return "failing" }
func (r *failingRenderer) Prepare(context.Context, *wire.Task) error {
	return r.err
}
func (r *failingRenderer) Render(context.Context, *wire.Task, wire.Frame, func(int, int)) ([]byte, error) {
	return nil, r.err
}

func TestNode_FailuresAreReportedWithCodes(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		code      wire.Code
		retryable bool
	}{
		{"permanent", Permanent(wire.CodeModelLoadFailed, errors.New("corrupt header")), wire.CodeModelLoadFailed, false},
		{"retryable", Retryable(wire.CodeOutOfMemory, errors.New("alloc failed")), wire.CodeOutOfMemory, true},
		{"plain", errors.New("boom"), wire.CodeRenderFailed, true},
	}
	f := newTestFarm(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := f.options("failer-"+c.name, 8)
			o.Renderer = &failingRenderer{err: c.err}
			rn := f.start(t, o)
			defer rn.stop()
			f.publish(t, job(t, "fail"+strings.Repeat("x", i), 1, 1, nil)...)
			res := f.results(t, 1, 10*time.Second)
			if len(res) != 1 || res[0].Error == nil || res[0].Error.Code != c.code || res[0].CanRetry() != c.retryable {
				t.Fatalf("results = %+v", res)
			}
			// Terminated: gone from the stream, never redelivered.
			farmtest.Eventually(t, 5*time.Second, func() bool { return f.pendingTasks(t) == 0 })
			if extra := f.results(t, 1, 2*ackWait); len(extra) != 0 {
				t.Errorf("task came back: %+v", extra)
			}
		})
	}
}

func TestNode_InvalidTaskIsTerminated(t *testing.T) {
	f := newTestFarm(t)
	f.start(t, f.options("strict", 8))
	task := job(t, "badjob", 1, 1, nil)[0]
	task.Frames[0].Key = "models/evil/files/x"
	f.publish(t, task)
	res := f.results(t, 1, 10*time.Second)
	if len(res) != 1 || res[0].Error == nil || res[0].Error.Code != wire.CodeInvalidTask || res[0].CanRetry() {
		t.Fatalf("results = %+v", res)
	}
	farmtest.Eventually(t, 5*time.Second, func() bool { return f.pendingTasks(t) == 0 })
}

func TestNew_RefusesBadOptions(t *testing.T) {
	cases := map[string]func(*Options){
		"bad id":     func(o *Options) { o.ID = "a/b" },
		"no nats":    func(o *Options) { o.NATS.URL = "" },
		"no bucket":  func(o *Options) { o.S3.Bucket = "" },
		"renderer":   func(o *Options) { o.RendererName = "magic" },
		"too small":  func(o *Options) { o.VRAMBytes = 1 << 30 },
		"no models":  func(o *Options) { o.RendererName = RendererEngine },
		"short ttl":  func(o *Options) { o.LeaseTTL = time.Millisecond },
		"no etcd":    func(o *Options) { o.Etcd.Endpoints = nil },
		"no s3 keys": func(o *Options) { o.S3.SecretKey = "" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			o := Options{
				ID:   "ok",
				NATS: connectNATS(), Etcd: connectEtcd(), S3: connectS3(),
				RendererName: RendererLoadTest, VRAMBytes: 8 << 30,
			}
			if _, err := New(o); err != nil {
				t.Fatalf("valid options refused: %v", err)
			}
			mutate(&o)
			if _, err := New(o); err == nil {
				t.Fatal("New accepted bad options")
			}
		})
	}
}

func TestNode_RestartAfterSIGKILLReplacesItsEntryAtOnce(t *testing.T) {
	f := newTestFarm(t)
	cache := t.TempDir()
	child := f.startChildSpec(t, childSpec{ID: "phoenix", CacheDir: cache, LeaseTTL: 30 * time.Second})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	// Its entry lives on under a 30 s lease; the same node, restarted with
	// its cache folder, revokes that lease and registers at once.
	if f.entry(t, "phoenix") == nil {
		t.Fatal("the killed node's entry is already gone: the test needs it alive")
	}
	o := f.options("phoenix", 8)
	o.CacheDir, o.LeaseTTL = cache, 30*time.Second
	start := time.Now()
	f.start(t, o)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the restarted node registered after %s, want well under its old entry's 30 s lease", took)
	}
}

func TestNode_SIGKILLMidTaskLosesNothing(t *testing.T) {
	f := newTestFarm(t)
	child := f.startChild(t, "doomed", time.Minute)
	tasks := job(t, "survivor", 2, 2, nil)
	f.publish(t, tasks...)
	farmtest.Eventually(t, 10*time.Second, func() bool {
		e := f.entry(t, "doomed")
		return e != nil && e.CurrentTask == tasks[0].ID
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	// The lease is the liveness signal: the entry goes when it expires.
	farmtest.Eventually(t, 10*time.Second, func() bool { return f.entry(t, "doomed") == nil })

	f.start(t, f.options("heir", 8))
	res := f.results(t, 1, 15*time.Second)
	res = append(res, f.results(t, 1, 2*ackWait)...)
	if len(res) != 1 || !res[0].OK() || res[0].NodeID != "heir" || res[0].Delivery < 2 || len(res[0].Frames) != 2 {
		t.Fatalf("results = %+v, want the task finished by heir after redelivery", res)
	}
	for i := range 2 {
		if f.object(t, wire.FrameKey("survivor", i)) == nil {
			t.Errorf("frame %d missing", i)
		}
	}
	farmtest.Eventually(t, 5*time.Second, func() bool { return f.pendingTasks(t) == 0 })
}

// heldTasks is how many task messages nodes hold unacked.
func (f *testFarm) heldTasks(t testing.TB) int {
	t.Helper()
	backlog, err := connect.ClassBacklog(context.Background(), f.js)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, b := range backlog {
		held += int(b.Running)
	}
	return held
}

// TestNode_PullsTheNextTaskDuringTheLastFrame: with more tasks queued, a
// node pulls its next task while it renders the last frame of the current
// one, keeps that task alive while it waits (the frame takes longer than
// the ack wait), and runs both, one after the other, each once.
func TestNode_PullsTheNextTaskDuringTheLastFrame(t *testing.T) {
	f := newTestFarm(t)
	tasks := job(t, "ahead", 4, 2, nil)
	f.publish(t, tasks...)
	o := f.options("worker", 8)
	o.LoadTestDelay = ackWait + 300*time.Millisecond
	f.launch(t, o)
	farmtest.Eventually(t, 10*time.Second, func() bool { return f.heldTasks(t) == 2 })
	// An idle node would get the held task if it were redelivered.
	f.start(t, f.options("standby", 8))

	res := f.results(t, 2, 20*time.Second)
	if len(res) != 2 {
		t.Fatalf("got %d results, want 2", len(res))
	}
	slices.SortFunc(res, func(a, b wire.Result) int { return a.StartedAt.Compare(b.StartedAt) })
	for i, r := range res {
		if !r.OK() || r.TaskID != tasks[i].ID || r.NodeID != "worker" || r.Delivery != 1 {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	if res[1].StartedAt.Before(res[0].FinishedAt) {
		t.Errorf("the second task started at %s, before the first ended at %s", res[1].StartedAt, res[0].FinishedAt)
	}
	time.Sleep(2 * ackWait)
	f.waitState(t, "worker", wire.NodeReady)
	if done, idle := f.entry(t, "worker").TasksDone, f.entry(t, "standby").TasksDone; done != 2 || idle != 0 {
		t.Errorf("tasks done: worker %d, standby %d; want 2 and 0", done, idle)
	}
}

// TestNode_DrainGivesBackTheTaskPulledAhead: a node told to stop while it
// holds its next task finishes the current one and returns the next to the
// queue at once, where another node takes it.
func TestNode_DrainGivesBackTheTaskPulledAhead(t *testing.T) {
	f := newTestFarm(t)
	tasks := job(t, "aheaddrain", 4, 2, nil)
	// A task held when the node stopped and not given back would come back
	// only after the ack wait: make that longer than the test.
	ctx := context.Background()
	cons, err := f.js.Consumer(ctx, wire.TasksStream, wire.TaskConsumer(tasks[0].Class, tasks[0].Priority))
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	cfg.AckWait = time.Minute
	if _, err := f.js.UpdateConsumer(ctx, wire.TasksStream, cfg); err != nil {
		t.Fatal(err)
	}
	f.publish(t, tasks...)
	o := f.options("drainer", 8)
	o.LoadTestDelay = 800 * time.Millisecond
	rn := f.launch(t, o)
	farmtest.Eventually(t, 10*time.Second, func() bool { return f.heldTasks(t) == 2 })
	rn.stop()
	if err := rn.wait(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	f.start(t, f.options("fast", 8))
	res := f.results(t, 2, 10*time.Second)
	if len(res) != 2 {
		t.Fatalf("got %d results, want 2", len(res))
	}
	slices.SortFunc(res, func(a, b wire.Result) int { return a.StartedAt.Compare(b.StartedAt) })
	if r := res[0]; !r.OK() || r.TaskID != tasks[0].ID || r.NodeID != "drainer" {
		t.Errorf("first result = %+v, want the drained node's", r)
	}
	if r := res[1]; !r.OK() || r.TaskID != tasks[1].ID || r.NodeID != "fast" || r.Delivery != 2 {
		t.Errorf("second result = %+v, want the task given back, run by fast as delivery 2", r)
	}
}

// slowLoad is the load-test renderer with a model that takes load to get
// ready.
type slowLoad struct {
	LoadTest
	load time.Duration
}

func (s *slowLoad) Prepare(ctx context.Context, task *wire.Task) error {
	sleepCtx(ctx, s.load)
	return ctx.Err()
}

// progressOf collects the progress events of job until a result is in.
func (f *testFarm) progressOf(t *testing.T, jobID string, tasks []wire.Task) []wire.Progress {
	t.Helper()
	sub, err := f.nc.SubscribeSync(wire.ProgressSubject(jobID))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	f.publish(t, tasks...)
	if res := f.results(t, len(tasks), 20*time.Second); len(res) != len(tasks) {
		t.Fatalf("%d results, want %d", len(res), len(tasks))
	}
	// A node publishes a task's events before its result, on one
	// connection, so once the results are in, a round trip to the server
	// puts every event in sub's queue (an asynchronous handler might not
	// have run yet).
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []wire.Progress
	for {
		m, err := sub.NextMsg(10 * time.Millisecond)
		if errors.Is(err, nats.ErrTimeout) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		var p wire.Progress
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
}

// stages spells the stages of events, with a frame's or step's counts.
func stages(events []wire.Progress) []string {
	var out []string
	for _, p := range events {
		s := p.Stage
		if p.Steps > 0 {
			s += fmt.Sprintf(" %d/%d", p.Step, p.Steps)
		}
		out = append(out, s)
	}
	return out
}

// A quick task says nothing (its result says it all). A slow one says it
// started and is loading its model, its steps a few times a second and
// each frame with its steps. "done" is the coordinator's to say.
func TestNode_ProgressSaysWhatTakesTime(t *testing.T) {
	f := newTestFarm(t)
	fast := f.start(t, f.options("progress-fast", 8))
	if got := stages(f.progressOf(t, "progress-fast", job(t, "progress-fast", 3, 3, nil))); len(got) > 0 {
		t.Errorf("fast task: events %q, want none", got)
	}
	fast.stop()
	if err := fast.wait(t, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	o := f.options("progress-slow", 8)
	o.Renderer = &slowLoad{LoadTest: LoadTest{Delay: 1200 * time.Millisecond}, load: 700 * time.Millisecond}
	f.start(t, o)
	events := f.progressOf(t, "progress-slow", job(t, "progress-slow", 1, 1, nil))
	got := stages(events)
	if len(got) < 4 || got[0] != "started" || got[1] != "loading" || got[len(got)-1] != "frame 4/4" {
		t.Fatalf("slow task: events %q, want started, loading, steps, frame 4/4", got)
	}
	for i, s := range got[2 : len(got)-1] {
		if !strings.HasPrefix(s, "step ") || s == "step 4/4" {
			t.Errorf("slow task: event %d is %q, want a step before the last", i+2, s)
		}
		if gap := events[i+2].Time.Sub(events[i+1].Time); i > 0 && gap < progressEvery-20*time.Millisecond {
			t.Errorf("slow task: step events %s apart, want at least %s", gap, progressEvery)
		}
	}
}

// strengthSteps runs the last part of the schedule only, as an init image
// below strength 1 does.
type strengthSteps struct{ LoadTest }

func (s *strengthSteps) Render(ctx context.Context, task *wire.Task, frame wire.Frame, progress func(step, total int)) ([]byte, error) {
	return s.LoadTest.Render(ctx, task, frame, func(step, total int) {
		if step > total/2 {
			progress(step-total/2, total-total/2)
		}
	})
}

// The result says how many steps its frames ran, which the coordinator's
// done event reports: for an init image, fewer than the spec's.
func TestNode_ResultSaysTheStepsRun(t *testing.T) {
	f := newTestFarm(t)
	o := f.options("steps-run", 8)
	o.Renderer = &strengthSteps{}
	f.start(t, o)
	f.publish(t, job(t, "steps-run", 2, 2, nil)...)
	res := f.results(t, 1, 20*time.Second)
	if len(res) != 1 || !res[0].OK() || res[0].Steps != 2 {
		t.Fatalf("results %+v, want one that ran 2 of the spec's 4 steps", res)
	}
}
