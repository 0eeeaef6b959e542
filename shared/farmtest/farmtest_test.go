package farmtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/minio/minio-go/v7"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	embedded.RunChildIfRequested()
	os.Exit(m.Run())
}

func TestRunJetStream_ConnAndJetStream(t *testing.T) {
	s := farmtest.RunJetStream(t)
	nc := s.Conn(t)
	sub, err := nc.SubscribeSync("hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("hello", []byte("world")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(msg.Data) != "world" {
		t.Fatalf("got %v, %v", msg, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := s.JetStream(t).AccountInfo(ctx)
	if err != nil {
		t.Fatalf("jetstream not enabled for the farm's user: %v", err)
	}
	if info.Streams != 0 {
		t.Fatalf("fresh server has %d streams", info.Streams)
	}
}

func TestRunEtcd_Client(t *testing.T) {
	s := farmtest.RunEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.Client(t)
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get: %v, %v", resp, err)
	}
	for _, ep := range s.Endpoints {
		if !strings.HasPrefix(ep, "http://127.0.0.1:") {
			t.Fatalf("endpoint %s is not loopback", ep)
		}
	}
}

func TestRunEtcdWithAuth_RefusesAnonymous(t *testing.T) {
	s := farmtest.RunEtcdWithAuth(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatalf("root put: %v", err)
	}
	anon, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Get(ctx, "k"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("anonymous get: want ErrUserEmpty, got %v", err)
	}
}

func TestRunS3_BucketReadyAndClient(t *testing.T) {
	s := farmtest.RunS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.Client(t)
	ok, err := c.BucketExists(ctx, s.Bucket)
	if err != nil || !ok {
		t.Fatalf("bucket %s exists = %v, %v", s.Bucket, ok, err)
	}
	if _, err := c.PutObject(ctx, s.Bucket, "a/b.txt", strings.NewReader("hi"), 2, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for obj := range c.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("listed %d objects, want 1", n)
	}
}

func TestEventually(t *testing.T) {
	var calls atomic.Int32
	farmtest.Eventually(t, 2*time.Second, func() bool { return calls.Add(1) >= 3 })
	if calls.Load() != 3 {
		t.Fatalf("cond called %d times, want 3", calls.Load())
	}
	rec := &recorder{TB: t}
	start := time.Now()
	farmtest.Eventually(rec, 50*time.Millisecond, func() bool { return false })
	if !rec.failed {
		t.Fatal("Eventually did not fail on a condition that never holds")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Eventually took %s with a 50ms timeout", d)
	}
}

// recorder notes Fatalf instead of ending the test.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = fmt.Sprintf(format, args...)
}
