package embedded_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	mib        = 1 << 20
	rewrites   = 100
	rewriteKey = "jobs/1/chunks"
)

// rewriteOneKey writes a fresh 1 MiB value to one key rewrites times, as a
// coordinator rewriting a job's chunk state does; it returns the last
// value and the revision of the first write.
func rewriteOneKey(t *testing.T, c *clientv3.Client) (last []byte, firstRev int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	last = make([]byte, mib)
	for i := range rewrites {
		rand.Read(last)
		resp, err := c.Put(ctx, rewriteKey, string(last))
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if i == 0 {
			firstRev = resp.Header.Revision
		}
	}
	return last, firstRev
}

func etcdClient(t *testing.T, e *embedded.Etcd) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(e.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func checkValue(t *testing.T, c *clientv3.Client, want []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, rewriteKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || !bytes.Equal(resp.Kvs[0].Value, want) {
		t.Fatalf("%s does not read back the last value written", rewriteKey)
	}
}

func TestEtcd_CompactAndDefrag_ShrinksTheDB(t *testing.T) {
	// Auto-compaction and the loop off: only CompactAndDefrag frees space.
	e, err := embedded.StartEtcd(embedded.EtcdOptions{Dir: t.TempDir(),
		CompactionRetention: -1, DefragInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c := etcdClient(t, e)
	last, _ := rewriteOneKey(t, c)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before, after, err := e.CompactAndDefrag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before %+v, after %+v", before, after)
	// The history was there: nearly the 100 revisions' bytes (bbolt may
	// already have reused a few pages once the compaction began).
	if before.DBSize < rewrites*mib*8/10 {
		t.Fatalf("db size before = %d, want most of the %d revisions written (>= %d)", before.DBSize, rewrites, rewrites*mib*8/10)
	}
	if after.DBSize >= before.DBSize/2 {
		t.Fatalf("db size after = %d, want < half of %d", after.DBSize, before.DBSize)
	}
	if after.Keys != 1 || after.Revision != before.Revision {
		t.Fatalf("after = %+v, want 1 key at revision %d", after, before.Revision)
	}
	checkValue(t, c, last)
}

func TestEtcd_DefragLoop_GivesBackCompactedSpace(t *testing.T) {
	logs := &farmtest.SyncBuffer{}
	e, err := embedded.StartEtcd(embedded.EtcdOptions{Dir: t.TempDir(),
		Logger:              hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info, JSONFormat: true}),
		CompactionRetention: time.Second, DefragInterval: 100 * time.Millisecond, DefragMinFree: mib})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c := etcdClient(t, e)
	last, firstRev := rewriteOneKey(t, c)

	// Periodic compaction with a 1s retention drops the first write's revision...
	farmtest.Eventually(t, 15*time.Second, func() bool {
		_, err := c.Get(context.Background(), rewriteKey, clientv3.WithRev(firstRev))
		return errors.Is(err, rpctypes.ErrCompacted)
	})
	// ...and the loop gives the freed pages back: the db file, which held
	// 100 MiB of revisions unless compaction kept up, ends below half of it
	// and a defragmentation logged that it at least halved the file. The
	// coordinator keeps writing meanwhile: etcd counts the pages a
	// compaction freed only once a later write commits.
	var u embedded.Usage
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("usage %+v, log:\n%s", u, logs.String())
		}
	})
	farmtest.Eventually(t, 15*time.Second, func() bool {
		if _, err := c.Put(context.Background(), "jobs/1/heartbeat", time.Now().String()); err != nil {
			t.Fatal(err)
		}
		if u, err = e.Usage(context.Background()); err != nil {
			t.Fatal(err)
		}
		return u.DBSize < rewrites*mib/2 && halvingDefrag(t, logs.String())
	})
	t.Logf("usage %+v", u)
	checkValue(t, c, last)
	e.Close()
	e.Close()
}

// halvingDefrag reports whether the JSON log holds a defragmentation that
// took the db file below half its size.
func halvingDefrag(t *testing.T, log string) bool {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var l struct {
			Message string `json:"@message"`
			Before  int64  `json:"db_size_before"`
			After   int64  `json:"db_size_after"`
		}
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l.Message == "defragmented" && l.After > 0 && l.After < l.Before/2 {
			t.Logf("loop: %s", line)
			return true
		}
	}
	return false
}

func TestEtcd_Logger_ReceivesServerAndClientWarnings(t *testing.T) {
	logs := &farmtest.SyncBuffer{}
	dir := t.TempDir()
	// etcd warns when its data dir is open to others.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := embedded.StartEtcd(embedded.EtcdOptions{Dir: dir,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if got := logs.String(); !strings.Contains(got, "[WARN]  check file permission") {
		t.Fatalf("server warning missing from the hclog output:\n%s", got)
	}
	// Neither etcd's start-up chatter at info nor its by-design warnings come through.
	for _, noise := range []string{"[INFO]", "[DEBUG]", "single port", "simple token"} {
		if got := logs.String(); strings.Contains(got, noise) {
			t.Fatalf("hclog output holds %q:\n%s", noise, got)
		}
	}

	// A client from ClientConfig warns through the same logger when the member is gone.
	c := etcdClient(t, e)
	e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "nodes/a"); err == nil {
		t.Fatal("get from a closed member succeeded")
	}
	got := logs.String()
	if !strings.Contains(got, "[WARN]  client: retrying of unary invoker failed") {
		t.Fatalf("client warning missing from the hclog output:\n%s", got)
	}
	// Close's listeners shutting down are not errors.
	if strings.Contains(got, "[ERROR]") {
		t.Fatalf("hclog output holds errors after Close:\n%s", got)
	}
}
