package localfarm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/coordinator"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestFarm_CoordinatorLogin_IsNotAdmin: the coordinator's own logins do
// the coordinator's work (read the streams and consumers, publish and
// purge tasks; put, stat, read, presign, list and delete the objects of
// jobs, put inputs) but cannot create, change or delete a stream or a
// consumer, make or delete a bucket, change its policy, write or delete a
// model, read the token records, manage etcd users, publish results or
// read a node's replies. Each refusal is checked for what the server
// says (a permissions violation, AccessDenied), so that a wider login,
// the admin's, fails the test.
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
	nc, ec, sc := f.coordinatorConfigs()
	if sc.AccessKey == f.S3Config().AccessKey {
		t.Fatal("the coordinator has the S3 root keys")
	}

	t.Run("etcd", func(t *testing.T) { coordinatorEtcd(ctx, t, ec) })
	t.Run("nats", func(t *testing.T) { coordinatorNATS(ctx, t, nc, f.NATSConfig()) })
	t.Run("s3", func(t *testing.T) { coordinatorS3(ctx, t, sc, f.S3Config()) })
	t.Run("setup", func(t *testing.T) { coordinatorNeedsTheAdminsSetup(ctx, t, f) })
}

// coordinatorNeedsTheAdminsSetup starts coordinators with the
// coordinator's logins that do not know an admin made the streams (as farm
// coordinator given such logins): the EnsureStreams of each is refused, it
// checks the streams instead and fails naming a consumer the admin has yet
// to make, then starts once the admin made it. One given a bucket that does
// not exist fails saying an admin must make it.
func coordinatorNeedsTheAdminsSetup(ctx context.Context, t *testing.T, f *Farm) {
	nc, ec, sc := f.coordinatorConfigs()
	var log farmtest.SyncBuffer
	run := func(ctx context.Context, sc connect.S3Config) (*coordinator.Coordinator, chan error) {
		c, err := coordinator.New(coordinator.Options{NATS: nc, Etcd: ec, S3: sc, Listen: "127.0.0.1:0", Token: "t",
			StateDir: t.TempDir(), Logger: hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Warn})})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		return c, done
	}
	admin := farmtest.JetStreamOf(t, f.NATSConfig())
	consumer := wire.TaskConsumer(wire.AllClasses()[len(wire.AllClasses())-1], wire.PriorityLow)
	if err := admin.DeleteConsumer(ctx, wire.TasksStream, consumer); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, done := run(ctx, sc)
	select {
	case err := <-done:
		want := "consumer " + consumer + " of stream TASKS does not exist"
		if !errors.Is(err, connect.ErrStreamsNotReady) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "an admin must") {
			t.Errorf("coordinator: %v, want %q and who must make it", err, want)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the coordinator took %v to fail", d)
		}
	case <-ctx.Done():
		t.Fatal("the coordinator did not fail")
	}

	if err := connect.EnsureStreams(ctx, admin, connect.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	noBucket := sc
	noBucket.Bucket = "nobucket"
	_, done = run(ctx, noBucket)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "may not make the bucket nobucket: an admin must") {
		t.Errorf("coordinator without its bucket: %v, want who must make it", err)
	}

	runCtx, stop := context.WithCancel(ctx)
	c, done := run(runCtx, sc)
	select {
	case <-c.Ready():
	case err := <-done:
		t.Fatalf("coordinator: %v", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("coordinator: %v", err)
	}
	if !strings.Contains(log.String(), "checking the streams an admin made") {
		t.Errorf("the coordinator did not say why it checks:\n%s", log.String())
	}
}

func coordinatorEtcd(ctx context.Context, t *testing.T, ec connect.EtcdConfig) {
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
}

func coordinatorNATS(ctx context.Context, t *testing.T, nc, adminConfig connect.NATSConfig) {
	conn := func() (*nats.Conn, jetstream.JetStream) {
		c, err := connect.NATS(nc, "gate-test", hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		js, err := jetstream.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return c, js
	}

	// Allowed: what the coordinator does at start, on submit, on cancel
	// and for its metrics (fetching results is left to the running one).
	_, js := conn()
	if err := connect.CheckStreams(ctx, js); err != nil {
		t.Errorf("check the streams: %v", err)
	}
	class, prio := wire.AllClasses()[0], wire.PriorityHigh
	if _, err := js.Publish(ctx, wire.TaskSubject(class, prio, "j1"), []byte("{}"), jetstream.WithExpectStream(wire.TasksStream)); err != nil {
		t.Errorf("publish a task: %v", err)
	}
	if tasks, err := js.Stream(ctx, wire.TasksStream); err != nil {
		t.Errorf("tasks stream: %v", err)
	} else if err := tasks.Purge(ctx, jetstream.WithPurgeSubject(wire.JobTasksFilter("j1"))); err != nil {
		t.Errorf("purge a job's tasks: %v", err)
	}
	if _, err := connect.ClassBacklog(ctx, js); err != nil {
		t.Errorf("read the backlog: %v", err)
	}

	// Refused: every request that makes, changes or deletes a stream or a
	// consumer. A refused request is never answered: each waits out its
	// own short context, side by side.
	adminJS := farmtest.JetStreamOf(t, adminConfig)
	tasks, err := adminJS.Stream(ctx, wire.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	before := tasks.CachedInfo().Config
	changed := before
	changed.Description = "changed by the coordinator"
	taskConsumer := wire.TaskConsumer(class, prio)
	refusals := map[string]func(context.Context, jetstream.JetStream) error{
		"create a stream": func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
			return err
		},
		"update the TASKS stream": func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.UpdateStream(ctx, changed)
			return err
		},
		"delete the TASKS stream": func(ctx context.Context, js jetstream.JetStream) error {
			return js.DeleteStream(ctx, wire.TasksStream)
		},
		"delete the RESULTS stream": func(ctx context.Context, js jetstream.JetStream) error {
			return js.DeleteStream(ctx, wire.ResultsStream)
		},
		"purge the RESULTS stream": func(ctx context.Context, js jetstream.JetStream) error {
			s, err := js.Stream(ctx, wire.ResultsStream)
			if err != nil {
				return err
			}
			return s.Purge(ctx)
		},
		"create a consumer": func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateOrUpdateConsumer(ctx, wire.TasksStream, jetstream.ConsumerConfig{Durable: "mine",
				FilterSubject: wire.TaskSubject(class, prio, "mine"), AckPolicy: jetstream.AckExplicitPolicy})
			return err
		},
		"update a task consumer": func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.UpdateConsumer(ctx, wire.TasksStream, jetstream.ConsumerConfig{Durable: taskConsumer,
				FilterSubject: wire.TaskFilter(class, prio), AckPolicy: jetstream.AckExplicitPolicy, Description: "changed"})
			return err
		},
		"delete a task consumer": func(ctx context.Context, js jetstream.JetStream) error {
			return js.DeleteConsumer(ctx, wire.TasksStream, taskConsumer)
		},
		"delete the results consumer": func(ctx context.Context, js jetstream.JetStream) error {
			return js.DeleteConsumer(ctx, wire.ResultsStream, wire.ResultsConsumer)
		},
	}
	var wg sync.WaitGroup
	for what, op := range refusals {
		c, js := conn()
		wg.Go(func() {
			short, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			err := op(short, js)
			if err == nil || !errors.Is(c.LastError(), nats.ErrPermissionViolation) {
				t.Errorf("%s: %v (last error %v), want a permissions violation", what, err, c.LastError())
			}
		})
	}
	wg.Wait()
	if err := connect.CheckStreams(ctx, adminJS); err != nil {
		t.Errorf("after the refusals: %v", err)
	}
	if info, err := tasks.Info(ctx); err != nil || info.Config.Description != before.Description {
		t.Errorf("TASKS after the refusals: %+v, %v", info, err)
	}
	if _, err := adminJS.Stream(ctx, "EVIL"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream EVIL: %v, want none", err)
	}

	for _, c := range []struct {
		subject string
		publish bool
	}{
		{wire.ResultSubject("j1"), true},
		{wire.InboxSubjects(tokenUser(DefaultTokenName)), false},
	} {
		conn, _ := conn()
		if c.publish {
			_ = conn.Publish(c.subject, []byte("{}"))
		} else {
			_, _ = conn.SubscribeSync(c.subject)
		}
		if err := conn.Flush(); err != nil || !errors.Is(conn.LastError(), nats.ErrPermissionViolation) {
			t.Errorf("%s: %v, want a permissions violation", c.subject, conn.LastError())
		}
	}
}

func coordinatorS3(ctx context.Context, t *testing.T, sc, rootConfig connect.S3Config) {
	root, err := connect.S3(rootConfig)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := connect.S3(sc)
	if err != nil {
		t.Fatal(err)
	}
	bucket := sc.Bucket
	model := wire.ModelManifestKey("tiny")
	if _, err := root.PutObject(ctx, bucket, model, strings.NewReader("{}"), 2, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	put := func(key, body string) error {
		_, err := cli.PutObject(ctx, bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
		return err
	}

	// Allowed: what the coordinator does.
	if ok, err := cli.BucketExists(ctx, bucket); !ok || err != nil {
		t.Errorf("find the bucket: %v, %v", ok, err)
	}
	manifest := wire.ManifestKey("j1")
	for _, key := range []string{manifest, wire.OutputKey("j1", "sheet.png"), wire.InputKey(strings.Repeat("ab", 32), "png")} {
		if err := put(key, "{}"); err != nil {
			t.Errorf("put %s: %v", key, err)
		}
	}
	if _, err := cli.StatObject(ctx, bucket, model, minio.StatObjectOptions{}); err != nil {
		t.Errorf("stat a model: %v", err)
	}
	if obj, err := cli.GetObject(ctx, bucket, manifest, minio.GetObjectOptions{}); err != nil {
		t.Errorf("read a manifest: %v", err)
	} else if b, err := io.ReadAll(obj); err != nil || string(b) != "{}" {
		t.Errorf("read a manifest: %q, %v", b, err)
	}
	var listed int
	for o := range cli.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: wire.ModelsPrefix, Recursive: true}) {
		if o.Err != nil {
			t.Errorf("list the models: %v", o.Err)
		}
		listed++
	}
	if listed != 1 {
		t.Errorf("listed %d models, want 1", listed)
	}
	if u, err := cli.PresignedGetObject(ctx, bucket, manifest, time.Minute, url.Values{}); err != nil {
		t.Errorf("presign: %v", err)
	} else if resp, err := http.Get(u.String()); err != nil {
		t.Errorf("presigned get: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "{}" {
			t.Errorf("presigned get: %s %q", resp.Status, b)
		}
	}
	objs := make(chan minio.ObjectInfo, 2)
	objs <- minio.ObjectInfo{Key: manifest}
	objs <- minio.ObjectInfo{Key: wire.OutputKey("j1", "sheet.png")}
	close(objs)
	for r := range cli.RemoveObjectsWithResult(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		if r.Err != nil {
			t.Errorf("delete %s: %v", r.ObjectName, r.Err)
		}
	}

	// Refused, by the gateway itself (AccessDenied: the root keys would
	// pass or fail otherwise).
	denied := func(what string, err error) {
		t.Helper()
		if code := minio.ToErrorResponse(err).Code; code != "AccessDenied" {
			t.Errorf("%s: %v, want AccessDenied", what, err)
		}
	}
	denied("delete the bucket", cli.RemoveBucket(ctx, bucket))
	denied("make a bucket", cli.MakeBucket(ctx, "another", minio.MakeBucketOptions{Region: sc.Region}))
	denied("overwrite a model", put(model, "evil"))
	denied("delete a model", cli.RemoveObject(ctx, bucket, model, minio.RemoveObjectOptions{}))
	denied("write outside jobs/ and inputs/", put("elsewhere", "x"))
	// Last: were it allowed, no later request would be.
	denied("change the bucket policy", cli.SetBucketPolicy(ctx, bucket, ""))
	if ok, err := root.BucketExists(ctx, "another"); ok || err != nil {
		t.Errorf("bucket another: %v, %v; want none", ok, err)
	}
}
