package embedded_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// envParent makes the test binary act as a parent that starts a gateway
// child, prints its pid and waits to be killed (TestS3_ChildDiesWithParent).
const envParent = "LATENTFARM_TEST_S3_PARENT"

func TestMain(m *testing.M) {
	embedded.RunChildIfRequested()
	if dir := os.Getenv(envParent); dir != "" {
		s3, err := embedded.StartS3(embedded.S3Options{Dir: dir, AccessKey: "parent", SecretKey: "parent-secret"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(s3.Pid())
		select {}
	}
	os.Exit(m.Run())
}

func TestNATS_RefusesClientsWithoutCredentials(t *testing.T) {
	s := farmtest.RunJetStream(t)
	for name, opts := range map[string][]nats.Option{
		"none":           nil,
		"wrong password": {nats.UserInfo(s.User, "not-the-password")},
		"wrong user":     {nats.UserInfo("intruder", s.Password)},
	} {
		t.Run(name, func(t *testing.T) {
			nc, err := nats.Connect(s.URL, append(opts, nats.MaxReconnects(0))...)
			if err == nil {
				nc.Close()
				t.Fatal("connected without valid credentials")
			}
			if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				t.Fatalf("want an authorization error, got %v", err)
			}
		})
	}
	if nc := s.Conn(t); !nc.IsConnected() {
		t.Fatal("valid credentials did not connect")
	}
}

func TestNATS_Validate(t *testing.T) {
	cases := map[string]embedded.NATSOptions{
		"no store":    {User: "u", Password: "p"},
		"no password": {StoreDir: t.TempDir(), User: "u"},
		"bad port":    {StoreDir: t.TempDir(), User: "u", Password: "p", Port: 70000},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := embedded.StartNATS(o); !errors.Is(err, embedded.ErrNATS) {
				t.Fatalf("want ErrNATS, got %v", err)
			}
		})
	}
}

func TestNATS_RestartKeepsStream(t *testing.T) {
	s := farmtest.RunJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js := s.JetStream(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TASKS", Subjects: []string{"tasks.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "tasks.a", []byte("frame-7")); err != nil {
		t.Fatal(err)
	}
	old := s.Server
	s.Restart(t)
	old.Shutdown() // a second Shutdown must be harmless
	js = s.JetStream(t)
	str, err := js.Stream(ctx, "TASKS")
	if err != nil {
		t.Fatalf("stream lost in restart: %v", err)
	}
	msg, err := str.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != "frame-7" {
		t.Fatalf("message after restart = %q, want frame-7", msg.Data)
	}
}

func TestEtcd_RestartKeepsKey(t *testing.T) {
	dir := t.TempDir()
	e, err := embedded.StartEtcd(embedded.EtcdOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	putGet(t, e.ClientConfig(), "jobs/1", "queued", true)
	e.Close()
	e.Close()
	e, err = embedded.StartEtcd(embedded.EtcdOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	putGet(t, e.ClientConfig(), "jobs/1", "queued", false)
}

func TestEtcd_AuthRefusesOthersAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	const pw = "s3cret-root-pw"
	e, err := embedded.StartEtcd(embedded.EtcdOptions{Dir: dir, RootPassword: pw})
	if err != nil {
		t.Fatal(err)
	}
	putGet(t, e.ClientConfig(), "nodes/a", "ready", true)
	ep := e.Endpoints()
	e.Close()
	e, err = embedded.StartEtcd(embedded.EtcdOptions{Dir: dir, RootPassword: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	putGet(t, e.ClientConfig(), "nodes/a", "ready", false)
	ep = e.Endpoints()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	anon, err := clientv3.New(clientv3.Config{Endpoints: ep, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Get(ctx, "nodes/a"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("anonymous read: want ErrUserEmpty, got %v", err)
	}
	bad, err := clientv3.New(clientv3.Config{Endpoints: ep, Username: "root", Password: "wrong",
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err == nil {
		bad.Close()
		t.Fatal("wrong root password was accepted")
	}
	if _, err := embedded.StartEtcd(embedded.EtcdOptions{Dir: t.TempDir(), Host: "0.0.0.0"}); !errors.Is(err, embedded.ErrEtcd) {
		t.Fatalf("etcd on all interfaces without auth: want ErrEtcd, got %v", err)
	}
}

// putGet writes key=value when put, then checks the value reads back.
func putGet(t *testing.T, cfg clientv3.Config, key, value string, put bool) {
	t.Helper()
	c, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if put {
		if _, err := c.Put(ctx, key, value); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != value {
		t.Fatalf("get %s = %v, want %q", key, resp.Kvs, value)
	}
}

func TestS3_WrongKeysForbidden(t *testing.T) {
	s := farmtest.RunS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, creds := range map[string][2]string{
		"wrong secret": {s.AccessKey, "wrong-secret-key"},
		"wrong access": {"intruder", s.SecretKey},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := minio.New(s.Host, &minio.Options{Creds: credentials.NewStaticV4(creds[0], creds[1], ""), Region: "us-east-1"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.PutObject(ctx, s.Bucket, "x", strings.NewReader("x"), 1, minio.PutObjectOptions{})
			if code := minio.ToErrorResponse(err).StatusCode; code != http.StatusForbidden {
				t.Fatalf("put with %s: status %d (%v), want 403", name, code, err)
			}
		})
	}
	resp, err := http.Get(s.Endpoint + "/" + s.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("anonymous list: status %d, want 403", resp.StatusCode)
	}
}

func TestS3_Multipart40MiBRoundTrips(t *testing.T) {
	s := farmtest.RunS3(t)
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	data := make([]byte, 40<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	// 5 MiB parts: 8 parts, so this is a real multipart upload.
	info, err := c.PutObject(ctx, s.Bucket, "big/frame.bin", bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{PartSize: 5 << 20, ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) {
		t.Fatalf("uploaded %d bytes, want %d", info.Size, len(data))
	}
	obj, err := c.GetObject(ctx, s.Bucket, "big/frame.bin", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("downloaded %d bytes differ from the %d uploaded", len(got), len(data))
	}
}

// TestPutBytes_StoresWhatWasGiven: PutBytes writes empty, small and (past
// its one-request limit) large objects, under keys with bytes that S3
// encodes, each with its content type, and each reads back as written:
// signed by connect itself (the region is known) and by minio-go (it is
// not). A wrong secret or an unknown bucket comes back as the store's own
// error code.
func TestPutBytes_StoresWhatWasGiven(t *testing.T) {
	s := farmtest.RunS3(t)
	cfg := connect.S3Config{Endpoint: s.Endpoint, AccessKey: s.AccessKey, SecretKey: s.SecretKey,
		Region: "us-east-1", Bucket: s.Bucket}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, region := range []string{"us-east-1", ""} {
		cfg.Region = region
		c, err := connect.S3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{0, 300, 17 << 20} {
			for _, name := range []string{"%d.bin", "a b+c!$&'()*,;=:@/é%d~.png"} {
				data := make([]byte, size)
				if _, err := rand.Read(data); err != nil {
					t.Fatal(err)
				}
				key := fmt.Sprintf("put-%s/"+name, region, size)
				if err := c.PutBytes(ctx, s.Bucket, key, data, "image/png"); err != nil {
					t.Fatalf("region %q, %d bytes at %q: %v", region, size, key, err)
				}
				obj, err := c.GetObject(ctx, s.Bucket, key, minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(obj)
				st, serr := obj.Stat()
				obj.Close()
				if err != nil || serr != nil {
					t.Fatalf("region %q, %d bytes at %q: read %v, stat %v", region, size, key, err, serr)
				}
				if sum := md5.Sum(data); !bytes.Equal(got, data) || st.ContentType != "image/png" ||
					size <= 1<<20 && st.ETag != hex.EncodeToString(sum[:]) {
					t.Fatalf("region %q, %d bytes at %q: read %d bytes of type %q, etag %s", region, size, key, len(got), st.ContentType, st.ETag)
				}
			}
		}
	}
	cfg.Region = "us-east-1"
	c, err := connect.S3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutBytes(ctx, "no-such-bucket", "k", []byte("x"), ""); minio.ToErrorResponse(err).Code != "NoSuchBucket" {
		t.Fatalf("put to a missing bucket: %v, want NoSuchBucket", err)
	}
	cfg.SecretKey = "wrong-secret"
	c, err = connect.S3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutBytes(ctx, s.Bucket, "k", []byte("x"), ""); minio.ToErrorResponse(err).Code != "SignatureDoesNotMatch" {
		t.Fatalf("put with a wrong secret: %v, want SignatureDoesNotMatch", err)
	}
}

// TestS3_EmptyObjectsKeepTheConnection: the gateway keeps connections alive,
// and an empty object's upload (of known or unknown size; minio-go sends both
// as a chunked body over plain HTTP) leaves nothing behind in its connection:
// the next request goes out on the same connection and succeeds.
func TestS3_EmptyObjectsKeepTheConnection(t *testing.T) {
	s := farmtest.RunS3(t)
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, size := range []int64{0, -1} {
		for i := range 3 {
			if _, err := c.PutObject(ctx, s.Bucket, "empty", bytes.NewReader(nil), size, minio.PutObjectOptions{}); err != nil {
				t.Fatalf("size %d, round %d: put empty: %v", size, i, err)
			}
			var reused bool
			tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
				GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }})
			if _, err := c.PutObject(tctx, s.Bucket, "small", strings.NewReader("abc"), 3, minio.PutObjectOptions{}); err != nil {
				t.Fatalf("size %d, round %d: the put after the empty one: %v", size, i, err)
			}
			if !reused {
				t.Fatalf("size %d, round %d: the put after the empty one needed a new connection", size, i)
			}
		}
		st, err := c.StatObject(ctx, s.Bucket, "empty", minio.StatObjectOptions{})
		if err != nil || st.Size != 0 {
			t.Fatalf("size %d: stat empty: size %d, err %v", size, st.Size, err)
		}
	}
}

func TestS3_RestartKeepsObjects(t *testing.T) {
	dir := t.TempDir()
	opts := embedded.S3Options{Dir: dir, AccessKey: "restart", SecretKey: "restart-secret"}
	gw, err := embedded.StartS3(opts)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, gw)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, "frames", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, "frames", "job1/0001.png", strings.NewReader("png"), 3, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	gw.Close()
	gw.Close()
	gw, err = embedded.StartS3(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	obj, err := client(t, gw).GetObject(ctx, "frames", "job1/0001.png", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if b, err := io.ReadAll(obj); err != nil || string(b) != "png" {
		t.Fatalf("after restart: %q, %v", b, err)
	}
}

func client(t *testing.T, gw *embedded.S3) *minio.Client {
	t.Helper()
	c, err := minio.New(gw.Host(), &minio.Options{Creds: credentials.NewStaticV4(gw.AccessKey(), gw.SecretKey(), ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestS3_ChildDiesWithParent(t *testing.T) {
	parent := exec.Command(os.Args[0])
	parent.Env = append(os.Environ(), envParent+"="+t.TempDir())
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		parent.Process.Kill()
		parent.Wait()
		t.Fatalf("parent did not report its child: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if !farmtest.ProcessAlive(child) {
		t.Fatalf("child %d not running while its parent lives", child)
	}
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	parent.Wait()
	farmtest.Eventually(t, 10*time.Second, func() bool { return !farmtest.ProcessAlive(child) })
}
