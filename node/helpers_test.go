package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// envChildNode makes the test binary run one node from the JSON options in
// this variable, as a separate process that a test can SIGKILL.
const envChildNode = "LATENTFARM_TEST_NODE_CHILD"

func TestMain(m *testing.M) {
	embedded.RunChildIfRequested()
	if spec := os.Getenv(envChildNode); spec != "" {
		os.Exit(runChildNode(spec))
	}
	os.Exit(m.Run())
}

// childSpec is what a child node process needs: options without clients.
type childSpec struct {
	ID    string
	NATS  connect.NATSConfig
	Etcd  connect.EtcdConfig
	S3    connect.S3Config
	Delay time.Duration
	// CacheDir and LeaseTTL (default 2s) are the node's.
	CacheDir string
	LeaseTTL time.Duration
}

func runChildNode(spec string) int {
	var c childSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 2 * time.Second
	}
	n, err := New(Options{ID: c.ID, NATS: c.NATS, Etcd: c.Etcd, S3: c.S3, RendererName: RendererLoadTest, CacheDir: c.CacheDir,
		LoadTestDelay: c.Delay, VRAMBytes: 8 << 30, LeaseTTL: c.LeaseTTL, PollInterval: 200 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := n.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startChild runs a node in a child process; it is killed at cleanup.
func (f *testFarm) startChild(t testing.TB, id string, delay time.Duration) *exec.Cmd {
	t.Helper()
	return f.startChildSpec(t, childSpec{ID: id, Delay: delay})
}

// startChildSpec runs the node of c (connections filled in) in a child
// process; it is killed at cleanup.
func (f *testFarm) startChildSpec(t testing.TB, c childSpec) *exec.Cmd {
	t.Helper()
	o := f.options(c.ID, 8)
	id := c.ID
	c.NATS, c.Etcd, c.S3 = o.NATS, o.Etcd, o.S3
	spec, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := farmtest.StartSelf(t, envChildNode, string(spec))
	f.waitState(t, id, wire.NodeReady)
	return cmd
}

// testFarm is the three real servers with the farm's streams set up.
type testFarm struct {
	nats *farmtest.NATSServer
	nc   *nats.Conn
	js   jetstream.JetStream
	etcd *clientv3.Client
	s3   *farmtest.S3Server
	s3c  *connect.S3Client
}

// ackWait is short so that tests see redeliveries (and prove in-progress
// signals prevent them) quickly.
const ackWait = time.Second

func newTestFarm(t testing.TB) *testFarm {
	t.Helper()
	f := &testFarm{nats: farmtest.RunJetStream(t), s3: farmtest.RunS3(t)}
	f.nc = f.nats.Conn(t)
	js, err := jetstream.New(f.nc)
	if err != nil {
		t.Fatal(err)
	}
	f.js = js
	f.etcd = farmtest.RunEtcd(t).Client(t)
	f.s3c = f.s3.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := connect.EnsureStreams(ctx, js, connect.StreamOptions{AckWait: ackWait}); err != nil {
		t.Fatal(err)
	}
	return f
}

// options are node options connected to the farm through configs, as a
// separate process would be.
func (f *testFarm) options(id string, vramGiB int64) Options {
	return Options{
		ID:           id,
		NATS:         connect.NATSConfig{URL: f.nats.URL, User: f.nats.User, Password: f.nats.Password},
		Etcd:         connect.EtcdConfig{Endpoints: f.etcdEndpoints()},
		S3:           connect.S3Config{Endpoint: f.s3.Endpoint, AccessKey: f.s3.AccessKey, SecretKey: f.s3.SecretKey, Bucket: f.s3.Bucket},
		RendererName: RendererLoadTest,
		VRAMBytes:    vramGiB << 30,
		LeaseTTL:     2 * time.Second,
		PollInterval: 200 * time.Millisecond,
		Logger:       hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard}),
	}
}

func (f *testFarm) etcdEndpoints() []string { return f.etcd.Endpoints() }

// runningNode is a node started in the background.
type runningNode struct {
	*Node
	stop context.CancelFunc
	done chan error
}

// start runs a node until the test ends (or stop is called), once it is
// ready.
func (f *testFarm) start(t testing.TB, o Options) *runningNode {
	t.Helper()
	rn := f.launch(t, o)
	f.waitState(t, o.ID, wire.NodeReady)
	return rn
}

// launch runs a node until the test ends (or stop is called) without
// waiting for it: it may be busy by the time it is registered.
func (f *testFarm) launch(t testing.TB, o Options) *runningNode {
	t.Helper()
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rn := &runningNode{Node: n, stop: cancel, done: make(chan error, 1)}
	go func() { rn.done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-rn.done:
		case <-time.After(20 * time.Second):
			t.Error("node did not stop")
		}
	})
	return rn
}

// wait stops the node and returns Run's error.
func (rn *runningNode) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-rn.done:
		rn.done <- err
		return err
	case <-time.After(timeout):
		t.Fatalf("node did not stop within %s", timeout)
		return nil
	}
}

// entry reads a node's etcd entry (nil when absent).
func (f *testFarm) entry(t testing.TB, id string) *wire.NodeInfo {
	t.Helper()
	return farmtest.NodeEntry(t, f.etcd, id)
}

func (f *testFarm) waitState(t testing.TB, id, state string) {
	t.Helper()
	farmtest.Eventually(t, 10*time.Second, func() bool {
		e := f.entry(t, id)
		return e != nil && e.State == state
	})
}

// job splits a small batch job of the tiny model into tasks.
func job(t testing.TB, id string, frames, perTask int, mutate func(*wire.JobSpec)) []wire.Task {
	t.Helper()
	s := wire.JobSpec{Model: "tiny", Prompts: []string{"a red cube"}, Seeds: wire.SeedRange(7, frames),
		Width: 16, Height: 16, Steps: 4, CFGScale: wire.GuidanceScale(3), FramesPerTask: perTask}
	if mutate != nil {
		mutate(&s)
	}
	s.Normalize()
	tasks, err := wire.Split(id, s)
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

// publish puts tasks on the TASKS stream and announces them the way the
// coordinator does.
func (f *testFarm) publish(t testing.TB, tasks ...wire.Task) {
	t.Helper()
	for _, task := range tasks {
		task.PublishedAt = time.Now().UTC()
		data, err := json.Marshal(task)
		if err != nil {
			t.Fatal(err)
		}
		m := &nats.Msg{Subject: task.Subject(), Data: data, Header: nats.Header{}}
		m.Header.Set(wire.HeaderMsgID, task.MsgID())
		m.Header.Set(wire.HeaderTaskID, task.ID)
		if _, err := f.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if err := f.nc.Publish(wire.WakeSubject(task.Class, task.Priority), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// results fetches what nodes published on RESULTS, waiting up to timeout
// for want results.
func (f *testFarm) results(t testing.TB, want int, timeout time.Duration) []wire.Result {
	t.Helper()
	cons, err := f.js.Consumer(context.Background(), wire.ResultsStream, wire.ResultsConsumer)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.Result
	deadline := time.Now().Add(timeout)
	for len(out) < want && time.Now().Before(deadline) {
		batch, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(time.Until(deadline)))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var r wire.Result
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
			_ = m.Ack()
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
	}
	return out
}

// pendingTasks is how many task messages the stream still holds.
func (f *testFarm) pendingTasks(t testing.TB) uint64 {
	t.Helper()
	s, err := f.js.Stream(context.Background(), wire.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// object reads an S3 object (nil when absent).
func (f *testFarm) object(t testing.TB, key string) []byte {
	t.Helper()
	obj, err := f.s3c.GetObject(context.Background(), f.s3.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil
		}
		t.Fatal(err)
	}
	return data
}

func connectNATS() connect.NATSConfig { return connect.NATSConfig{URL: "nats://127.0.0.1:4222"} }

func connectEtcd() connect.EtcdConfig {
	return connect.EtcdConfig{Endpoints: []string{"127.0.0.1:2379"}}
}

func connectS3() connect.S3Config {
	return connect.S3Config{Endpoint: "127.0.0.1:9000", AccessKey: "a", SecretKey: "b", Bucket: "frames"}
}
