// Package farmtest starts the farm's real servers for tests: NATS with
// JetStream, etcd and an S3 gateway, each on a random loopback port, with
// its data in t.TempDir() and stopped by t.Cleanup. It never mocks them.
//
// RunS3 runs the gateway in a child process made from the test binary
// itself, so every package whose tests call RunS3 needs this TestMain:
//
//	func TestMain(m *testing.M) {
//		embedded.RunChildIfRequested()
//		os.Exit(m.Run())
//	}
package farmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// NATSServer is a NATS server with JetStream started by RunJetStream.
type NATSServer struct {
	// URL is the nats:// address; clients must log in with User and Password.
	URL      string
	User     string
	Password string
	// Server is the embedded server (Shutdown stops it early).
	Server *embedded.NATS

	storeDir string
	port     int
}

// RunJetStream starts a NATS server with JetStream and user/password auth.
func RunJetStream(t testing.TB) *NATSServer {
	t.Helper()
	s := &NATSServer{User: "farm", Password: RandomSecret(t), storeDir: t.TempDir()}
	s.start(t)
	return s
}

func (s *NATSServer) start(t testing.TB) {
	t.Helper()
	srv, err := embedded.StartNATS(embedded.NATSOptions{Port: s.port, StoreDir: s.storeDir,
		User: s.User, Password: s.Password, ServerName: "farmtest"})
	if err != nil {
		t.Fatalf("farmtest: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	s.Server, s.URL, s.port = srv, srv.URL(), srv.Port()
}

// Restart stops the server and starts it again on the same port and store,
// as a crash and restart of the NATS server would.
func (s *NATSServer) Restart(t testing.TB) {
	t.Helper()
	s.Server.Shutdown()
	s.start(t)
}

// Options are the client options that log in to this server.
func (s *NATSServer) Options() []nats.Option {
	return []nats.Option{nats.UserInfo(s.User, s.Password)}
}

// Conn connects to the server with its credentials; closed at cleanup.
func (s *NATSServer) Conn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.URL, s.Options()...)
	if err != nil {
		t.Fatalf("farmtest: nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a new connection.
func (s *NATSServer) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(s.Conn(t))
	if err != nil {
		t.Fatalf("farmtest: jetstream: %v", err)
	}
	return js
}

// JetStreamOf connects to NATS as c says and returns a JetStream context;
// the connection closes at cleanup.
func JetStreamOf(t testing.TB, c connect.NATSConfig) jetstream.JetStream {
	t.Helper()
	nc, err := connect.NATS(c, "farmtest", nil)
	if err != nil {
		t.Fatalf("farmtest: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("farmtest: jetstream: %v", err)
	}
	return js
}

// EtcdServer is an etcd member started by RunEtcd.
type EtcdServer struct {
	// Endpoints are the client URLs.
	Endpoints []string
	// User and Password are empty unless started by RunEtcdWithAuth.
	User     string
	Password string
	// Server is the embedded member (Close stops it early).
	Server *embedded.Etcd
}

// RunEtcd starts a single-member etcd on loopback, without auth.
func RunEtcd(t testing.TB) *EtcdServer {
	t.Helper()
	return runEtcd(t, "")
}

// RunEtcdWithAuth starts etcd with auth on: clients log in as root.
func RunEtcdWithAuth(t testing.TB) *EtcdServer {
	t.Helper()
	return runEtcd(t, RandomSecret(t))
}

func runEtcd(t testing.TB, password string) *EtcdServer {
	t.Helper()
	e, err := embedded.StartEtcd(embedded.EtcdOptions{Dir: t.TempDir(), RootPassword: password})
	if err != nil {
		t.Fatalf("farmtest: %v", err)
	}
	t.Cleanup(e.Close)
	return &EtcdServer{Endpoints: e.Endpoints(), User: e.User(), Password: e.Password(), Server: e}
}

// Config is a client configuration with endpoints and credentials.
func (s *EtcdServer) Config() clientv3.Config { return s.Server.ClientConfig() }

// Client connects to the member; closed at cleanup.
func (s *EtcdServer) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(s.Config())
	if err != nil {
		t.Fatalf("farmtest: etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// S3Server is an S3 gateway started by RunS3, with one bucket created.
type S3Server struct {
	// Endpoint is the http:// URL; Host is its host:port, as minio.New wants.
	Endpoint  string
	Host      string
	AccessKey string
	SecretKey string
	// Bucket exists and is empty at start.
	Bucket string
	// Gateway is the child process (Close stops it early).
	Gateway *embedded.S3
}

// RunS3 starts the S3 gateway child over a temporary directory and creates
// Bucket. The test binary needs the TestMain in the package comment.
func RunS3(t testing.TB) *S3Server {
	t.Helper()
	out := &SyncBuffer{}
	gw, err := embedded.StartS3(embedded.S3Options{Dir: t.TempDir(), AccessKey: "farmtest",
		SecretKey: RandomSecret(t), Output: out})
	if err != nil {
		t.Fatalf("farmtest: %v (did TestMain call embedded.RunChildIfRequested?)\n%s", err, out.String())
	}
	t.Cleanup(func() {
		gw.Close()
		if t.Failed() && out.Len() > 0 {
			t.Logf("farmtest: s3 gateway output:\n%s", out.String())
		}
	})
	s := &S3Server{Endpoint: gw.Endpoint(), Host: gw.Host(), AccessKey: gw.AccessKey(),
		SecretKey: gw.SecretKey(), Bucket: "farm-test", Gateway: gw}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("farmtest: create bucket %s: %v", s.Bucket, err)
	}
	return s
}

// Client is a client with the gateway's credentials.
func (s *S3Server) Client(t testing.TB) *connect.S3Client {
	t.Helper()
	c, err := connect.S3(connect.S3Config{Endpoint: s.Endpoint, AccessKey: s.AccessKey, SecretKey: s.SecretKey,
		Region: "us-east-1", Bucket: s.Bucket})
	if err != nil {
		t.Fatalf("farmtest: s3 client: %v", err)
	}
	return c
}

// Eventually polls cond every 10ms until it holds, failing the test if it
// does not within timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("farmtest: condition not met within %s", timeout)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RandomSecret is 32 random hex characters, for passwords and keys in tests.
func RandomSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("farmtest: random: %v", err)
	}
	return hex.EncodeToString(b)
}

// SyncBuffer is a bytes.Buffer that goroutines (a child's output, a
// logger's) may write while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Len is how many bytes were written so far.
func (b *SyncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}
