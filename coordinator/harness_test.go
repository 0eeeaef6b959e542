package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) {
	embedded.RunChildIfRequested()
	os.Exit(m.Run())
}

// testFarm is real NATS, etcd and S3 servers for one test.
type testFarm struct {
	nats  *farmtest.NATSServer
	etcd  *farmtest.EtcdServer
	s3    *farmtest.S3Server
	token string
}

func newTestFarm(t *testing.T) *testFarm {
	t.Helper()
	return &testFarm{
		nats: farmtest.RunJetStream(t), etcd: farmtest.RunEtcd(t), s3: farmtest.RunS3(t),
		token: farmtest.RandomSecret(t),
	}
}

func (f *testFarm) options(t *testing.T) Options {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		NATS:        connect.NATSConfig{URL: f.nats.URL, User: f.nats.User, Password: f.nats.Password},
		Etcd:        connect.EtcdConfig{Endpoints: f.etcd.Endpoints, User: f.etcd.User, Password: f.etcd.Password},
		S3:          connect.S3Config{Endpoint: f.s3.Endpoint, AccessKey: f.s3.AccessKey, SecretKey: f.s3.SecretKey, Bucket: f.s3.Bucket, Region: "us-east-1"},
		Streams:     connect.StreamOptions{AckWait: 2 * time.Second},
		Listener:    ln,
		Token:       f.token,
		RetryBase:   50 * time.Millisecond,
		RetryMax:    200 * time.Millisecond,
		ElectionTTL: 2 * time.Second,
		Logger:      hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn, Output: testWriter{t}}),
	}
}

// testWriter sends logs to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// running is a started coordinator.
type running struct {
	c      *Coordinator
	cli    *client.Client
	stop   context.CancelFunc
	done   chan error
	stoppd bool
}

func (r *running) shutdown(t *testing.T) {
	t.Helper()
	if r.stoppd {
		return
	}
	r.stoppd = true
	r.stop()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("coordinator Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("coordinator did not stop")
	}
}

func (f *testFarm) start(t *testing.T, edit func(*Options)) *running {
	t.Helper()
	o := f.options(t)
	if edit != nil {
		edit(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	select {
	case <-c.Ready():
	case err := <-r.done:
		t.Fatalf("coordinator exited: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("coordinator not ready")
	}
	t.Cleanup(func() { r.shutdown(t) })
	r.cli, err = client.New(client.Options{URL: c.URL(), Token: f.token})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *running) waitLeading(t *testing.T) {
	t.Helper()
	farmtest.Eventually(t, 15*time.Second, r.c.Leading)
}

// testNode is a stand-in node speaking the wire protocol over the real
// servers: it pulls tasks, writes frames to S3, publishes results, acks.
type testNode struct {
	id      string
	classes []wire.Class
	// fail, when set, decides a task's failure (nil: render it).
	fail func(t wire.Task) *wire.Error

	mu      sync.Mutex
	tasks   []wire.Task
	started int
	// reported counts the results this node published.
	reported int
}

func (n *testNode) reports() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reported
}

func (n *testNode) taken() []wire.Task {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]wire.Task(nil), n.tasks...)
}

// run pulls and renders until ctx ends.
func (n *testNode) run(ctx context.Context, t *testing.T, f *testFarm) {
	nc := f.nats.Conn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Error(err)
		return
	}
	s3 := f.s3.Client(t)
	cons := map[wire.Pull]jetstream.Consumer{}
	for tick := uint64(0); ctx.Err() == nil; tick++ {
		got := false
		for _, p := range wire.PullPlan(n.classes, tick) {
			cn, ok := cons[p]
			if !ok {
				if cn, err = connect.WaitTaskConsumer(ctx, js, p.Class, p.Priority); err != nil {
					return
				}
				cons[p] = cn
			}
			batch, err := cn.FetchNoWait(1)
			if err != nil {
				continue
			}
			for m := range batch.Messages() {
				got = true
				n.handle(ctx, t, nc, js, s3, f.s3.Bucket, m)
			}
			if got {
				break
			}
		}
		if !got {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (n *testNode) handle(ctx context.Context, t *testing.T, nc *nats.Conn, js jetstream.JetStream, s3 *connect.S3Client, bucket string, m jetstream.Msg) {
	var task wire.Task
	if err := json.Unmarshal(m.Data(), &task); err != nil {
		t.Errorf("node %s: bad task: %v", n.id, err)
		_ = m.Term()
		return
	}
	n.mu.Lock()
	n.tasks = append(n.tasks, task)
	n.mu.Unlock()
	// The node contract: leave a task that failed here to others, unless
	// it keeps coming back (then nobody else can take it).
	if md, err := m.Metadata(); err == nil && task.Excludes(n.id) && md.NumDelivered < 3 {
		_ = m.NakWithDelay(100 * time.Millisecond)
		return
	}
	p, _ := json.Marshal(wire.Progress{JobID: task.JobID, TaskID: task.ID, NodeID: n.id, Stage: wire.StageStarted, Time: time.Now()})
	_ = nc.Publish(wire.ProgressSubject(task.JobID), p)
	res := wire.Result{TaskID: task.ID, JobID: task.JobID, NodeID: n.id, Attempt: task.Attempt, StartedAt: time.Now(), GPU: "test",
		Steps: task.Steps}
	if n.fail != nil {
		res.Error = n.fail(task)
	}
	if res.Error == nil {
		for _, fr := range task.Frames {
			png := []byte("PNG frame " + fr.Key)
			if _, err := s3.PutObject(ctx, bucket, fr.Key, bytes.NewReader(png), int64(len(png)), minio.PutObjectOptions{}); err != nil {
				res.Error = &wire.Error{Code: wire.CodeUploadFailed, Message: err.Error()}
				break
			}
			res.Frames = append(res.Frames, wire.FrameResult{Index: fr.Index, Seed: fr.Seed, Key: fr.Key, Bytes: int64(len(png)), RenderMS: 1})
		}
	}
	res.FinishedAt = time.Now()
	res.GPUSeconds = 0.5
	data, _ := json.Marshal(res)
	if _, err := js.Publish(ctx, wire.ResultSubject(task.JobID), data); err != nil {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("node %s: publish result: %v", n.id, err)
		}
		return
	}
	n.mu.Lock()
	n.reported++
	n.mu.Unlock()
	_ = m.Ack()
}

func (n *testNode) start(t *testing.T, f *testFarm) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.run(ctx, t, f) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return cancel
}

// tinySpec is a valid spec of frames images of the test model. The test
// nodes register no entry, so the model is allowed to be pending.
func tinySpec(frames int) wire.JobSpec {
	return wire.JobSpec{Model: "sd-tiny", Prompts: []string{"a red square"}, Seeds: wire.SeedRange(1, frames), Width: 16, Height: 16, Steps: 2,
		AllowPendingModel: true}
}

// pendingTasks is the number of messages in the TASKS stream.
func pendingTasks(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), wire.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
