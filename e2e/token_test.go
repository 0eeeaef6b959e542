package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/localfarm"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// TestJoinToken_NodesJoinRenderAndAreCutOff runs the farm binary as an
// operator would: `farm up --tls` prints where its join token is (and no
// secret); `farm token create` issues another; `farm node
// --join-token-file` joins with either and the nodes render a job; `farm
// token revoke` cuts the token's node off, and the token no longer starts
// a node; an expired token is refused.
func TestJoinToken_NodesJoinRenderAndAreCutOff(t *testing.T) {
	bin := buildFarm(t)
	data, work := t.TempDir(), t.TempDir()
	up := runFarm(t, bin, nil, "up", "--data", data, "--tls", "--nodes", "0", "--random-ports")
	farmtest.Eventually(t, 60*time.Second, func() bool { return up.exited() || strings.Contains(up.out.String(), "Press Ctrl-C") })
	if up.exited() {
		t.Fatalf("farm up stopped:\n%s", up.out.String())
	}
	creds, err := wire.ReadCredentials(data)
	if err != nil {
		t.Fatal(err)
	}
	summary := up.out.String()
	for _, secret := range []string{creds.Token, creds.NATSPassword, creds.EtcdPassword, creds.S3SecretKey} {
		if strings.Contains(summary, secret) {
			t.Errorf("farm up printed a secret:\n%s", summary)
		}
	}
	if !strings.Contains(summary, "farm node --join-token-file "+localfarm.JoinTokenFile) {
		t.Errorf("farm up does not say how to join:\n%s", summary)
	}

	gpuToken := filepath.Join(work, "gpu.token")
	out, err := farmOutput(t, bin, nil, "token", "create", "--data", data, "--name", "gpu", "--ttl", "1h", "--out", gpuToken)
	if err != nil || !strings.Contains(out, "wrote join token gpu") {
		t.Fatalf("farm token create: %v\n%s", err, out)
	}
	if st, err := os.Stat(gpuToken); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, want mode 0600", err)
	}
	nodeArgs := func(tokenFile string) []string {
		return []string{"node", "--join-token-file", tokenFile, "--renderer", "loadtest", "--cache", t.TempDir(),
			"--ffmpeg", "none", "--poll-interval", "200ms", "--lease-ttl", "2s"}
	}
	runFarm(t, bin, nil, nodeArgs(gpuToken)...)
	runFarm(t, bin, nil, nodeArgs(filepath.Join(data, localfarm.JoinTokenFile))...)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c, err := client.New(client.Options{URL: creds.CoordinatorURL, Token: creds.Token, TLS: connect.TLSFiles{CA: creds.CA}})
	if err != nil {
		t.Fatal(err)
	}
	nodesWith := func(prefixes ...string) bool {
		nodes, err := c.Nodes(ctx)
		if err != nil || len(nodes) != len(prefixes) {
			return false
		}
		for _, p := range prefixes {
			found := false
			for _, n := range nodes {
				found = found || strings.HasPrefix(n.ID, p)
			}
			if !found {
				return false
			}
		}
		return true
	}
	farmtest.Eventually(t, 45*time.Second, func() bool { return nodesWith("gpu-", localfarm.DefaultTokenName+"-") })
	st, err := c.Submit(ctx, wire.JobSpec{Model: "tiny", Prompts: []string{"a harbour"}, Seeds: wire.SeedRange(1, 8),
		Width: 64, Height: 64, Steps: 2, FramesPerTask: 1})
	if err != nil {
		t.Fatal(err)
	}
	farmtest.Eventually(t, 45*time.Second, func() bool {
		j, err := c.Job(ctx, st.ID, "")
		return err == nil && j.State == wire.JobDone
	})

	if out, err := farmOutput(t, bin, nil, "token", "revoke", "gpu", "--data", data); err != nil {
		t.Fatalf("farm token revoke: %v\n%s", err, out)
	}
	farmtest.Eventually(t, 15*time.Second, func() bool { return nodesWith(localfarm.DefaultTokenName + "-") })
	if out, err := farmOutput(t, bin, nil, nodeArgs(gpuToken)...); err == nil || !strings.Contains(out, "uthorization") {
		t.Errorf("farm node with the revoked token: %v\n%s", err, out)
	}
	if out, err := farmOutput(t, bin, nil, "token", "list", "--data", data, "-o", "json"); err != nil ||
		strings.Contains(out, `"gpu"`) || !strings.Contains(out, `"`+localfarm.DefaultTokenName+`"`) {
		t.Errorf("farm token list after the revoke: %v\n%s", err, out)
	}

	brief := filepath.Join(work, "brief.token")
	if out, err := farmOutput(t, bin, nil, "token", "create", "--data", data, "--name", "brief", "--ttl", "1s", "--out", brief); err != nil {
		t.Fatalf("farm token create: %v\n%s", err, out)
	}
	time.Sleep(1100 * time.Millisecond)
	if out, err := farmOutput(t, bin, nil, nodeArgs(brief)...); err == nil || !strings.Contains(out, "expired") {
		t.Errorf("farm node with an expired token: %v\n%s", err, out)
	}
}
