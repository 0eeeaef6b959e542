package coordinator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// TestCoordinator_Animation_FailedFramesSkipAssembly fails one chunk of an
// animation for good: the other frames render, the assemble task is never
// published but ended as failed, and the manifest says which frames failed
// and why there is no animation.
func TestCoordinator_Animation_FailedFramesSkipAssembly(t *testing.T) {
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	spec := wire.JobSpec{Kind: wire.KindAnimation, Model: "sd-tiny", Width: 16, Height: 16, Steps: 2, Frames: 12,
		FramesPerTask: 4, AllowPendingModel: true, Keyframes: []wire.Keyframe{
			{Frame: 0, Prompt: "a fox", Seed: 1}, {Frame: 11, Prompt: "a hare", Seed: 2}}}
	ctx := context.Background()
	st, err := r.cli.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	bad := wire.TaskID(st.ID, 4, 7)
	n := &testNode{id: "n1", classes: wire.ClassesForNode(wire.BackendCPU, 8<<30), fail: func(task wire.Task) *wire.Error {
		if task.ID == bad {
			return &wire.Error{Code: wire.CodeInvalidTask, Message: "cannot run this"}
		}
		return nil
	}}
	n.start(t, f)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	final, err := r.cli.Wait(wctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != wire.JobFailed || final.FramesDone != 8 || final.FramesFailed != 4 || final.TasksFailed != 2 {
		t.Fatalf("final %+v; want failed with 8 frames done, 4 failed, 2 tasks failed (the chunk and the assembly)", final)
	}
	for _, task := range n.taken() {
		if task.Assemble != nil {
			t.Fatalf("the assemble task was handed out: %+v", task)
		}
	}
	m, err := r.cli.Manifest(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Frames) != 8 || len(m.Failed) != 4 || m.Failed[0].Index != 4 || m.Failed[0].Error.Code != wire.CodeInvalidTask {
		t.Fatalf("manifest: %d frames, failed %+v", len(m.Frames), m.Failed)
	}
	var assembly *wire.ManifestTask
	for i := range m.Tasks {
		if m.Tasks[i].ID == wire.AssembleTaskID(st.ID) {
			assembly = &m.Tasks[i]
		}
	}
	if assembly == nil || assembly.State != wire.TaskFailed || len(m.Outputs) != 0 ||
		len(m.Notes) != 1 || !strings.Contains(m.Notes[0], "animation not assembled: 4 frames failed") {
		t.Fatalf("assembly %+v, outputs %v, notes %q", assembly, m.Outputs, m.Notes)
	}
}
