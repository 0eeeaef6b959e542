package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// TestFarm_ExactlyOnceCheckCatchesDoubleRenders shows that the suite's
// exactly-once check (renderProblems, run by checkComplete) can fail: with
// the nodes' in-progress signals switched off and tasks that run longer
// than the ack wait, JetStream hands running tasks out again, and the check
// reports the double renders, though the S3 keys and the job's counts look
// perfect.
func TestFarm_ExactlyOnceCheckCatchesDoubleRenders(t *testing.T) {
	f := newFarm(t)
	c := f.startCoordinator(t)
	const perFrame = ackWait / 2 // a 4-frame task runs twice the ack wait
	for _, id := range []string{"a", "b", "c"} {
		o := f.nodeOptions(t, id, 8, perFrame)
		o.NoInProgressAcks = true
		f.startNode(t, o)
	}
	// Two tasks for three nodes: a node is idle when a task comes back.
	st, err := c.cli.Submit(context.Background(), batch("twice", []string{"a red cube"}, 8, 4))
	if err != nil {
		t.Fatal(err)
	}
	final := waitJob(t, c.cli, st.ID, 60*time.Second)
	if final.State != wire.JobDone || final.FramesDone != 8 {
		t.Fatalf("job ended %s with %d/8 frames: %s", final.State, final.FramesDone, final.Error)
	}
	if keys := f.frameKeys(t, st.ID); len(keys) != 8 {
		t.Fatalf("%d frame keys, want 8", len(keys))
	}
	problems := f.renderProblems(t, st.ID)
	if len(problems) == 0 {
		t.Fatal("tasks were handed out again while running, and the exactly-once check saw nothing")
	}
	t.Logf("the check reports: %q", problems)
}
