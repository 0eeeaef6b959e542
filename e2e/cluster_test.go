package e2e

import (
	"bytes"
	"context"
	"image/png"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// TestFarm_ClusterMemberLossLosesNoFrame runs the farm on a three-member
// etcd cluster and a three-server JetStream cluster with the farm's streams
// at three replicas, and SIGKILLs, mid-job and at the same moment, the etcd
// leader and the NATS server the coordinator is connected to, after making
// that server the leader of JetStream's meta group, of both streams and of
// every consumer: every raft group of both systems has to elect at once.
// The job must still finish with every frame exactly once.
func TestFarm_ClusterMemberLossLosesNoFrame(t *testing.T) {
	start := time.Now()
	ec := farmtest.RunEtcdCluster(t, 3)
	nc := farmtest.RunNATSCluster(t, 3)
	f := clusterFarm(t, nc, ec)
	t.Logf("clusters up in %s", time.Since(start).Round(time.Millisecond))

	// The streams at R3, set up as docs/CLUSTER.md tells an operator to;
	// the coordinator, whose Streams.Replicas is unset, keeps them so.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := connect.EnsureStreams(ctx, f.js, connect.StreamOptions{AckWait: ackWait, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	c := f.startCoordinator(t)
	for _, name := range []string{wire.TasksStream, wire.ResultsStream} {
		if r := streamInfo(t, f.js, name).Config.Replicas; r != 3 {
			t.Fatalf("stream %s has %d replicas after the coordinator started, want 3", name, r)
		}
	}
	const delay = 30 * time.Millisecond // per frame: 3 s of rendering on three nodes
	for _, id := range []string{"n1", "n2", "n3"} {
		f.startNode(t, f.nodeOptions(t, id, 8, delay))
	}
	t.Logf("farm up in %s", time.Since(start).Round(time.Millisecond))
	moving := time.Now()
	natsVictim := nc.ConnectedTo(t, "farm-coordinator-")
	nc.MoveLeaders(t, natsVictim, wire.TasksStream, wire.ResultsStream)
	t.Logf("coordinator on %s, which leads every raft group of JetStream after %s", natsVictim.Name, time.Since(moving).Round(time.Millisecond))

	const total = 300
	st, err := c.cli.Submit(context.Background(), batch("cluster", []string{"a castle", "a moat", "a drawbridge"}, 100, 2))
	if err != nil {
		t.Fatal(err)
	}
	if st.FramesTotal != total {
		t.Fatalf("accepted %d frames, want %d", st.FramesTotal, total)
	}
	var before wire.JobStatus
	farmtest.Eventually(t, 30*time.Second, func() bool {
		before, err = c.cli.Job(context.Background(), st.ID, "")
		return err == nil && before.FramesDone >= total/5
	})
	if before.FramesDone >= total {
		t.Fatalf("all %d frames were done before the kill: slow the nodes down", total)
	}
	etcdVictim := ec.Leader(t)
	killedAt := time.Now()
	etcdVictim.Kill(t)
	natsVictim.Kill(t)
	t.Logf("killed etcd leader %s and nats server %s with %d/%d frames done", etcdVictim.Name, natsVictim.Name, before.FramesDone, total)

	final := waitJob(t, c.cli, st.ID, 60*time.Second)
	t.Logf("job finished %s after the kill (test so far %s)", time.Since(killedAt).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if final.State != wire.JobDone || final.FramesDone != total || final.FramesFailed != 0 {
		t.Fatalf("job ended %s with %d done, %d failed: %s", final.State, final.FramesDone, final.FramesFailed, final.Error)
	}
	f.checkFramesOnce(t, st.ID, total)

	// The survivors took over.
	if l := ec.Leader(t); l == etcdVictim {
		t.Errorf("etcd leader is still the killed %s", l.Name)
	}
	for _, name := range []string{wire.TasksStream, wire.ResultsStream} {
		info := streamInfo(t, f.js, name)
		if info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Leader == natsVictim.Name {
			t.Errorf("stream %s: cluster %+v, want a leader other than %s", name, info.Cluster, natsVictim.Name)
		}
	}
}

// clusterFarm is a farm on the two clusters and an S3 gateway. Its nats and
// etcd hold addresses and credentials only: they cannot be restarted.
func clusterFarm(t *testing.T, nc *farmtest.NATSCluster, ec *farmtest.EtcdCluster) *farm {
	t.Helper()
	f := &farm{
		nats:  &farmtest.NATSServer{URL: nc.URL(), User: nc.User, Password: nc.Password},
		etcd:  &farmtest.EtcdServer{Endpoints: ec.Endpoints()},
		s3:    farmtest.RunS3(t),
		token: farmtest.RandomSecret(t),
	}
	f.etc = ec.Client(t)
	f.s3c = f.s3.Client(t)
	f.js = nc.JetStream(t)
	return f
}

// streamInfo reads a stream's info from its leader.
func streamInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	farmtest.Eventually(t, 15*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, name)
		if err != nil {
			return false
		}
		info = s.CachedInfo()
		return true
	})
	return info
}

// checkFramesOnce asserts that job is done with every frame exactly once:
// total objects under its prefix, at the keys of frames 0..total-1, each a
// PNG, and a manifest that lists each frame once and no failed frame. It
// checks results, not renders: a task whose result's ack was lost in the
// failover is rendered again by design (at-least-once delivery) and
// overwrites the same keys.
func (f *farm) checkFramesOnce(t *testing.T, job string, total int) {
	t.Helper()
	keys := map[string]bool{}
	for _, k := range f.frameKeys(t, job) {
		if keys[k] {
			t.Errorf("key %s listed twice", k)
		}
		keys[k] = true
	}
	if len(keys) != total {
		t.Errorf("%d frame objects under %s, want %d", len(keys), wire.FramesPrefix(job), total)
	}
	for i := range total {
		k := wire.FrameKey(job, i)
		if !keys[k] {
			t.Errorf("frame %d (%s) missing", i, k)
		} else if _, err := png.Decode(bytes.NewReader(f.object(t, k))); err != nil {
			t.Errorf("frame %s is not a PNG: %v", k, err)
		}
	}
	m := f.manifest(t, job)
	if m.State != wire.JobDone || m.FramesTotal != total || len(m.Frames) != total || len(m.Failed) != 0 {
		t.Errorf("manifest: state %s, %d/%d frames listed, %d failed", m.State, len(m.Frames), m.FramesTotal, len(m.Failed))
	}
	listed := map[int]bool{}
	for _, fr := range m.Frames {
		if listed[fr.Index] || fr.Index < 0 || fr.Index >= total || fr.Key != wire.FrameKey(job, fr.Index) || fr.Node == "" {
			t.Errorf("manifest frame %+v: listed twice, out of range, at the wrong key or without a node", fr)
		}
		listed[fr.Index] = true
	}
}
