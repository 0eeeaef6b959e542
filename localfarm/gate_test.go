package localfarm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestFarm_CoordinatorLogin_IsNotAdmin: the coordinator's own logins do
// the coordinator's work but cannot read the token records, manage etcd
// users, publish results or read a node's replies.
func TestFarm_CoordinatorLogin_IsNotAdmin(t *testing.T) {
	f, err := New(Options{Dir: t.TempDir(), RandomPorts: true, S3FromTestBinary: true, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("farm: %v", err)
		}
	}()
	select {
	case <-f.Ready():
	case err := <-done:
		t.Fatalf("farm stopped: %v", err)
	}
	nc, ec := f.coordinatorConfigs()

	cli, err := connect.Etcd(ec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, wire.JobKey("j1"), "{}"); err != nil {
		t.Errorf("put a job: %v", err)
	}
	for name, op := range map[string]clientv3.Op{
		"read the token records": clientv3.OpGet(wire.TokensPrefix, clientv3.WithPrefix()),
		"write a token record":   clientv3.OpPut(wire.TokenKey("x"), "{}"),
	} {
		if _, err := cli.Do(ctx, op); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("%s: %v, want permission denied", name, err)
		}
	}
	if _, err := cli.UserAdd(ctx, "evil", "password"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("add an etcd user: %v, want permission denied", err)
	}

	for _, c := range []struct {
		subject string
		publish bool
	}{
		{wire.ResultSubject("j1"), true},
		{wire.InboxSubjects(tokenUser(DefaultTokenName)), false},
	} {
		conn, err := connect.NATS(nc, "gate-test", hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		if c.publish {
			_ = conn.Publish(c.subject, []byte("{}"))
		} else {
			_, _ = conn.SubscribeSync(c.subject)
		}
		if err := conn.Flush(); err != nil || !errors.Is(conn.LastError(), nats.ErrPermissionViolation) {
			t.Errorf("%s: %v, want a permissions violation", c.subject, conn.LastError())
		}
		conn.Close()
	}
}
