package coordinator

import (
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
)

func node(id, backend string, usable int64, state string) wire.NodeInfo {
	return wire.NodeInfo{ID: id, Backend: backend, UsableBytes: usable, State: state, Classes: wire.ClassesForNode(backend, usable)}
}

// withFree gives a node one GPU of its usable size with free bytes free.
func withFree(n wire.NodeInfo, free int64) wire.NodeInfo {
	n.GPUs = []wire.GPU{{Name: "test GPU", TotalVRAM: n.UsableBytes, FreeVRAM: free}}
	return n
}

func TestExplainWait(t *testing.T) {
	q := waitQuery{class: "vram16", need: 10 << 30, kind: "batch.sdxl", waiting: 3}
	tests := []struct {
		name     string
		nodes    []wire.NodeInfo
		excluded map[string]string
		want     []string
	}{
		{"no nodes", nil, nil, []string{"no node is registered", "class vram16"}},
		{"too small", []wire.NodeInfo{node("a", wire.BackendCUDA, 8<<30, wire.NodeReady)}, nil,
			[]string{"no registered node can run class vram16", "node a: vram: class vram16 needs 14.4 GiB, node has 8.0 GiB"}},
		{"excluded", []wire.NodeInfo{node("a", wire.BackendCUDA, 24<<30, wire.NodeReady)}, map[string]string{"a": "3 failures"},
			[]string{"excluded from batch.sdxl", "a (3 failures)"}},
		{"draining", []wire.NodeInfo{node("a", wire.BackendCUDA, 24<<30, wire.NodeDraining)}, nil,
			[]string{"draining"}},
		{"short of free vram", []wire.NodeInfo{withFree(node("a", wire.BackendCUDA, 24<<30, wire.NodeReady), 4<<30)}, nil,
			[]string{"lacks free VRAM right now", "node a has 4.0 GiB of VRAM free now, a task needs about 10.0 GiB"}},
		{"busy", []wire.NodeInfo{node("a", wire.BackendCUDA, 24<<30, wire.NodeBusy), node("b", wire.BackendCPU, 2<<30, wire.NodeReady)}, nil,
			[]string{"1 node(s) can run them (1 busy)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(explainWait(q, tc.nodes, tc.excluded), "\n")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("reasons %q lack %q", got, w)
				}
			}
		})
	}
	// A cpu node never serves a cuda-pinned class, however large.
	q.class = "cuda8"
	got := strings.Join(explainWait(q, []wire.NodeInfo{node("c", wire.BackendCPU, 64<<30, wire.NodeReady)}, nil), "\n")
	if !strings.Contains(got, "backend: class cuda8 needs cuda") {
		t.Errorf("cuda class on cpu node: %q", got)
	}
}

func TestCoordinator_Backoff_DoublesToMax(t *testing.T) {
	c, err := New(Options{Token: "t", NATS: natsCfg, Etcd: etcdCfg, S3: s3Cfg, RetryBase: time.Second, RetryMax: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := c.backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
}

func TestCoordinator_NoteFailure_ExcludesAfterThreshold(t *testing.T) {
	now := time.Unix(1000, 0)
	c, err := New(Options{Token: "t", NATS: natsCfg, Etcd: etcdCfg, S3: s3Cfg, ExcludeAfter: 2,
		ExcludeWindow: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	c.failures = map[string]map[string][]time.Time{}
	oom := &wire.Error{Code: wire.CodeOutOfMemory}
	if e := c.noteFailure("n", "k", oom); e != nil {
		t.Fatal("excluded after one failure")
	}
	if e := c.noteFailure("n", "k", &wire.Error{Code: wire.CodeCancelled}); e != nil {
		t.Fatal("a cancel counted as a failure")
	}
	if e := c.noteFailure("n", "other", oom); e != nil {
		t.Fatal("failures of another kind counted")
	}
	now = now.Add(2 * time.Minute) // the first failure left the window
	if e := c.noteFailure("n", "k", oom); e != nil {
		t.Fatal("failure outside the window counted")
	}
	e := c.noteFailure("n", "k", oom)
	if e == nil || e.NodeID != "n" || e.Kind != "k" || e.Failures != 2 {
		t.Fatalf("exclusion = %+v", e)
	}
}

func TestNew_RefusesBadOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "token") || !strings.Contains(err.Error(), "nats") {
		t.Fatalf("New(empty) = %v", err)
	}
	if _, err := New(Options{Token: "t", NATS: natsCfg, Etcd: etcdCfg, S3: s3Cfg, TLSCertFile: "x"}); err == nil {
		t.Fatal("cert without key accepted")
	}
}

var (
	natsCfg = connect.NATSConfig{URL: "nats://127.0.0.1:1"}
	etcdCfg = connect.EtcdConfig{Endpoints: []string{"127.0.0.1:1"}}
	s3Cfg   = connect.S3Config{Endpoint: "127.0.0.1:1", AccessKey: "a", SecretKey: "b", Bucket: "c"}
)
