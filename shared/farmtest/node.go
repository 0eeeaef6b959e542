package farmtest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeEntry reads a node's registration from etcd; nil when it has none
// (never registered, deregistered, or its lease expired).
func NodeEntry(t testing.TB, etcd *clientv3.Client, id string) *wire.NodeInfo {
	t.Helper()
	resp, err := etcd.Get(context.Background(), wire.NodeKey(id))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	var info wire.NodeInfo
	if err := json.Unmarshal(resp.Kvs[0].Value, &info); err != nil {
		t.Fatalf("farmtest: node %s: %v", id, err)
	}
	return &info
}

// StartSelf starts the running test binary again as a child process, with
// env=value added to its environment and no tests selected, so a TestMain
// that sees env can run something else in it (a node a test may SIGKILL).
// The child is killed at cleanup unless it has already been waited for.
func StartSelf(t testing.TB, env, value string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+value)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}
