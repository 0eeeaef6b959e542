package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
)

func TestFarm_BatchOf200OnThreeNodes(t *testing.T) {
	f := newFarm(t)
	c := f.startCoordinator(t)
	var nodes []string
	for _, id := range []string{"n1", "n2", "n3"} {
		f.startNode(t, f.nodeOptions(t, id, 8, 5*time.Millisecond))
		nodes = append(nodes, id)
	}
	spec := batch("two hundred", []string{"a red cube", "a blue ball", "a green cone", "a grey box"}, 50, 4)
	st, err := c.cli.Submit(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.FramesTotal != 200 || st.TasksTotal != 50 {
		t.Fatalf("accepted %d frames in %d tasks, want 200 in 50", st.FramesTotal, st.TasksTotal)
	}
	final := waitJob(t, c.cli, st.ID, 60*time.Second)
	if final.State != wire.JobDone || final.FramesDone != 200 || final.FramesFailed != 0 {
		t.Fatalf("job ended %s with %d done, %d failed: %s", final.State, final.FramesDone, final.FramesFailed, final.Error)
	}
	m := f.checkComplete(t, st.ID, 200)
	// Every node took part, and the manifest's per-node counts add up.
	sum := 0
	for _, id := range nodes {
		if m.Nodes[id] == 0 {
			t.Errorf("node %s rendered nothing: %v", id, m.Nodes)
		}
		sum += m.Nodes[id]
	}
	if sum != 200 {
		t.Errorf("manifest node counts %v add up to %d", m.Nodes, sum)
	}
	// The API's own view of the manifest is the one in S3.
	api, err := c.cli.Manifest(context.Background(), st.ID)
	if err != nil || len(api.Frames) != 200 {
		t.Errorf("manifest through the API: %d frames, %v", len(api.Frames), err)
	}
}

func TestFarm_SIGKILLedNodeLosesNoFrame(t *testing.T) {
	f := newFarm(t)
	c := f.startCoordinator(t)
	const delay = 400 * time.Millisecond // 1.6 s per task of 4 frames
	child := f.startChildNode(t, "doomed", delay)
	f.startNode(t, f.nodeOptions(t, "steady", 8, 100*time.Millisecond))
	st, err := c.cli.Submit(context.Background(), batch("kill", []string{"a lighthouse", "a harbour"}, 16, 4))
	if err != nil {
		t.Fatal(err)
	}
	victim := f.currentTask(t, "doomed")
	time.Sleep(delay / 2) // mid-task, well before its 1.6 s are up
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killedAt := time.Now()

	final := waitJob(t, c.cli, st.ID, 60*time.Second)
	if final.State != wire.JobDone || final.FramesDone != 32 {
		t.Fatalf("job ended %s with %d/32 frames: %s", final.State, final.FramesDone, final.Error)
	}
	m := f.checkComplete(t, st.ID, 32)
	// The killed node's task came back (redelivered after the ack wait) and
	// another node finished it.
	mt := f.manifestTask(t, st.ID, victim)
	if mt.State != wire.TaskDone || mt.Node != "steady" || mt.Attempt < 2 || mt.Renders != 1 {
		t.Fatalf("killed task %s: %+v; want done once by steady on attempt 2 or later", victim, mt)
	}
	if mt.StartedAt.Before(killedAt) {
		t.Errorf("killed task restarted at %s, before the kill at %s", mt.StartedAt, killedAt)
	}
	for _, fr := range m.Frames {
		if fr.TaskID == victim && fr.Node != "steady" {
			t.Errorf("manifest frame %d of the killed task credits %s", fr.Index, fr.Node)
		}
	}
	// The lease is the liveness signal: the dead node's entry is gone.
	f.waitNode(t, "doomed", func(e *wire.NodeInfo) bool { return e == nil })
}

func TestFarm_CoordinatorRestartFinishesJob(t *testing.T) {
	f := newFarm(t)
	first := f.startCoordinator(t)
	f.startNode(t, f.nodeOptions(t, "a", 8, 30*time.Millisecond))
	f.startNode(t, f.nodeOptions(t, "b", 8, 30*time.Millisecond))
	st, err := first.cli.Submit(context.Background(), batch("restart", []string{"a fox", "a hare", "an owl"}, 40, 4))
	if err != nil {
		t.Fatal(err)
	}
	var before wire.JobStatus
	farmtest.Eventually(t, 30*time.Second, func() bool {
		before, err = first.cli.Job(context.Background(), st.ID, "")
		return err == nil && before.FramesDone >= 20
	})
	first.stop(t)
	if before.FramesDone >= 120 {
		t.Fatalf("test setup: the job finished (%d frames) before the coordinator stopped", before.FramesDone)
	}
	// The nodes keep rendering while no coordinator runs; their results
	// wait on the RESULTS stream.
	time.Sleep(500 * time.Millisecond)

	second := f.startCoordinator(t)
	final := waitJob(t, second.cli, st.ID, 60*time.Second)
	if final.State != wire.JobDone || final.FramesDone != 120 {
		t.Fatalf("after the restart the job ended %s with %d/120 frames: %s", final.State, final.FramesDone, final.Error)
	}
	f.checkComplete(t, st.ID, 120)
	t.Logf("coordinator stopped at %d/120 frames; the new one finished the job", before.FramesDone)
}

func TestFarm_TooSmallNodeNeverReceivesTask(t *testing.T) {
	f := newFarm(t)
	c := f.startCoordinator(t)
	small := f.startNode(t, f.nodeOptions(t, "small", 8, 5*time.Millisecond))
	ctx := context.Background()
	big, err := c.cli.Submit(ctx, wire.JobSpec{Model: "sd15", ModelFamily: wire.FamilySD1, Precision: wire.PrecisionFP32,
		Prompts: []string{"a cathedral"}, Seeds: wire.SeedRange(1, 2), Width: 1024, Height: 1024, Steps: 4, FramesPerTask: 1})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(f.entry(t, "small").Classes, big.Class) {
		t.Fatalf("test setup: the small node serves class %s", big.Class)
	}
	// A job the node can run proves it pulls, and that its record works.
	little, err := c.cli.Submit(ctx, batch("little", []string{"a pebble"}, 8, 4))
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c.cli, little.ID, 30*time.Second); st.State != wire.JobDone {
		t.Fatalf("small job ended %s", st.State)
	}
	time.Sleep(time.Second) // several poll intervals of the idle node

	got := small.Received()
	if len(got) != 2 {
		t.Errorf("small node received %v, want the 2 tasks of the small job", got)
	}
	for _, id := range got {
		if strings.HasPrefix(id, big.ID) {
			t.Errorf("small node received task %s of the big job", id)
		}
	}
	st, err := c.cli.Job(ctx, big.ID, client.TasksUnfinished)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != wire.JobQueued || st.TasksWaiting != 2 {
		t.Errorf("big job: state %s, %d waiting; want queued with 2 waiting", st.State, st.TasksWaiting)
	}
	// What `farm job ID` prints: the same client call and formatter.
	var out bytes.Buffer
	if err := client.WriteJob(&out, st); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"waiting   no registered node can run class " + string(big.Class),
		"node small: vram: class " + string(big.Class) + " needs",
		"node has 8.0 GiB",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("farm job output lacks %q:\n%s", want, text)
		}
	}
	t.Logf("farm job %s:\n%s", big.ID, text)
}

func TestFarm_CancelStopsRendering(t *testing.T) {
	f := newFarm(t)
	c := f.startCoordinator(t)
	const delay = time.Second // 4 s per task: a cancel must cut it short
	f.startNode(t, f.nodeOptions(t, "c1", 8, delay))
	f.startNode(t, f.nodeOptions(t, "c2", 8, delay))
	ctx := context.Background()
	st, err := c.cli.Submit(ctx, batch("cancel me", []string{"a storm"}, 64, 4))
	if err != nil {
		t.Fatal(err)
	}
	// Both nodes are mid-task, with frames already in S3.
	farmtest.Eventually(t, 15*time.Second, func() bool {
		e1, e2 := f.entry(t, "c1"), f.entry(t, "c2")
		return e1 != nil && e2 != nil && e1.CurrentTask != "" && e2.CurrentTask != "" && len(f.frameKeys(t, st.ID)) >= 2
	})
	cancelled := time.Now()
	cst, err := c.cli.Cancel(ctx, st.ID)
	if err != nil || cst.State != wire.JobCancelled {
		t.Fatalf("cancel: state %s, %v", cst.State, err)
	}
	farmtest.Eventually(t, 5*time.Second, func() bool {
		e1, e2 := f.entry(t, "c1"), f.entry(t, "c2")
		return e1.CurrentTask == "" && e2.CurrentTask == ""
	})
	stopped := time.Since(cancelled)
	if stopped > 2*time.Second {
		t.Errorf("nodes stopped rendering %s after the cancel; want under 2s (a task takes 4s)", stopped)
	}
	n1 := len(f.frameKeys(t, st.ID))
	if n1 >= 64 {
		t.Errorf("all 64 frames in S3 after the cancel")
	}
	// Nothing is orphaned: once swept, the frames in S3 are exactly those
	// the manifest lists as rendered before the cancel (the cut-short
	// tasks' frames are deleted).
	farmtest.Eventually(t, 15*time.Second, func() bool {
		resp, err := f.etc.Get(ctx, wire.JobKey(st.ID))
		var rec wire.JobRecord
		return err == nil && len(resp.Kvs) == 1 && json.Unmarshal(resp.Kvs[0].Value, &rec) == nil && rec.Swept
	})
	m := f.manifest(t, st.ID)
	listed := map[string]bool{}
	for _, fr := range m.Frames {
		listed[fr.Key] = true
	}
	keys := f.frameKeys(t, st.ID)
	for _, k := range keys {
		if !listed[k] {
			t.Errorf("frame %s is in S3 but not in the cancelled job's manifest", k)
		}
	}
	if len(keys) != len(m.Frames) || len(m.Notes) == 0 {
		t.Errorf("%d frames in S3, %d in the manifest (notes %q)", len(keys), len(m.Frames), m.Notes)
	}
	final, err := c.cli.Job(ctx, st.ID, "")
	if err != nil || final.State != wire.JobCancelled || final.TasksRunning != 0 {
		t.Errorf("job after cancel: state %s, %d running, %v", final.State, final.TasksRunning, err)
	}
	for _, id := range []string{"c1", "c2"} {
		if e := f.entry(t, id); e.State != wire.NodeReady {
			t.Errorf("node %s is %s after the cancel", id, e.State)
		}
	}
	t.Logf("nodes idle %s after the cancel; %d of 64 frames were written, %d kept", stopped.Round(time.Millisecond), n1, len(keys))

	// farm delete: nothing of the job is left.
	del, err := c.cli.Delete(ctx, st.ID)
	if err != nil || del.Objects != len(keys)+1 {
		t.Fatalf("delete: %+v %v; want %d frames and the manifest removed", del, err, len(keys))
	}
	if n := f.countObjects(t, wire.JobObjectsPrefix(st.ID)); n != 0 {
		t.Errorf("%d objects left after delete", n)
	}
	if _, err := c.cli.Job(ctx, st.ID, ""); !client.IsCode(err, wire.CodeNotFound) {
		t.Errorf("deleted job: %v, want not_found", err)
	}
	if n := f.countKeys(t, wire.JobKey(st.ID)) + f.countKeys(t, wire.CancelledKey(st.ID)); n != 0 {
		t.Errorf("%d etcd keys of the deleted job left", n)
	}
}

func TestFarm_InvalidJobRefusedWhole(t *testing.T) {
	f := newFarm(t)
	c := f.startCoordinator(t)
	f.startNode(t, f.nodeOptions(t, "idle", 8, 0))
	ctx := context.Background()
	bad := wire.JobSpec{Model: "", Width: 100, Height: 4, Steps: 500, CFGScale: wire.GuidanceScale(99), Sampler: "magic",
		Priority: "urgent", FramesPerTask: 1000, Seeds: wire.SeedRange(-5, 3)}
	_, err := c.cli.Submit(ctx, bad)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != wire.CodeInvalidJob {
		t.Fatalf("submit = %v, want an invalid_job error", err)
	}
	fields := []string{"model", "prompts", "width", "height", "steps", "cfg_scale", "sampler",
		"priority", "frames_per_task", "seeds.start"}
	for _, field := range fields {
		if !ae.Fields.Has(field) {
			t.Errorf("no error for field %s in %+v", field, ae.Fields)
		}
	}
	if len(ae.Fields) < len(fields) {
		t.Errorf("%d field errors, want at least %d", len(ae.Fields), len(fields))
	}
	// Nothing was created: no task ever reached the stream, no job in etcd.
	s, err := f.js.Stream(ctx, wire.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 || info.State.LastSeq != 0 {
		t.Errorf("TASKS stream: %d messages, last sequence %d; want never written", info.State.Msgs, info.State.LastSeq)
	}
	for _, prefix := range []string{wire.JobsPrefix, wire.ChunksPrefix} {
		if n := f.countKeys(t, prefix); n != 0 {
			t.Errorf("%d etcd keys under %s", n, prefix)
		}
	}
	if jobs, err := c.cli.Jobs(ctx, "", 0); err != nil || len(jobs) != 0 {
		t.Errorf("job list = %+v, %v; want empty", jobs, err)
	}
}

func TestFarm_SIGTERMDrainsNode(t *testing.T) {
	f := newFarm(t)
	c := f.startCoordinator(t)
	const delay = 400 * time.Millisecond // 1.6 s per task of 4 frames
	child := f.startChildNode(t, "drainee", delay)
	st, err := c.cli.Submit(context.Background(), batch("drain", []string{"a meadow"}, 16, 4))
	if err != nil {
		t.Fatal(err)
	}
	var current string
	f.waitNode(t, "drainee", func(e *wire.NodeInfo) bool {
		if e != nil && e.CurrentTask != "" {
			current = e.CurrentTask
			return true
		}
		return false
	})
	time.Sleep(delay / 2)
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	relief := f.startNode(t, f.nodeOptions(t, "relief", 8, 20*time.Millisecond))
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("drained node exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the node did not exit after SIGTERM")
	}
	// Deregistered on the way out, not left to expire.
	if e := f.entry(t, "drainee"); e != nil {
		t.Errorf("entry of the drained node still present: %+v", e)
	}

	final := waitJob(t, c.cli, st.ID, 30*time.Second)
	if final.State != wire.JobDone || final.FramesDone != 16 {
		t.Fatalf("job ended %s with %d/16 frames: %s", final.State, final.FramesDone, final.Error)
	}
	f.checkComplete(t, st.ID, 16)
	// The task in hand at SIGTERM was finished by the draining node itself,
	// on its first delivery: not dropped, not handed back.
	if mt := f.manifestTask(t, st.ID, current); mt.State != wire.TaskDone || mt.Node != "drainee" || mt.Attempt != 1 {
		t.Errorf("task %s in hand at SIGTERM: %+v; want done by drainee on attempt 1", current, mt)
	}
	if slices.Contains(relief.Received(), current) {
		t.Errorf("task %s was redelivered to relief", current)
	}
}
