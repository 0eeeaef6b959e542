package localfarm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/localfarm"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
)

// tokenNode is a node that joins with tok.
func tokenNode(t *testing.T, tok wire.JoinToken, id string) *node.Node {
	t.Helper()
	nc, ec, sc := connect.JoinConfigs(tok)
	n, err := node.New(node.Options{ID: id, NATS: nc, Etcd: ec, S3: sc, RendererName: node.RendererLoadTest,
		FFmpeg: node.FFmpegNone, CacheDir: t.TempDir(), LeaseTTL: 2 * time.Second, PollInterval: 200 * time.Millisecond,
		Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// loginRefused reports whether NATS, etcd and S3 all refuse tok's logins.
func loginRefused(tok wire.JoinToken) bool {
	nc, ec, sc := connect.JoinConfigs(tok)
	if conn, err := connect.NATS(nc, "token-test", hclog.NewNullLogger()); err == nil {
		conn.Close()
		return false
	}
	cli, err := connect.S3(sc)
	if err != nil {
		return false
	}
	// A listing (a GET: the error has a body with its code) with the
	// token's key.
	for obj := range cli.ListObjects(context.Background(), sc.Bucket, minio.ListObjectsOptions{MaxKeys: 1}) {
		err = obj.Err
		break
	}
	return etcdGet(ec) != nil && minio.ToErrorResponse(err).Code == "InvalidAccessKeyId"
}

// TestFarm_JoinToken_NodeRendersUntilRevoked: a node that joins with a
// token of its own registers and renders a job; once the token is revoked
// its entry is gone, its logins are refused, and a node started with it
// again does not start.
func TestFarm_JoinToken_NodeRendersUntilRevoked(t *testing.T) {
	dir := t.TempDir()
	f := startWith(t, localfarm.Options{Dir: dir, TLS: localfarm.TLSOn})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tok, err := localfarm.CreateToken(ctx, dir, "gpu", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := localfarm.CreateToken(ctx, dir, "gpu", time.Hour); !errors.Is(err, localfarm.ErrTokenExists) {
		t.Errorf("a second token gpu: %v, want ErrTokenExists", err)
	}
	if time.Until(tok.ExpiresAt()) > time.Hour || time.Until(tok.ExpiresAt()) < 59*time.Minute {
		t.Errorf("token expires at %v, want in an hour", tok.ExpiresAt())
	}
	nodeCtx, stopNode := context.WithCancel(ctx)
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- tokenNode(t, tok, "gpu-1").Run(nodeCtx) }()
	defer func() {
		stopNode()
		<-nodeDone
	}()

	creds := f.Credentials()
	c, err := client.New(client.Options{URL: creds.CoordinatorURL, Token: creds.Token, TLS: connect.TLSFiles{CA: creds.CA}})
	if err != nil {
		t.Fatal(err)
	}
	farmtest.Eventually(t, 20*time.Second, func() bool {
		nodes, err := c.Nodes(ctx)
		return err == nil && len(nodes) == 1 && nodes[0].ID == "gpu-1"
	})
	st, err := c.Submit(ctx, wire.JobSpec{Model: "tiny", Prompts: []string{"a kite"}, Seeds: wire.SeedRange(1, 4),
		Width: 64, Height: 64, Steps: 2, FramesPerTask: 2})
	if err != nil {
		t.Fatal(err)
	}
	farmtest.Eventually(t, 30*time.Second, func() bool {
		j, err := c.Job(ctx, st.ID, "")
		return err == nil && j.State == wire.JobDone
	})

	// A connection made before the revoke is cut by it.
	nc, _, _ := connect.JoinConfigs(tok)
	live := natsConn(t, nc)
	if err := localfarm.RevokeToken(ctx, dir, "gpu"); err != nil {
		t.Fatal(err)
	}
	farmtest.Eventually(t, 10*time.Second, func() bool {
		nodes, err := c.Nodes(ctx)
		return err == nil && len(nodes) == 0 && !live.IsConnected()
	})
	if !loginRefused(tok) {
		t.Error("the revoked token still logs in")
	}
	if err := tokenNode(t, tok, "gpu-2").Run(ctx); err == nil {
		t.Error("a node with the revoked token started")
	}
	tokens, err := localfarm.Tokens(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tokens {
		if tk.Name == "gpu" {
			t.Error("farm token list still lists the revoked token")
		}
	}
	if err := localfarm.RevokeToken(ctx, dir, "gpu"); !errors.Is(err, localfarm.ErrNoToken) {
		t.Errorf("revoke it again: %v, want ErrNoToken", err)
	}
}

// TestFarm_JoinToken_Expires: the farm drops a token's logins once it
// expires.
func TestFarm_JoinToken_Expires(t *testing.T) {
	dir := t.TempDir()
	startWith(t, localfarm.Options{Dir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := localfarm.CreateToken(ctx, dir, "brief", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc, _, _ := connect.JoinConfigs(tok)
	if conn, err := connect.NATS(nc, "token-test", nil); err != nil {
		t.Fatalf("fresh token: %v", err)
	} else {
		conn.Close()
	}
	farmtest.Eventually(t, 10*time.Second, func() bool { return loginRefused(tok) })
	if !tok.Expired(time.Now()) {
		t.Error("the token does not say it expired")
	}
}

// TestFarm_JoinTokenFile_KeptAcrossRestarts: farm up writes its join token
// (mode 0600) and keeps it, still good, across a restart on the same ports.
func TestFarm_JoinTokenFile_KeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ports := farmtest.FreePorts(t, 5)
	o := localfarm.Options{Dir: dir, APIPort: ports[0], NATSPort: ports[1], EtcdPort: ports[2], EtcdPeerPort: ports[3], S3Port: ports[4]}
	f := startWith(t, o)
	path := filepath.Join(dir, localfarm.JoinTokenFile)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, want mode 0600", path, err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f.stop(t)
	startWith(t, o)
	second, err := os.ReadFile(path)
	if err != nil || string(second) != string(first) {
		t.Fatalf("join token changed across a restart (%v)", err)
	}
	tok, err := wire.ReadJoinToken(path)
	if err != nil || tok.Name != localfarm.DefaultTokenName {
		t.Fatalf("join token %+v, %v", tok, err)
	}
	if loginRefused(tok) {
		t.Fatal("the kept join token does not log in")
	}
}
