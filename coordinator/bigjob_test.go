package coordinator

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestCoordinator_Submit_MillionFramesAnswersFast submits a batch of
// 1,000,000 frames (250,000 tasks): the call answers in under a second with
// the first batch of tasks already in JetStream (the publisher loop sends
// the rest), and a cancel takes them all out again, while the publisher is
// still at it: a batch in flight when the cancel finalized the job once
// found its state gone, panicked with the lock held and hung the
// coordinator.
func TestCoordinator_Submit_MillionFramesAnswersFast(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	ctx := context.Background()
	spec := tinySpec(0)
	spec.Seeds = wire.SeedRange(1, 1000)
	spec.Prompts = make([]string, 1000)
	for i := range spec.Prompts {
		spec.Prompts[i] = "a red square"
	}
	js := f.nats.JetStream(t)
	start := time.Now()
	st, err := r.cli.Submit(ctx, spec)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if n := pendingTasks(t, js); n < maxPublishBatch {
		t.Errorf("%d tasks in JetStream when the submit answered, want the first batch of %d", n, maxPublishBatch)
	}
	if _, err := r.cli.Cancel(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	if st.FramesTotal != 1000000 || st.TasksTotal != 250000 {
		t.Fatalf("submitted %d frames in %d tasks, want 1,000,000 in 250,000", st.FramesTotal, st.TasksTotal)
	}
	if took > time.Second {
		t.Errorf("submitting 1,000,000 frames took %s, want under 1 s", took)
	}
	deadline := time.Now().Add(60 * time.Second)
	for pendingTasks(t, js) != 0 {
		if time.Now().After(deadline) {
			j, err := r.cli.Job(ctx, st.ID, "none")
			t.Fatalf("%d tasks still in the stream a minute after the cancel; job %+v (%v)", pendingTasks(t, js), j, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("submit of 1,000,000 frames answered in %s", took.Round(time.Millisecond))
}

// TestCoordinator_Restart_ChunksAndShardsAcrossARestart runs a job of
// 4,100 one-frame tasks (two chunks of task state) through a coordinator
// restart: every frame is listed once, every task rendered once, both
// chunks named shards, and the chunk records leave etcd at the end.
func TestCoordinator_Restart_ChunksAndShardsAcrossARestart(t *testing.T) {
	f := newTestFarm(t)
	r1 := f.start(t, nil)
	r1.waitLeading(t)
	ctx := context.Background()
	const frames = wire.ChunkTasks + 4
	spec := tinySpec(frames)
	spec.FramesPerTask = 1
	st, err := r1.cli.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n1", "n2"} {
		n := &testNode{id: id, classes: wire.ClassesForNode(wire.BackendCPU, 8<<30)}
		n.start(t, f)
	}
	farmtest.Eventually(t, 60*time.Second, func() bool {
		j, err := r1.cli.Job(ctx, st.ID, client.TasksNone)
		return err == nil && j.FramesDone >= frames/2
	})
	etc := f.etcd.Client(t)
	if resp, err := etc.Get(ctx, wire.JobChunksPrefix(st.ID), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count > 2 {
		t.Errorf("%d chunk keys mid-job (%v), want at most 2", resp.Count, err)
	}
	r1.shutdown(t)
	r2 := f.start(t, nil)
	r2.waitLeading(t)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	final, err := r2.cli.Wait(wctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != wire.JobDone || final.FramesDone != frames || final.TasksDone != frames {
		t.Fatalf("final %+v", final)
	}
	m, err := r2.cli.Manifest(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Frames) != frames || len(m.Tasks) != frames {
		t.Fatalf("manifest lists %d frames and %d tasks, want %d each", len(m.Frames), len(m.Tasks), frames)
	}
	for i, fr := range m.Frames {
		if fr.Index != i || fr.Key != wire.FrameKey(st.ID, i) {
			t.Fatalf("manifest frame %d = %+v", i, fr)
		}
	}
	for _, mt := range m.Tasks {
		if mt.State != wire.TaskDone || mt.Renders != 1 {
			t.Fatalf("manifest task %+v, want done and rendered once", mt)
		}
	}
	chunks := map[string]bool{}
	for _, k := range m.Shards {
		name := k[len(wire.ManifestShardsPrefix(st.ID)):]
		chunks[name[:strings.IndexByte(name, '-')]] = true
	}
	if len(chunks) != 2 || m.Nodes["n1"]+m.Nodes["n2"] != frames {
		t.Errorf("shards of chunks %v, frames per node %v; want 2 chunks and %d frames", chunks, m.Nodes, frames)
	}
	if resp, err := etc.Get(ctx, wire.JobChunksPrefix(st.ID), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Errorf("%d chunk keys left after the job (%v)", resp.Count, err)
	}
}

// TestCoordinator_ManifestView_Limit serves the first entries of each list
// of a finished job's manifest with ?limit=, the summary whole.
func TestCoordinator_ManifestView_Limit(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	ctx := context.Background()
	st, err := r.cli.Submit(ctx, tinySpec(12))
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{id: "n1", classes: wire.ClassesForNode(wire.BackendCPU, 8<<30)}
	n.start(t, f)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := r.cli.Wait(wctx, st.ID); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query          string
		frames, tasks  int
		wantStatusCode int
	}{{"", 12, 3, 200}, {"?limit=5", 5, 3, 200}, {"?limit=0", 0, 0, 400}} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.c.URL()+"/v1/jobs/"+st.ID+"/manifest"+tc.query, nil)
		req.Header.Set("Authorization", "Bearer "+f.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m wire.Manifest
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatusCode {
			t.Fatalf("manifest%s: status %d, want %d", tc.query, resp.StatusCode, tc.wantStatusCode)
		}
		if tc.wantStatusCode != 200 {
			continue
		}
		if err != nil || len(m.Frames) != tc.frames || len(m.Tasks) != tc.tasks || m.FramesTotal != 12 || m.JobID != st.ID {
			t.Fatalf("manifest%s: %d frames, %d tasks, total %d (%v); want %d, %d, 12", tc.query, len(m.Frames), len(m.Tasks), m.FramesTotal, err, tc.frames, tc.tasks)
		}
	}
}
