package localfarm_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/localfarm"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	embedded.RunChildIfRequested()
	os.Exit(m.Run())
}

// running is a farm started by start; stop ends it and checks Run's result.
type running struct {
	*localfarm.Farm
	stop func(t *testing.T)
}

func start(t *testing.T, dir string) running {
	t.Helper()
	return startWith(t, localfarm.Options{Dir: dir})
}

// startWith starts a farm of o on random ports with the test binary as its
// S3 gateway and no log.
func startWith(t *testing.T, o localfarm.Options) running {
	t.Helper()
	o.RandomPorts, o.S3FromTestBinary = true, true
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	f, err := localfarm.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	select {
	case <-f.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("farm stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("farm not ready after 60s")
	}
	stopped := false
	stop := func(t *testing.T) {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("farm shutdown: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("farm did not stop within 60s")
		}
	}
	t.Cleanup(func() { stop(t) })
	return running{Farm: f, stop: stop}
}

func TestFarm_RestartKeepsDataAndCredentials(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	f := start(t, dir)
	first := f.Credentials()
	st, err := os.Stat(filepath.Join(dir, wire.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials mode %v, want 0600", st.Mode().Perm())
	}
	onDisk, err := wire.ReadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if onDisk.Token == "" || onDisk.CoordinatorURL != first.CoordinatorURL || onDisk.S3SecretKey != first.S3SecretKey {
		t.Fatalf("credentials on disk %+v differ from the farm's %+v", onDisk, first)
	}

	js := farmtest.JetStreamOf(t, f.NATSConfig())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "keep.a", []byte("task-1")); err != nil {
		t.Fatal(err)
	}
	etcd := etcdClient(t, f.EtcdConfig())
	if _, err := etcd.Put(ctx, "latentfarm/test/key", "kept"); err != nil {
		t.Fatal(err)
	}
	s3 := s3Client(t, f.S3Config())
	if _, err := s3.PutObject(ctx, f.S3Config().Bucket, "frames/1.png", strings.NewReader("png!"), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	f.stop(t)

	f = start(t, dir)
	second := f.Credentials()
	// Up means the API takes jobs: it answers as the leader right away.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, second.CoordinatorURL+"/v1/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+second.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/jobs right after the restarted farm is up: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	if second.Token != first.Token || second.NATSPassword != first.NATSPassword ||
		second.EtcdPassword != first.EtcdPassword || second.S3AccessKey != first.S3AccessKey || second.S3SecretKey != first.S3SecretKey {
		t.Fatal("secrets changed across a restart")
	}
	str, err := farmtest.JetStreamOf(t, f.NATSConfig()).Stream(ctx, "KEEP")
	if err != nil {
		t.Fatalf("stream lost: %v", err)
	}
	if msg, err := str.GetMsg(ctx, 1); err != nil || string(msg.Data) != "task-1" {
		t.Fatalf("stream message after restart: %v %v", msg, err)
	}
	resp, err := etcdClient(t, f.EtcdConfig()).Get(ctx, "latentfarm/test/key")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Fatalf("etcd key after restart: %v %v", resp, err)
	}
	obj, err := s3Client(t, f.S3Config()).GetObject(ctx, f.S3Config().Bucket, "frames/1.png", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if b, err := io.ReadAll(obj); err != nil || string(b) != "png!" {
		t.Fatalf("object after restart: %q %v", b, err)
	}
}

func TestFarm_NothingListensWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	f := start(t, dir)
	c := f.Credentials()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if nc, err := nats.Connect(f.NATSConfig().URL, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("nats: connected without credentials")
	}
	anon, err := clientv3.New(clientv3.Config{Endpoints: f.EtcdConfig().Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Get(ctx, "x"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Errorf("etcd: anonymous read: want ErrUserEmpty, got %v", err)
	}
	bad := f.S3Config()
	bad.SecretKey = "not-the-secret-key"
	_, err = s3Client(t, bad).BucketExists(ctx, bad.Bucket)
	if code := minio.ToErrorResponse(err).StatusCode; code != http.StatusForbidden {
		t.Errorf("s3: wrong secret: status %d (%v), want 403", code, err)
	}
	for name, token := range map[string]string{"no token": "", "wrong token": "wrong"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.CoordinatorURL+"/v1/jobs", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("api with %s: status %d, want 401", name, resp.StatusCode)
		}
	}

	// NATS's monitoring endpoint (what KEDA's JetStream scaler reads) is on,
	// on loopback, and shows the TASKS stream's consumers.
	mon := f.NATSMonitorURL()
	if !strings.HasPrefix(mon, "http://127.0.0.1:") {
		t.Fatalf("nats monitoring at %q, want a loopback URL", mon)
	}
	resp, err := http.Get(mon + "/jsz?streams=true&consumers=true")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), wire.TaskConsumer(wire.AllClasses()[0], wire.PriorityHigh)) {
		t.Errorf("nats /jsz: status %d, consumer %s not listed", resp.StatusCode, wire.TaskConsumer(wire.AllClasses()[0], wire.PriorityHigh))
	}

	second, err := localfarm.New(localfarm.Options{Dir: dir, RandomPorts: true, S3FromTestBinary: true, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Run(ctx); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second farm on the same dir: want an in-use error, got %v", err)
	}
}

func TestNew_RefusesBadOptions(t *testing.T) {
	for name, o := range map[string]localfarm.Options{
		"renderer": {Dir: t.TempDir(), Renderer: "gpu-magic"},
		"nodes":    {Dir: t.TempDir(), Nodes: -1},
		"listen":   {Dir: t.TempDir(), Listen: "not an ip"},
		"port":     {Dir: t.TempDir(), NATSPort: 70000},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := localfarm.New(o); !errors.Is(err, localfarm.ErrOptions) {
				t.Fatalf("want ErrOptions, got %v", err)
			}
		})
	}
}

func TestSummary_HoldsNoSecret(t *testing.T) {
	c := wire.Credentials{CoordinatorURL: "https://10.0.0.5:8080", Token: "api-token", NATSURL: "tls://10.0.0.5:4222",
		NATSUser: "farm", NATSPassword: "nats-password", EtcdEndpoints: []string{"https://10.0.0.5:2379"}, EtcdUser: "root",
		EtcdPassword: "etcd-password", S3Endpoint: "https://10.0.0.5:7070", S3AccessKey: "AK", S3SecretKey: "s3-secret",
		S3Bucket: "farm", CA: "-----BEGIN CERTIFICATE-----"}
	got := localfarm.Summary("/srv/farm", c)
	for _, secret := range []string{c.Token, c.NATSPassword, c.EtcdPassword, c.S3SecretKey} {
		if strings.Contains(got, secret) {
			t.Errorf("summary shows the secret %q:\n%s", secret, got)
		}
	}
	for _, want := range []string{"farm node --join-token-file join-token", "/srv/farm/join-token", "/srv/farm/tls/ca.pem", c.NATSURL} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}

func etcdClient(t *testing.T, c connect.EtcdConfig) *clientv3.Client {
	t.Helper()
	cli, err := connect.Etcd(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func s3Client(t *testing.T, c connect.S3Config) *minio.Client {
	t.Helper()
	cli, err := minio.New(strings.TrimPrefix(c.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Region: c.Region})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// TestFarm_RelativeDataDir starts a farm whose --data is relative, as
// make demo's is: the S3 gateway child works in another folder, and the
// accounts file it reads must still be found.
func TestFarm_RelativeDataDir(t *testing.T) {
	t.Chdir(t.TempDir())
	r := start(t, "farm-data")
	defer r.stop(t)
	if !filepath.IsAbs(r.Dir()) {
		t.Errorf("data dir %q is not absolute", r.Dir())
	}
}
