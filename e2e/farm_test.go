package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/coordinator"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ackWait is the task consumers' ack wait: short, so that a killed node's
// task comes back within the test's time.
const ackWait = 2 * time.Second

// farm is the three real servers of one test and the clients the test uses
// to look at them directly.
type farm struct {
	nats  *farmtest.NATSServer
	etcd  *farmtest.EtcdServer
	s3    *farmtest.S3Server
	token string

	etc *clientv3.Client
	s3c *connect.S3Client
	js  jetstream.JetStream
}

func newFarm(t testing.TB) *farm {
	t.Helper()
	f := &farm{nats: farmtest.RunJetStream(t), etcd: farmtest.RunEtcd(t), s3: farmtest.RunS3(t),
		token: farmtest.RandomSecret(t)}
	f.etc = f.etcd.Client(t)
	f.s3c = f.s3.Client(t)
	f.js = f.nats.JetStream(t)
	return f
}

func (f *farm) natsConfig() connect.NATSConfig {
	return connect.NATSConfig{URL: f.nats.URL, User: f.nats.User, Password: f.nats.Password}
}

func (f *farm) etcdConfig() connect.EtcdConfig {
	return connect.EtcdConfig{Endpoints: f.etcd.Endpoints, User: f.etcd.User, Password: f.etcd.Password}
}

func (f *farm) s3Config() connect.S3Config {
	return connect.S3Config{Endpoint: f.s3.Endpoint, AccessKey: f.s3.AccessKey, SecretKey: f.s3.SecretKey,
		Bucket: f.s3.Bucket, Region: "us-east-1"}
}

// coord is a coordinator started by startCoordinator, with an API client.
type coord struct {
	c      *coordinator.Coordinator
	cli    *client.Client
	cancel context.CancelFunc
	done   chan error
	closed bool
}

// startCoordinator starts a coordinator on a random port and waits until it
// leads. It is stopped at cleanup unless stopped before.
func (f *farm) startCoordinator(t testing.TB) *coord {
	t.Helper()
	return f.startCoordinatorWith(t, nil)
}

// startCoordinatorWith is startCoordinator with options changed by mutate
// (when not nil) from the tests' quick ones.
func (f *farm) startCoordinatorWith(t testing.TB, mutate func(*coordinator.Options)) *coord {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := coordinator.Options{
		NATS: f.natsConfig(), Etcd: f.etcdConfig(), S3: f.s3Config(),
		Streams:  connect.StreamOptions{AckWait: ackWait},
		Listener: ln, Token: f.token,
		RetryBase: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, ElectionTTL: 2 * time.Second,
		Logger: testLogger(t, "coordinator"),
	}
	if mutate != nil {
		mutate(&o)
	}
	c, err := coordinator.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &coord{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	select {
	case <-c.Ready():
	case err := <-r.done:
		t.Fatalf("coordinator exited: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("coordinator not ready")
	}
	t.Cleanup(func() { r.stop(t) })
	farmtest.Eventually(t, 10*time.Second, c.Leading)
	if r.cli, err = client.New(client.Options{URL: c.URL(), Token: f.token}); err != nil {
		t.Fatal(err)
	}
	return r
}

// stop shuts the coordinator down and waits for Run to return.
func (r *coord) stop(t testing.TB) {
	t.Helper()
	if r.closed {
		return
	}
	r.closed = true
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("coordinator Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("coordinator did not stop")
	}
}

// nodeOptions are a load-test node's options, connected through configs as
// a separate process would be.
func (f *farm) nodeOptions(t testing.TB, id string, vramGiB int64, delay time.Duration) node.Options {
	return node.Options{
		ID: id, NATS: f.natsConfig(), Etcd: f.etcdConfig(), S3: f.s3Config(),
		RendererName: node.RendererLoadTest, LoadTestDelay: delay, VRAMBytes: vramGiB << 30,
		LeaseTTL: 2 * time.Second, PollInterval: 200 * time.Millisecond,
		Logger: testLogger(t, id),
	}
}

// startNode runs a node in this process until the test ends, and waits
// until it is registered.
func (f *farm) startNode(t testing.TB, o node.Options) *node.Node {
	t.Helper()
	n, err := node.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node %s: %v", o.ID, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("node %s did not stop", o.ID)
		}
	})
	f.waitNode(t, o.ID, func(e *wire.NodeInfo) bool { return e != nil })
	return n
}

// startChildNode runs a load-test node in a child process (this test binary
// re-executed with envChildNode set); it is killed at cleanup if still alive.
func (f *farm) startChildNode(t testing.TB, id string, delay time.Duration) *exec.Cmd {
	t.Helper()
	return f.startChild(t, childSpec{ID: id, Delay: delay})
}

// startChild runs the node of spec (its connections filled in here) in a
// child process, as startChildNode does.
func (f *farm) startChild(t testing.TB, c childSpec) *exec.Cmd {
	t.Helper()
	c.NATS, c.Etcd, c.S3, c.VRAMBytes = f.natsConfig(), f.etcdConfig(), f.s3Config(), 8<<30
	id := c.ID
	spec, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := farmtest.StartSelf(t, envChildNode, string(spec))
	f.waitNode(t, id, func(e *wire.NodeInfo) bool { return e != nil })
	return cmd
}

// entry reads a node's etcd entry (nil when absent).
func (f *farm) entry(t testing.TB, id string) *wire.NodeInfo {
	t.Helper()
	return farmtest.NodeEntry(t, f.etc, id)
}

// waitNode waits until cond holds for node id's entry (nil when absent).
func (f *farm) waitNode(t testing.TB, id string, cond func(*wire.NodeInfo) bool) {
	t.Helper()
	farmtest.Eventually(t, 15*time.Second, func() bool { return cond(f.entry(t, id)) })
}

// currentTask waits until node id reports rendering a task and returns it.
func (f *farm) currentTask(t testing.TB, id string) string {
	t.Helper()
	var task string
	f.waitNode(t, id, func(e *wire.NodeInfo) bool {
		if e != nil && e.CurrentTask != "" {
			task = e.CurrentTask
			return true
		}
		return false
	})
	return task
}

// manifestTask finds a task in the job's manifest: its delivery record
// once the job ended and its task state left etcd.
func (f *farm) manifestTask(t testing.TB, job, task string) wire.ManifestTask {
	t.Helper()
	for _, mt := range f.manifest(t, job).Tasks {
		if mt.ID == task {
			return mt
		}
	}
	t.Fatalf("the manifest of %s does not record task %s", job, task)
	return wire.ManifestTask{}
}

// renderProblems lists what breaks exactly-once rendering in a finished
// job, counted from the renders the nodes reported rather than from S3 keys
// (which never repeat): tasks the manifest records as rendered more than
// once, and successful results that came after the job ended. It first
// waits until no node works on the job and the RESULTS stream is drained,
// so that a second render still running is counted.
func (f *farm) renderProblems(t testing.TB, job string) []string {
	t.Helper()
	ctx := context.Background()
	farmtest.Eventually(t, 20*time.Second, func() bool {
		resp, err := f.etc.Get(ctx, wire.NodesPrefix, clientv3.WithPrefix())
		if err != nil {
			return false
		}
		for _, kv := range resp.Kvs {
			var n wire.NodeInfo
			if json.Unmarshal(kv.Value, &n) == nil && n.CurrentJob == job {
				return false
			}
		}
		s, err := f.js.Stream(ctx, wire.ResultsStream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	var problems []string
	for _, mt := range f.manifest(t, job).Tasks {
		if mt.State == wire.TaskDone && mt.Renders != 1 {
			problems = append(problems, fmt.Sprintf("task %s rendered %d times", mt.ID, mt.Renders))
		}
	}
	// The coordinator applies results in batches: give a late one time to land.
	var rec wire.JobRecord
	farmtest.Eventually(t, 5*time.Second, func() bool {
		resp, err := f.etc.Get(ctx, wire.JobKey(job))
		return err == nil && len(resp.Kvs) == 1 && json.Unmarshal(resp.Kvs[0].Value, &rec) == nil
	})
	if rec.LateResults > 0 {
		problems = append(problems, fmt.Sprintf("%d results after the job ended", rec.LateResults))
	}
	return problems
}

// countObjects counts the S3 objects under prefix.
func (f *farm) countObjects(t testing.TB, prefix string) int {
	t.Helper()
	n := 0
	for o := range f.s3c.ListObjects(context.Background(), f.s3.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		n++
	}
	return n
}

// countKeys counts the etcd keys under prefix.
func (f *farm) countKeys(t testing.TB, prefix string) int64 {
	t.Helper()
	resp, err := f.etc.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// batch is a load-test batch job of prompts x perPrompt frames.
func batch(name string, prompts []string, perPrompt, framesPerTask int) wire.JobSpec {
	return wire.JobSpec{Name: name, Model: "tiny", Prompts: prompts, Seeds: wire.SeedRange(1000, perPrompt),
		Width: 16, Height: 16, Steps: 4, CFGScale: wire.GuidanceScale(3), FramesPerTask: framesPerTask}
}

// waitJob polls the job until it finishes and returns its final status.
func waitJob(t testing.TB, cli *client.Client, id string, timeout time.Duration) wire.JobStatus {
	t.Helper()
	var st wire.JobStatus
	farmtest.Eventually(t, timeout, func() bool {
		var err error
		st, err = cli.Job(context.Background(), id, "")
		return err == nil && wire.JobFinished(st.State) && st.ManifestKey != ""
	})
	return st
}

// frameKeys lists the object keys under the job's frames prefix.
func (f *farm) frameKeys(t testing.TB, job string) []string {
	t.Helper()
	var keys []string
	for obj := range f.s3c.ListObjects(context.Background(), f.s3.Bucket,
		minio.ListObjectsOptions{Prefix: wire.FramesPrefix(job), Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

// object reads an S3 object.
func (f *farm) object(t testing.TB, key string) []byte {
	t.Helper()
	obj, err := f.s3c.GetObject(context.Background(), f.s3.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

// manifest reads the job's manifest, summary and shards, straight from S3.
func (f *farm) manifest(t testing.TB, job string) wire.Manifest {
	t.Helper()
	open := func(ctx context.Context, key string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(f.object(t, key))), nil
	}
	m, err := wire.ReadManifest(context.Background(), open, job)
	if err != nil {
		t.Fatalf("manifest of %s: %v", job, err)
	}
	return m
}

// checkComplete asserts that job is done with exactly total frames: as many
// objects under its prefix, at the keys of frames 0..total-1, each a valid
// PNG, a manifest listing each frame once with its seed and prompt, and
// each task rendered exactly once (renderProblems). It returns the
// manifest.
func (f *farm) checkComplete(t testing.TB, job string, total int) wire.Manifest {
	t.Helper()
	keys := f.frameKeys(t, job)
	if len(keys) != total {
		t.Errorf("%d frame objects under %s, want %d", len(keys), wire.FramesPrefix(job), total)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("key %s listed twice", k)
		}
		seen[k] = true
	}
	for i := range total {
		k := wire.FrameKey(job, i)
		if !seen[k] {
			t.Errorf("frame %d (%s) missing", i, k)
			continue
		}
		if _, err := png.Decode(bytes.NewReader(f.object(t, k))); err != nil {
			t.Errorf("frame %s is not a PNG: %v", k, err)
		}
	}
	m := f.manifest(t, job)
	if m.State != wire.JobDone || m.FramesTotal != total || len(m.Frames) != total || len(m.Failed) != 0 {
		t.Errorf("manifest: state %s, %d/%d frames listed, %d failed", m.State, len(m.Frames), m.FramesTotal, len(m.Failed))
	}
	for _, p := range f.renderProblems(t, job) {
		t.Errorf("not exactly once: %s", p)
	}
	listed := map[int]bool{}
	for _, fr := range m.Frames {
		want := m.Spec.FrameAt(job, fr.Index)
		if listed[fr.Index] {
			t.Errorf("manifest lists frame %d twice", fr.Index)
		}
		listed[fr.Index] = true
		if fr.Index < 0 || fr.Index >= total || fr.Key != want.Key || fr.Seed != want.Seed || fr.Prompt != want.Prompt || fr.Node == "" {
			t.Errorf("manifest frame %+v, want index < %d, key %s, seed %d, prompt %q and a node", fr, total, want.Key, want.Seed, want.Prompt)
		}
	}
	return m
}

// testLogger logs warnings and errors of a component to the test log
// until the test's cleanup reaches it; later lines (from goroutines that
// outlive the test) go nowhere, since t.Log would panic.
func testLogger(t testing.TB, name string) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: w})
}

// testWriter sends log lines to t.Log.
type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
