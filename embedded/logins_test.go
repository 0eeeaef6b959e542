package embedded_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"
)

// TestNATS_SetUsers_HoldsUsersToTheirSubjectsAndCutsTheGone: a user may
// publish only its subjects; SetUsers adds one while the server runs and
// disconnects a user it drops.
func TestNATS_SetUsers_HoldsUsersToTheirSubjectsAndCutsTheGone(t *testing.T) {
	a := embedded.NATSUser{Name: "a", Password: farmtest.RandomSecret(t), Publish: []string{"a.>"}, Subscribe: []string{"_INBOX.>"}}
	srv, err := embedded.StartNATS(embedded.NATSOptions{StoreDir: t.TempDir(), User: "admin", Password: farmtest.RandomSecret(t),
		Users: []embedded.NATSUser{a}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	login := func(u embedded.NATSUser) (*nats.Conn, error) {
		return nats.Connect(srv.URL(), nats.UserInfo(u.Name, u.Password), nats.MaxReconnects(0), nats.NoCallbacksAfterClientClose(),
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	}
	nc, err := login(a)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.Publish("a.x", nil)
	if err := nc.Flush(); err != nil || nc.LastError() != nil {
		t.Fatalf("publish a.x: %v %v", err, nc.LastError())
	}
	_ = nc.Publish("b.x", nil)
	if err := nc.Flush(); err != nil || !errors.Is(nc.LastError(), nats.ErrPermissionViolation) {
		t.Fatalf("publish b.x: %v, want a permissions violation", nc.LastError())
	}

	b := embedded.NATSUser{Name: "b", Password: farmtest.RandomSecret(t)} // no subjects: allowed nothing
	if err := srv.SetUsers([]embedded.NATSUser{b}); err != nil {
		t.Fatal(err)
	}
	farmtest.Eventually(t, 5*time.Second, func() bool { return nc.IsClosed() || !nc.IsConnected() })
	if c, err := login(a); err == nil {
		c.Close()
		t.Fatal("a dropped user logged in")
	}
	nb, err := login(b)
	if err != nil {
		t.Fatalf("an added user: %v", err)
	}
	defer nb.Close()
	_ = nb.Publish("a.x", nil)
	if err := nb.Flush(); err != nil || !errors.Is(nb.LastError(), nats.ErrPermissionViolation) {
		t.Fatalf("a user without subjects published: %v", nb.LastError())
	}
	if err := srv.SetUsers([]embedded.NATSUser{b, b}); err == nil {
		t.Fatal("a user given twice was taken")
	}
}

// TestS3_AccountsFile_IsReadAgainWhenReplaced: a key of the accounts file
// logs in; once the file is replaced without it, it does not.
func TestS3_AccountsFile_IsReadAgainWhenReplaced(t *testing.T) {
	accounts := filepath.Join(t.TempDir(), "accounts.json")
	key := embedded.S3Account{AccessKey: "NODEKEY", SecretKey: farmtest.RandomSecret(t)}
	if err := embedded.WriteS3Accounts(accounts, []embedded.S3Account{key}); err != nil {
		t.Fatal(err)
	}
	gw, err := embedded.StartS3(embedded.S3Options{Dir: t.TempDir(), AccessKey: "root", SecretKey: farmtest.RandomSecret(t),
		AccountsFile: accounts})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	cli, err := minio.New(gw.Host(), &minio.Options{Creds: credentials.NewStaticV4(key.AccessKey, key.SecretKey, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.ListBuckets(ctx); err != nil {
		t.Fatalf("a listed key: %v", err)
	}
	if err := embedded.WriteS3Accounts(accounts, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ListBuckets(ctx); minio.ToErrorResponse(err).Code != "InvalidAccessKeyId" {
		t.Fatalf("a key no longer listed: %v, want InvalidAccessKeyId", err)
	}
}
