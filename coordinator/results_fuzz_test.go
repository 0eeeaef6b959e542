package coordinator

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// fuzzResultMsg is a message of the RESULTS stream: applyResults reads
// only its body and subject.
type fuzzResultMsg struct {
	jetstream.Msg
	data []byte
}

func (m *fuzzResultMsg) Data() []byte    { return m.data }
func (m *fuzzResultMsg) Subject() string { return "results.j1" }

// FuzzApplyResults feeds result messages from nodes (one per line, so a
// batch can hold several runs of a task) to applyResults, the
// coordinator's decoder of the RESULTS stream, against a running job of
// three tasks. Whatever nodes send, the job's counts stay consistent with
// its task states, every ended task leaves valid manifest lines, and the
// job record, its chunk records and its manifest still encode: they are
// what the coordinator writes to etcd and S3, and a record that cannot be
// encoded is lost at the next restart.
func FuzzApplyResults(f *testing.F) {
	ok := wire.Result{TaskID: "j1-f000000-000001", JobID: "j1", NodeID: "n1", Attempt: 1, GPUSeconds: 2.5, GPU: "cpu",
		Price: &wire.Price{PerHour: 1.2, Currency: "USD"}, Frames: []wire.FrameResult{
			{Index: 0, Seed: 1, Key: "jobs/j1/frames/000000.png", Bytes: 1234, RenderMS: 900, GPUSeconds: 1.2},
			{Index: 1, Seed: 2, Key: "jobs/j1/frames/000001.png", RenderMS: 950}}}
	failed := wire.Result{TaskID: "j1-f000002-000003", JobID: "j1", NodeID: "n2", Attempt: 1,
		Error: &wire.Error{Code: wire.CodeRenderFailed, Message: "out of memory"}}
	a, _ := json.Marshal(ok)
	b, _ := json.Marshal(failed)
	f.Add(a)
	f.Add(append(append(a, '\n'), b...))
	f.Add([]byte(`{"task_id":"j1-f000004-000004","job_id":"j1","node_id":"n1","attempt":1,"frames":[{"index":4},{"index":4}],"retryable":false}`))
	f.Add([]byte(`{"task_id":"j1-f000002-000003","job_id":"j1","error":{"code":"cancelled"},"gpu_seconds":-1}`))
	spec := wire.JobSpec{Model: "sd15", Prompts: []string{"a", "b", "c", "d", "e"}, FramesPerTask: 2}
	spec.Normalize()
	plan, err := wire.NewPlan("j1", spec)
	if err != nil {
		f.Fatal(err)
	}
	n := plan.Len()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	metrics := NewMetrics()
	f.Fuzz(func(t *testing.T, data []byte) {
		j := newJob(wire.JobRecord{ID: "j1", Spec: spec, State: wire.JobQueued, Tasks: n, Published: n, CreatedAt: now}, plan)
		c := &Coordinator{log: hclog.NewNullLogger(), metrics: metrics, jobs: map[string]*job{"j1": j},
			failures: map[string]map[string][]time.Time{},
			opts:     Options{MaxNodeFailures: 3, ExcludeAfter: 1 << 30, ExcludeWindow: time.Hour, Now: func() time.Time { return now }}}
		var msgs []jetstream.Msg
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			msgs = append(msgs, &fuzzResultMsg{data: line})
		}
		finished := c.applyResults(msgs)

		// The counts agree with the task states, and every ended task left
		// its lines for the manifest: a line per frame and one for the task.
		done, failedTasks, framesDone, lines := 0, 0, 0, 0
		for i, s := range j.state {
			switch s {
			case tsDone:
				done++
				framesDone += plan.FrameCount(i)
				lines += plan.FrameCount(i) + 1
			case tsFailed:
				failedTasks++
				lines += plan.FrameCount(i) + 1
			}
		}
		for _, ch := range j.chunks {
			if _, err := json.Marshal(ch.rec); err != nil {
				t.Fatalf("chunk record does not encode: %v", err)
			}
			if got := bytes.Count(ch.lines, []byte("\n")); got != lines {
				t.Fatalf("%d manifest lines for %d done and %d failed tasks of %d frames; want %d", got, done, failedTasks, framesDone, lines)
			}
			for l := range bytes.SplitSeq(bytes.TrimSuffix(ch.lines, []byte("\n")), []byte("\n")) {
				if len(l) > 0 && !json.Valid(l) {
					t.Fatalf("manifest line %q is not JSON", l)
				}
			}
			if got := ch.rec.DoneCount(); got != done {
				t.Fatalf("chunk has %d done bits, %d tasks done", got, done)
			}
		}
		if j.rec.TasksDone != done || j.rec.TasksFailed != failedTasks || j.rec.FramesDone != framesDone {
			t.Fatalf("record counts %d done, %d failed, %d frames; task states %d, %d, %d",
				j.rec.TasksDone, j.rec.TasksFailed, j.rec.FramesDone, done, failedTasks, framesDone)
		}
		if ended := done+failedTasks == n; ended != (len(finished) == 1) {
			t.Fatalf("all tasks ended %v, finished jobs %v", ended, finished)
		}
		rec, err := json.Marshal(j.rec)
		if err != nil {
			t.Fatalf("job record does not encode: %v", err)
		}
		var back wire.JobRecord
		if err := json.Unmarshal(rec, &back); err != nil || !reflect.DeepEqual(back.Spec, j.rec.Spec) {
			t.Fatalf("job record %s reads back as %+v (%v)", rec, back, err)
		}
		if _, err := json.Marshal(c.manifest(j, now)); err != nil {
			t.Fatalf("manifest does not encode: %v", err)
		}
	})
}
