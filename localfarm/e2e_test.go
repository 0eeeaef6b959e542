package localfarm_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/localfarm"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
)

func TestFarm_TwoLoadTestNodesFinishABatch(t *testing.T) {
	dir := t.TempDir()
	f, err := localfarm.New(localfarm.Options{Dir: dir, Nodes: 2, Renderer: localfarm.RendererLoadTest,
		RandomPorts: true, S3FromTestBinary: true, Logger: hclog.NewNullLogger(),
		ConfigureNode: func(i int, o *node.Options) { o.LoadTestDelay = 5 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(runCtx) }()
	select {
	case <-f.Ready():
	case err := <-done:
		t.Fatalf("farm stopped before it was ready: %v", err)
	}
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("farm shutdown: %v", err)
		}
	}()

	creds := f.Credentials()
	c, err := client.New(client.Options{URL: creds.CoordinatorURL, Token: creds.Token})
	if err != nil {
		t.Fatal(err)
	}
	farmtest.Eventually(t, 20*time.Second, func() bool {
		nodes, err := c.Nodes(ctx)
		return err == nil && len(nodes) == 2
	})
	st, err := c.Submit(ctx, wire.JobSpec{Model: "tiny", Prompts: []string{"a red cube", "a blue ball"},
		Seeds: wire.SeedRange(1, 12), Width: 64, Height: 64, Steps: 4, FramesPerTask: 3})
	if err != nil {
		t.Fatal(err)
	}
	farmtest.Eventually(t, 60*time.Second, func() bool {
		s, err := c.Job(ctx, st.ID, "")
		return err == nil && wire.JobFinished(s.State)
	})
	s, err := c.Job(ctx, st.ID, "")
	if err != nil || s.State != wire.JobDone || s.FramesDone != 24 {
		t.Fatalf("job: state %q, %d/%d frames, err %v (%s)", s.State, s.FramesDone, s.FramesTotal, err, s.Error)
	}
	m, err := c.Manifest(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Frames) != 24 {
		t.Fatalf("manifest lists %d frames, want 24", len(m.Frames))
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}
