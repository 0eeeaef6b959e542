package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// TestFarm_CoordinatorSIGKILLResumesExactlyOnce kills the coordinator
// process with SIGKILL while it applies results, as a crash would (no
// resignation, results half applied). The nodes keep rendering while it is
// down; the restarted coordinator (same state folder) leads again at once
// and finishes the job with every frame rendered exactly once.
func TestFarm_CoordinatorSIGKILLResumesExactlyOnce(t *testing.T) {
	f := newFarm(t)
	cli, start, leading := f.childCoordinator(t)
	ctx := context.Background()
	first := start()
	farmtest.Eventually(t, 20*time.Second, leading)
	for _, id := range []string{"k1", "k2", "k3"} {
		f.startNode(t, f.nodeOptions(t, id, 8, 20*time.Millisecond))
	}
	st, err := cli.Submit(ctx, batch("crash", []string{"a fox", "a hare", "an owl"}, 80, 4))
	if err != nil {
		t.Fatal(err)
	}
	farmtest.Eventually(t, 30*time.Second, func() bool {
		j, err := cli.Job(ctx, st.ID, client.TasksNone)
		return err == nil && j.FramesDone >= 40
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	// The nodes render on while no coordinator runs.
	before := len(f.frameKeys(t, st.ID))
	farmtest.Eventually(t, 10*time.Second, func() bool { return len(f.frameKeys(t, st.ID)) > before+8 })
	if before >= 240 {
		t.Fatalf("test setup: all frames were rendered before the kill")
	}

	restarted := time.Now()
	start()
	farmtest.Eventually(t, 20*time.Second, leading)
	took := time.Since(restarted)
	if took > 3*time.Second {
		t.Errorf("the restarted coordinator led after %s; its state folder should make it under 2 s (plus process start)", took)
	}
	final := waitJob(t, cli, st.ID, 90*time.Second)
	if final.State != wire.JobDone || final.FramesDone != 240 {
		t.Fatalf("after the crash the job ended %s with %d/240 frames: %s", final.State, final.FramesDone, final.Error)
	}
	f.checkComplete(t, st.ID, 240)
	t.Logf("killed with %d frames in S3; led again %s after the restart", before, took.Round(time.Millisecond))
}

// childCoordinator prepares a coordinator in a child process of the test
// binary (runChildCoordinator), with its own state folder, and returns a
// client of its API, a function that starts it (again), and one that
// reports whether it leads.
func (f *farm) childCoordinator(t testing.TB) (cli *client.Client, start func() *exec.Cmd, leading func() bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	spec, err := json.Marshal(childCoordinator{NATS: f.natsConfig(), Etcd: f.etcdConfig(), S3: f.s3Config(),
		Token: f.token, Listen: addr, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if cli, err = client.New(client.Options{URL: "http://" + addr, Token: f.token}); err != nil {
		t.Fatal(err)
	}
	start = func() *exec.Cmd { return farmtest.StartSelf(t, envChildCoordinator, string(spec)) }
	leading = func() bool {
		lead, _, err := cli.Health(context.Background())
		return err == nil && lead
	}
	return cli, start, leading
}
