package localfarm_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/localfarm"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestFarm_NodeLogin_AllowsWhatANodeDoesAndNothingElse takes a join
// token's logins and does, over TLS, what a node does (fetch and ack a
// task, publish a result and progress, hear cancels, register itself,
// read the node list, cancels and exclusions), then each forbidden thing:
// publish a task, delete or change a stream, make a consumer, read the
// coordinator's results or other logins' replies, write a job or another
// node's entry, read the token records, write a model or delete anything
// in S3.
func TestFarm_NodeLogin_AllowsWhatANodeDoesAndNothingElse(t *testing.T) {
	dir := t.TempDir()
	f := startWith(t, localfarm.Options{Dir: dir, TLS: localfarm.TLSOn})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tok, err := localfarm.CreateToken(ctx, dir, "gpu", 0)
	if err != nil {
		t.Fatal(err)
	}
	nodeNATS, nodeEtcd, nodeS3 := connect.JoinConfigs(tok)
	admin := farmtest.JetStreamOf(t, f.NATSConfig())
	class, prio := wire.AllClasses()[0], wire.PriorityHigh
	consumer := wire.TaskConsumer(class, prio)

	t.Run("nats allowed", func(t *testing.T) {
		nc := natsConn(t, nodeNATS)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Publish(ctx, wire.TaskSubject(class, prio, "job1"), []byte("{}")); err != nil {
			t.Fatal(err)
		}
		cons, err := js.Consumer(ctx, wire.TasksStream, consumer)
		if err != nil {
			t.Fatalf("consumer info: %v", err)
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		var got int
		for m := range batch.Messages() {
			got++
			if err := m.InProgress(); err != nil {
				t.Errorf("in progress: %v", err)
			}
			if err := m.DoubleAck(ctx); err != nil {
				t.Errorf("ack: %v", err)
			}
		}
		if got != 1 || batch.Error() != nil {
			t.Fatalf("fetched %d tasks (%v), want 1", got, batch.Error())
		}
		if _, err := js.Publish(ctx, wire.ResultSubject("job1"), []byte("{}")); err != nil {
			t.Errorf("publish result: %v", err)
		}
		if err := nc.Publish(wire.ProgressSubject("job1"), []byte("{}")); err != nil {
			t.Error(err)
		}
		for _, s := range []string{wire.CancelAll, wire.NodeControlSubject("gpu-1"), wire.WakeAll} {
			if _, err := nc.SubscribeSync(s); err != nil {
				t.Error(err)
			}
		}
		if err := nc.Flush(); err != nil || nc.LastError() != nil {
			t.Errorf("flush: %v, last error %v", err, nc.LastError())
		}
	})

	t.Run("nats refused", func(t *testing.T) {
		before := streamInfo(t, admin, wire.TasksStream)
		for _, subject := range []string{wire.TaskSubject(class, prio, "job2"), wire.CancelSubject("job2")} {
			nc := natsConn(t, nodeNATS)
			_ = nc.Publish(subject, []byte("{}"))
			if err := nc.Flush(); err != nil || !errors.Is(nc.LastError(), nats.ErrPermissionViolation) {
				t.Errorf("publish %s: %v, want a permissions violation", subject, nc.LastError())
			}
		}
		for _, subject := range []string{wire.ResultsSubjects, wire.ProgressAll, wire.InboxAll, wire.InboxSubjects("node-other")} {
			nc := natsConn(t, nodeNATS)
			_, _ = nc.SubscribeSync(subject)
			if err := nc.Flush(); err != nil || !errors.Is(nc.LastError(), nats.ErrPermissionViolation) {
				t.Errorf("subscribe %s: %v, want a permissions violation", subject, nc.LastError())
			}
		}
		js, err := jetstream.New(natsConn(t, nodeNATS))
		if err != nil {
			t.Fatal(err)
		}
		short := func() context.Context {
			c, cancel := context.WithTimeout(ctx, time.Second)
			t.Cleanup(cancel)
			return c
		}
		if err := js.DeleteStream(short(), wire.TasksStream); err == nil {
			t.Error("deleted the TASKS stream")
		}
		changed := before.Config
		changed.Description = "changed by a node"
		if _, err := js.UpdateStream(short(), changed); err == nil {
			t.Error("changed the TASKS stream")
		}
		if _, err := js.CreateOrUpdateConsumer(short(), wire.TasksStream, jetstream.ConsumerConfig{Durable: "mine"}); err == nil {
			t.Error("made a consumer")
		}
		if _, err := js.Consumer(short(), wire.ResultsStream, wire.ResultsConsumer); err == nil {
			t.Error("reached the coordinator's results consumer")
		}
		after := streamInfo(t, admin, wire.TasksStream)
		if after.Config.Description != before.Config.Description || after.State.Msgs != before.State.Msgs {
			t.Errorf("TASKS changed: %+v, was %+v", after, before)
		}
	})

	t.Run("s3", func(t *testing.T) {
		root, err := connect.S3(f.S3Config())
		if err != nil {
			t.Fatal(err)
		}
		bucket := nodeS3.Bucket
		model := wire.ModelManifestKey("tiny")
		if _, err := root.PutObject(ctx, bucket, model, strings.NewReader("{}"), 2, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		cli, err := connect.S3(nodeS3)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := cli.BucketExists(ctx, bucket); !ok || err != nil {
			t.Errorf("find the bucket: %v, %v", ok, err)
		}
		if obj, err := cli.GetObject(ctx, bucket, model, minio.GetObjectOptions{}); err != nil {
			t.Errorf("read a model: %v", err)
		} else if b, err := io.ReadAll(obj); err != nil || string(b) != "{}" {
			t.Errorf("read a model: %q, %v", b, err)
		}
		frame := wire.FrameKey("j1", 1)
		if _, err := cli.PutObject(ctx, bucket, frame, strings.NewReader("png"), 3, minio.PutObjectOptions{}); err != nil {
			t.Errorf("write a frame: %v", err)
		}
		denied := func(what string, err error) {
			if code := minio.ToErrorResponse(err).Code; code != "AccessDenied" {
				t.Errorf("%s: %v, want AccessDenied", what, err)
			}
		}
		_, err = cli.PutObject(ctx, bucket, model, strings.NewReader("evil"), 4, minio.PutObjectOptions{})
		denied("overwrite a model", err)
		_, err = cli.PutObject(ctx, bucket, "elsewhere", strings.NewReader("x"), 1, minio.PutObjectOptions{})
		denied("write outside jobs/", err)
		denied("delete a frame", cli.RemoveObject(ctx, bucket, frame, minio.RemoveObjectOptions{}))
		denied("change the bucket policy", cli.SetBucketPolicy(ctx, bucket, ""))
		if err := cli.MakeBucket(ctx, "mine", minio.MakeBucketOptions{}); err == nil {
			t.Error("made a bucket")
		}
	})

	t.Run("etcd", func(t *testing.T) {
		cli := etcdClient(t, nodeEtcd)
		lease, err := cli.Grant(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, wire.NodeKey("gpu-a1"), "{}", clientv3.WithLease(lease.ID)); err != nil {
			t.Errorf("put own entry: %v", err)
		}
		for _, prefix := range []string{wire.NodesPrefix, wire.CancelledPrefix, wire.ExclusionsPrefix} {
			if _, err := cli.Get(ctx, prefix, clientv3.WithPrefix()); err != nil {
				t.Errorf("read %s: %v", prefix, err)
			}
		}
		for name, op := range map[string]clientv3.Op{
			"put a job":                 clientv3.OpPut(wire.JobKey("j1"), "{}"),
			"put a task state record":   clientv3.OpPut(wire.ChunkKey("j1", 0), "{}"),
			"cancel a job":              clientv3.OpPut(wire.CancelledKey("j1"), "x"),
			"put another token's node":  clientv3.OpPut(wire.NodeKey("cpu-1"), "{}"),
			"put a node named gpu2":     clientv3.OpPut(wire.NodeKey("gpu2"), "{}"),
			"delete a local node":       clientv3.OpDelete(wire.NodeKey("local-1")),
			"exclude a node":            clientv3.OpPut(wire.ExclusionKey("gpu-a1", "x"), "{}"),
			"lead":                      clientv3.OpPut(wire.LeaderPrefix+"x", "me"),
			"read the jobs":             clientv3.OpGet(wire.JobsPrefix, clientv3.WithPrefix()),
			"read the token records":    clientv3.OpGet(wire.TokensPrefix, clientv3.WithPrefix()),
			"write a token record":      clientv3.OpPut(wire.TokenKey("gpu"), "{}"),
			"write outside the farm's":  clientv3.OpPut("/elsewhere", "x"),
			"write the applied version": clientv3.OpPut(wire.TokensAppliedKey, "0"),
		} {
			if _, err := cli.Do(ctx, op); !errors.Is(err, rpctypes.ErrPermissionDenied) {
				t.Errorf("%s: %v, want permission denied", name, err)
			}
		}
		if _, err := cli.UserAdd(ctx, "evil", "password"); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("add an etcd user: %v, want permission denied", err)
		}
	})
}

func natsConn(t *testing.T, c connect.NATSConfig) *nats.Conn {
	t.Helper()
	nc, err := connect.NATS(c, "access-test", hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func streamInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}
