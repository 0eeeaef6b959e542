package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestCoordinator_Batch_CompletesWithManifest(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	ctx := context.Background()
	nodes := []*testNode{
		{id: "n1", classes: wire.ClassesForNode(wire.BackendCPU, 8<<30)},
		{id: "n2", classes: wire.ClassesForNode(wire.BackendCPU, 8<<30)},
	}
	for _, n := range nodes {
		n.start(t, f)
	}
	st, err := r.cli.Submit(ctx, tinySpec(42))
	if err != nil {
		t.Fatal(err)
	}
	if st.FramesTotal != 42 || st.TasksTotal != 11 || st.Class != "vram4" {
		t.Fatalf("submitted %+v", st)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	final, err := r.cli.Wait(wctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != wire.JobDone || final.FramesDone != 42 || final.ManifestKey != wire.ManifestKey(st.ID) {
		t.Fatalf("final %+v", final)
	}
	m, err := r.cli.Manifest(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Frames) != 42 || m.FramesTotal != 42 || len(m.Failed) != 0 {
		t.Fatalf("manifest has %d frames, %d failed", len(m.Frames), len(m.Failed))
	}
	for i, fr := range m.Frames {
		if fr.Index != i || fr.Key != wire.FrameKey(st.ID, i) || fr.Seed != int64(1+i) || fr.Node == "" {
			t.Fatalf("manifest frame %d = %+v", i, fr)
		}
	}
	if m.GPUSeconds != 0.5*11 {
		t.Fatalf("gpu seconds %v", m.GPUSeconds)
	}
	// The manifest is the delivery record: each task ran once; its task
	// records have left etcd.
	if len(m.Tasks) != 11 {
		t.Fatalf("manifest records %d tasks, want 11", len(m.Tasks))
	}
	for _, mt := range m.Tasks {
		if mt.State != wire.TaskDone || mt.Attempt != 1 || mt.Renders != 1 || mt.Node == "" {
			t.Errorf("manifest task %+v, want done on attempt 1, rendered once", mt)
		}
	}
	if resp, err := f.etcd.Client(t).Get(ctx, wire.JobChunksPrefix(st.ID), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("%d chunk records left in etcd (%v)", resp.Count, err)
	}
	// Every frame is in S3 once.
	s3 := f.s3.Client(t)
	n := 0
	for obj := range s3.ListObjects(ctx, f.s3.Bucket, minio.ListObjectsOptions{Prefix: wire.FramesPrefix(st.ID), Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		n++
	}
	if n != 42 {
		t.Fatalf("%d frames in S3, want 42", n)
	}
	// The work was shared and nothing is left in the stream.
	if pendingTasks(t, f.nats.JetStream(t)) != 0 {
		t.Fatal("tasks left in the stream")
	}
	// farm get: download via presigned URLs.
	dir := t.TempDir()
	sum, err := r.cli.Download(ctx, st.ID, dir, client.DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := filepath.Glob(filepath.Join(dir, "frames", "*.png"))
	if sum.FrameCount != 42 || sum.TaskCount != 11 || sum.JobID != st.ID || len(got) != 42 {
		t.Fatalf("downloaded %d of %d frames (%d tasks) of job %q", len(got), sum.FrameCount, sum.TaskCount, sum.JobID)
	}
	for _, name := range got {
		if b, err := os.ReadFile(name); err != nil || !bytes.HasPrefix(b, []byte("PNG frame ")) {
			t.Fatalf("frame %s: %q, %v", name, b, err)
		}
	}
	// Presigned URLs a window at a time; a window past the job is refused.
	if files, err := r.cli.Files(ctx, st.ID, 40, 41); err != nil || len(files.Frames) != 2 || files.Frames[1].Key != wire.FrameKey(st.ID, 41) {
		t.Fatalf("files 40..41: %+v, %v", files.Frames, err)
	}
	if _, err := r.cli.Files(ctx, st.ID, 40, 42); !client.IsCode(err, wire.CodeBadRequest) {
		t.Fatalf("files 40..42 of 42 frames: %v, want bad_request", err)
	}
	// farm get --proxy: every frame through the coordinator.
	proxied := t.TempDir()
	if sum, err := r.cli.Download(ctx, st.ID, proxied, client.DownloadOptions{Proxy: true}); err != nil || sum.FrameCount != 42 {
		t.Fatalf("download through the coordinator: %d frames, %v", sum.FrameCount, err)
	}
	if got, _ := filepath.Glob(filepath.Join(proxied, "frames", "*.png")); len(got) != 42 {
		t.Fatalf("downloaded %d frames through the coordinator, want 42", len(got))
	}
	jobs, err := r.cli.Jobs(ctx, "", 0)
	if err != nil || len(jobs) != 1 || jobs[0].ID != st.ID {
		t.Fatalf("jobs = %+v, %v", jobs, err)
	}
}

func TestCoordinator_InvalidJob_EveryFieldErrorAndNoTask(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	ctx := context.Background()
	spec := wire.JobSpec{Model: "sd-tiny", Width: 13, Height: 4000, Steps: 500, Sampler: "plms", CFGScale: wire.GuidanceScale(-3)}
	_, err := r.cli.Submit(ctx, spec)
	var ae *client.APIError
	if !asAPIError(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != wire.CodeInvalidJob {
		t.Fatalf("submit error = %v", err)
	}
	for _, field := range []string{"prompts", "width", "height", "steps", "sampler", "cfg_scale"} {
		if !ae.Fields.Has(field) {
			t.Errorf("no field error for %s in %v", field, ae.Fields)
		}
	}
	if n := pendingTasks(t, f.nats.JetStream(t)); n != 0 {
		t.Fatalf("%d tasks published for an invalid job", n)
	}
	resp, err := f.etcd.Client(t).Get(ctx, wire.JobsPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("jobs stored: %v %v", resp.Count, err)
	}
}

func asAPIError(err error, target **client.APIError) bool {
	ae, ok := err.(*client.APIError)
	if ok {
		*target = ae
	}
	return ok
}

func TestCoordinator_Auth_RequiresToken(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	for _, path := range []string{"/v1/jobs", "/v1/nodes", "/healthz", "/v1/jobs/x/events"} {
		for _, hdr := range []string{"", "Bearer wrong", "Bearer " + f.token + "x"} {
			req, _ := http.NewRequest(http.MethodGet, r.c.URL()+path, nil)
			if hdr != "" {
				req.Header.Set("Authorization", hdr)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), string(wire.CodeUnauthorized)) {
				t.Fatalf("%s with %q: %d %s", path, hdr, resp.StatusCode, body)
			}
		}
	}
}

func TestCoordinator_Retry_ThenFailAfterDistinctNodes(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, func(o *Options) { o.MaxNodeFailures = 2; o.ExcludeAfter = 1 })
	r.waitLeading(t)
	ctx := context.Background()
	oom := func(wire.Task) *wire.Error { return &wire.Error{Code: wire.CodeOutOfMemory, Message: "boom"} }
	bad1 := &testNode{id: "bad1", classes: wire.ClassesForNode(wire.BackendCPU, 8<<30), fail: oom}
	bad1.start(t, f)
	spec := tinySpec(1)
	retries := 5
	spec.MaxRetries = &retries
	st, err := r.cli.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// The first failure schedules attempt 2, which excludes bad1.
	farmtest.Eventually(t, 10*time.Second, func() bool {
		for _, tk := range bad1.taken() {
			if tk.Attempt >= 2 {
				return tk.Excludes("bad1")
			}
		}
		return false
	})
	bad2 := &testNode{id: "bad2", classes: wire.ClassesForNode(wire.BackendCPU, 8<<30), fail: oom}
	bad2.start(t, f)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	final, err := r.cli.Wait(wctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != wire.JobFailed || final.FramesFailed != 1 {
		t.Fatalf("final %+v", final)
	}
	job, err := r.cli.Job(ctx, st.ID, client.TasksAll)
	if err != nil {
		t.Fatal(err)
	}
	if len(job.Tasks) != 1 || job.Tasks[0].State != wire.TaskFailed || len(job.Tasks[0].FailedNodes) != 2 {
		t.Fatalf("tasks %+v, want one failed on 2 nodes", job.Tasks)
	}
	runs := 0
	for _, n := range job.Tasks[0].FailedNodes {
		runs += n
	}
	if job.Tasks[0].Attempt < runs {
		t.Errorf("failed task shows attempt %d after %d failed runs", job.Tasks[0].Attempt, runs)
	}
	m, err := r.cli.Manifest(ctx, st.ID)
	if err != nil || len(m.Failed) != 1 || m.Failed[0].Error.Code != wire.CodeOutOfMemory {
		t.Fatalf("manifest %+v %v", m, err)
	}
	// bad1 failed on this kind (ExcludeAfter 1): it is excluded in etcd.
	cli := f.etcd.Client(t)
	farmtest.Eventually(t, 5*time.Second, func() bool {
		resp, err := cli.Get(ctx, wire.ExclusionKey("bad1", wire.FailureKind(wire.KindBatch, "sd-tiny")))
		return err == nil && len(resp.Kvs) == 1
	})
}

func TestCoordinator_Cancel_PurgesAndAnnounces(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	ctx := context.Background()
	nc := f.nats.Conn(t)
	got := make(chan wire.Cancel, 1)
	sub, err := nc.Subscribe(wire.CancelAll, func(m *nats.Msg) {
		var c wire.Cancel
		_ = json.Unmarshal(m.Data, &c)
		got <- c
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil { // the server has the subscription
		t.Fatal(err)
	}
	st, err := r.cli.Submit(ctx, tinySpec(40))
	if err != nil {
		t.Fatal(err)
	}
	js := f.nats.JetStream(t)
	if n := pendingTasks(t, js); n != 10 {
		t.Fatalf("%d tasks pending, want 10", n)
	}
	cst, err := r.cli.Cancel(ctx, st.ID)
	if err != nil || cst.State != wire.JobCancelled {
		t.Fatalf("cancel: %+v %v", cst, err)
	}
	select {
	case c := <-got:
		if c.JobID != st.ID {
			t.Fatalf("cancel for %s", c.JobID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no cancel message")
	}
	if n := pendingTasks(t, js); n != 0 {
		t.Fatalf("%d tasks left after cancel", n)
	}
	resp, err := f.etcd.Client(t).Get(ctx, wire.CancelledKey(st.ID))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("cancel mark: %v", err)
	}
	if _, err := r.cli.Cancel(ctx, st.ID); !client.IsCode(err, wire.CodeConflict) {
		t.Fatalf("second cancel: %v", err)
	}
}

func TestCoordinator_Why_NoNodeBigEnough(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	ctx := context.Background()
	small := wire.NodeInfo{ID: "small", Backend: wire.BackendCUDA, UsableBytes: 8 << 30, State: wire.NodeReady,
		Classes: wire.ClassesForNode(wire.BackendCUDA, 8<<30)}
	b, _ := json.Marshal(small)
	if _, err := f.etcd.Client(t).Put(ctx, wire.NodeKey("small"), string(b)); err != nil {
		t.Fatal(err)
	}
	spec := wire.JobSpec{Model: "sdxl-base", Prompts: []string{"big"}, Width: 1024, Height: 1024, AllowPendingModel: true}
	st, err := r.cli.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.Class != "vram16" {
		t.Fatalf("class %s", st.Class)
	}
	job, err := r.cli.Job(ctx, st.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(job.Waiting) == 0 || !strings.Contains(job.Waiting[0], "no registered node can run class vram16") {
		t.Fatalf("waiting = %q", job.Waiting)
	}
	if !strings.Contains(strings.Join(job.Waiting, "\n"), "node small: vram") {
		t.Fatalf("waiting does not name the small node: %q", job.Waiting)
	}
	if len(job.Tasks) != 1 || job.Tasks[0].Why == "" {
		t.Fatalf("task why missing: %+v", job.Tasks)
	}
	nodes, err := r.cli.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].ID != "small" {
		t.Fatalf("nodes %+v %v", nodes, err)
	}
}

func TestCoordinator_Restart_ResumesFromEtcdAndResults(t *testing.T) {
	f := newTestFarm(t)
	r1 := f.start(t, nil)
	r1.waitLeading(t)
	ctx := context.Background()
	st, err := r1.cli.Submit(ctx, tinySpec(24))
	if err != nil {
		t.Fatal(err)
	}
	r1.shutdown(t)
	// Results arrive while no coordinator runs.
	n := &testNode{id: "n1", classes: wire.ClassesForNode(wire.BackendCPU, 8<<30)}
	n.start(t, f)
	farmtest.Eventually(t, 10*time.Second, func() bool { return len(n.taken()) == 6 })
	r2 := f.start(t, nil)
	r2.waitLeading(t)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	final, err := r2.cli.Wait(wctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != wire.JobDone || final.FramesDone != 24 {
		t.Fatalf("final %+v", final)
	}
	m, err := r2.cli.Manifest(ctx, st.ID)
	if err != nil || len(m.Frames) != 24 {
		t.Fatalf("manifest: %d frames, %v", len(m.Frames), err)
	}
}

func TestCoordinator_Election_FollowerRefersToLeader(t *testing.T) {
	f := newTestFarm(t)
	r1 := f.start(t, nil)
	r1.waitLeading(t)
	r2 := f.start(t, nil)
	ctx := context.Background()
	farmtest.Eventually(t, 5*time.Second, func() bool {
		lead, url, err := r2.cli.Health(ctx)
		return err == nil && !lead && url == r1.c.URL()
	})
	// The client follows the follower's referral to the leader.
	st, err := r2.cli.Submit(ctx, tinySpec(4))
	if err != nil {
		t.Fatal(err)
	}
	r1.shutdown(t)
	r2.waitLeading(t)
	job, err := r2.cli.Job(ctx, st.ID, client.TasksNone)
	if err != nil || job.ID != st.ID {
		t.Fatalf("new leader lost the job: %+v %v", job, err)
	}
}

func TestCoordinator_Fence_DeposedLeaderWritesRefused(t *testing.T) {
	f := newTestFarm(t)
	r1 := f.start(t, nil)
	r1.waitLeading(t)
	ctx := context.Background()
	st, err := r1.cli.Submit(ctx, tinySpec(8))
	if err != nil {
		t.Fatal(err)
	}
	etcd := f.etcd.Client(t)
	before, err := etcd.Get(ctx, wire.JobKey(st.ID))
	if err != nil {
		t.Fatal(err)
	}
	// Depose r1 behind its back: its election key goes (as when its lease
	// expires during a partition it has not noticed yet), and r2 wins.
	r1.c.mu.Lock()
	key := r1.c.fence.key
	r1.c.mu.Unlock()
	if _, err := etcd.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	r2 := f.start(t, nil)
	r2.waitLeading(t)
	if !r1.c.Leading() {
		t.Fatal("r1 noticed before writing; the test needs it to still believe it leads")
	}
	// r1's write is refused by etcd, and r1 steps down.
	if _, err := r1.c.cancel(ctx, st.ID); !errors.Is(err, errNotLeader) {
		t.Fatalf("deposed leader's cancel: %v, want errNotLeader", err)
	}
	if resp, err := etcd.Get(ctx, wire.CancelledKey(st.ID)); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("deposed leader wrote a cancel mark (%v)", err)
	}
	after, err := etcd.Get(ctx, wire.JobKey(st.ID))
	if err != nil || after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
		t.Fatalf("deposed leader rewrote the job record (%v)", err)
	}
	farmtest.Eventually(t, 5*time.Second, func() bool { return !r1.c.Leading() })
	// The job is r2's, untouched.
	job, err := r2.cli.Job(ctx, st.ID, client.TasksNone)
	if err != nil || job.State == wire.JobCancelled {
		t.Fatalf("job after the refused cancel: %+v %v", job, err)
	}
}

func TestCoordinator_Restart_AfterCrashLeadsWithin2s(t *testing.T) {
	f := newTestFarm(t)
	dir := t.TempDir()
	ctx := context.Background()
	etcd := f.etcd.Client(t)
	// What a crashed coordinator leaves: its election key under a lease that
	// nobody keeps alive any more but that has not expired (10 s), and the
	// lease recorded in its state folder.
	lease, err := etcd.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("%s/%x", wire.LeaderPrefix, int64(lease.ID))
	if _, err := etcd.Put(ctx, key, "http://crashed", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, leaseFile), []byte(fmt.Sprintf("%x\n", int64(lease.ID))), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := f.start(t, func(o *Options) { o.StateDir = dir; o.ElectionTTL = 10 * time.Second })
	farmtest.Eventually(t, 15*time.Second, r.c.Leading)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("restarted coordinator led after %v, want under 2s", took)
	}
	b, err := os.ReadFile(filepath.Join(dir, leaseFile))
	if err != nil || strings.TrimSpace(string(b)) == fmt.Sprintf("%x", int64(lease.ID)) {
		t.Fatalf("state folder does not record the new term: %q %v", b, err)
	}
}

func TestCoordinator_Submit_UnknownModelRefused(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	ctx := context.Background()
	etcd := f.etcd.Client(t)
	n := wire.NodeInfo{ID: "n1", Backend: wire.BackendCPU, State: wire.NodeReady, Renderer: wire.RendererEngine,
		ModelsOnDisk: []string{"sd-tiny"}, ModelsLoaded: []string{"sd15"}}
	b, _ := json.Marshal(n)
	if _, err := etcd.Put(ctx, wire.NodeKey(n.ID), string(b)); err != nil {
		t.Fatal(err)
	}
	s3 := f.s3.Client(t)
	man := []byte(`{"name":"stored","files":[]}`)
	if _, err := s3.PutObject(ctx, f.s3.Bucket, wire.ModelManifestKey("stored"), bytes.NewReader(man), int64(len(man)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	spec := func(model string, pending bool) wire.JobSpec {
		s := tinySpec(1)
		s.Model, s.AllowPendingModel = model, pending
		return s
	}
	_, err := r.cli.Submit(ctx, spec("nope", false))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != wire.CodeInvalidJob || len(ae.Fields) != 1 || ae.Fields[0].Field != "model" {
		t.Fatalf("unknown model: %v", err)
	}
	for _, want := range []string{`"nope"`, "sd-tiny", "sd15", "stored", "allow_pending_model"} {
		if !strings.Contains(ae.Fields[0].Reason, want) {
			t.Errorf("refusal %q does not mention %s", ae.Fields[0].Reason, want)
		}
	}
	jobs, err := r.cli.Jobs(ctx, "", 10)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("a refused job was stored: %d jobs, %v", len(jobs), err)
	}
	for _, s := range []wire.JobSpec{spec("sd-tiny", false), spec("sd15", false), spec("stored", false), spec("nope", true)} {
		if _, err := r.cli.Submit(ctx, s); err != nil {
			t.Errorf("model %s (pending %v): %v", s.Model, s.AllowPendingModel, err)
		}
	}
}

func TestCoordinator_Retry_RerunShowsAttempt2(t *testing.T) {
	f := newTestFarm(t)
	// A retry backoff long enough to stop the flaky node in between.
	r := f.start(t, func(o *Options) { o.RetryBase, o.RetryMax = 2*time.Second, 2*time.Second })
	r.waitLeading(t)
	ctx := context.Background()
	flaky := &testNode{id: "flaky", classes: wire.ClassesForNode(wire.BackendCPU, 8<<30),
		fail: func(wire.Task) *wire.Error { return &wire.Error{Code: wire.CodeOutOfMemory, Message: "boom"} }}
	stopFlaky := flaky.start(t, f)
	st, err := r.cli.Submit(ctx, tinySpec(1))
	if err != nil {
		t.Fatal(err)
	}
	// Its failure reported (not just the task taken: stopped before it
	// reports, the task would come back as a redelivery, not a retry).
	farmtest.Eventually(t, 10*time.Second, func() bool { return flaky.reports() > 0 })
	stopFlaky() // gone before the retry, so that nobody passes it on
	good := &testNode{id: "good", classes: wire.ClassesForNode(wire.BackendCPU, 8<<30)}
	good.start(t, f)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if final, err := r.cli.Wait(wctx, st.ID); err != nil || final.State != wire.JobDone {
		t.Fatalf("final %+v %v", final, err)
	}
	m, err := r.cli.Manifest(ctx, st.ID)
	if err != nil || len(m.Tasks) != 1 || len(m.Frames) != 1 {
		t.Fatalf("manifest %+v %v", m, err)
	}
	if mt := m.Tasks[0]; mt.Attempt != 2 || mt.Node != "good" || mt.Renders != 1 || mt.FailedNodes["flaky"] != 1 {
		t.Errorf("manifest task %+v, want rendered once by good on attempt 2 after flaky failed", mt)
	}
	if m.Frames[0].Attempt != 2 {
		t.Errorf("manifest frame attempt %d, want 2", m.Frames[0].Attempt)
	}
	job, err := r.cli.Job(ctx, st.ID, client.TasksAll)
	if err != nil || len(job.Tasks) != 1 || job.Tasks[0].Attempt != 2 {
		t.Fatalf("tasks of the finished job %+v %v", job.Tasks, err)
	}
}

// The job's event stream says "done" for every task whose result is in,
// with the task's frames and their steps (nodes no longer send it: the
// result says it).
func TestCoordinator_Events_DoneForEachResult(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := r.cli.Submit(ctx, tinySpec(8))
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan wire.Progress, 100)
	streamed := make(chan error, 1)
	opened := make(chan struct{})
	go func() {
		var once sync.Once
		streamed <- r.cli.Events(ctx, st.ID, func(ev wire.JobEvent) error {
			once.Do(func() { close(opened) }) // the job's first status: we listen
			if ev.Progress != nil {
				events <- *ev.Progress
			}
			return nil
		})
		close(events)
	}()
	select {
	case <-opened:
	case err := <-streamed:
		t.Fatalf("events stream ended before it opened: %v", err)
	}
	(&testNode{id: "n1", classes: wire.ClassesForNode(wire.BackendCPU, 8<<30)}).start(t, f)
	done := map[string]string{}
	started := 0
	for p := range events {
		switch p.Stage {
		case wire.StageDone:
			done[p.TaskID] = p.NodeID
			if first, last, ok := p.FrameRange(); !ok || last-first != 3 || p.Step != 2 || p.Steps != 2 {
				t.Errorf("done event %+v: frames %d..%d (%v), want 4 frames of 2 steps each", p, first, last, ok)
			}
		case wire.StageStarted:
			started++
		}
	}
	if err := <-streamed; err != nil {
		t.Fatal(err)
	}
	want := map[string]string{wire.TaskID(st.ID, 0, 3): "n1", wire.TaskID(st.ID, 4, 7): "n1"}
	if !maps.Equal(done, want) || started != 2 {
		t.Fatalf("done events %v and %d started, want %v and 2", done, started, want)
	}
}
