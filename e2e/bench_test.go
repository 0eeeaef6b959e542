//go:build farmbench

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/coordinator"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// benchEnv reads an integer setting of the benchmark from the environment.
func benchEnv(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// TestFarmBench runs one big load-test job through the whole farm in this
// process (coordinator, nodes, NATS and etcd in-process; the S3 gateway is
// its usual child process) and reports frames per second from submit to
// manifest, dispatch latency and memory. scripts/bench-farm.sh runs it:
//
//	go test -tags farmbench -run TestFarmBench -v -timeout 30m ./e2e
//
// Settings: BENCH_KIND (batch or animation), BENCH_FRAMES (20000),
// BENCH_NODES (32), BENCH_FPT (frames per task, 4), BENCH_DELAY_MS (per frame, 0), BENCH_PROBES (idle dispatch
// probes, 200), BENCH_OUT (folder for heap.prof, taken at 90% of the
// frames; with BENCH_CPUPROFILE=1 also cpu.prof), BENCH_COORDINATOR=child
// (the coordinator in its own process, its heap read from its /metrics).
func TestFarmBench(t *testing.T) {
	frames := benchEnv(t, "BENCH_FRAMES", 20000)
	nodes := benchEnv(t, "BENCH_NODES", 32)
	fpt := benchEnv(t, "BENCH_FPT", 4)
	delay := time.Duration(benchEnv(t, "BENCH_DELAY_MS", 0)) * time.Millisecond
	probes := benchEnv(t, "BENCH_PROBES", 200)
	out := os.Getenv("BENCH_OUT")

	f := newFarm(t)
	// BENCH_COORDINATOR=child runs the coordinator in a process of its
	// own, so that its heap is measured alone (from its /metrics).
	var cli *client.Client
	var metricsURL string
	if os.Getenv("BENCH_COORDINATOR") == "child" {
		var start func() *exec.Cmd
		var leading func() bool
		cli, start, leading = f.childCoordinator(t)
		start()
		farmtest.Eventually(t, 20*time.Second, leading)
		metricsURL = cli.URL() + "/metrics"
	} else {
		// The product's election lease, not the tests' 2 s one: with both
		// cores busy, a 2 s lease was once lost mid-run.
		cli = f.startCoordinatorWith(t, func(o *coordinator.Options) { o.ElectionTTL = 0 }).cli
	}
	for i := range nodes {
		o := f.nodeOptions(t, fmt.Sprintf("bench-%02d", i), 8, delay)
		// The product's lease and poll interval, not the tests' short ones
		// (which make the other tests quick to see redeliveries).
		o.LeaseTTL, o.PollInterval = 0, 0
		f.startNode(t, o)
	}
	ctx := context.Background()
	runtime.GC()
	base := memNow()

	if out != "" && os.Getenv("BENCH_CPUPROFILE") != "" {
		stop := cpuProfile(t, filepath.Join(out, "cpu.prof"))
		defer stop()
	}
	peak := newPeakMem()
	defer peak.stop()
	state := f.sampleState(t, metricsURL)

	spec := benchSpec(t, frames, fpt)
	normal := spec
	normal.Normalize()
	frames = normal.TotalFrames()

	self0, kids0 := cpuTime()
	msgs0 := f.natsMessages(t)
	start := time.Now()
	st, err := cli.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	submitted := time.Since(start)
	heapDone := out == ""
	var final wire.JobStatus
	for {
		final, err = cli.Job(ctx, st.ID, "none")
		if err != nil {
			t.Fatal(err)
		}
		if !heapDone && final.FramesDone >= frames*9/10 {
			// Near the end the coordinator holds the most: every task
			// record with its result.
			writeHeap(t, filepath.Join(out, "heap.prof"))
			heapDone = true
		}
		if wire.JobFinished(final.State) && final.ManifestKey != "" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wall := time.Since(start)
	self1, kids1 := cpuTime()
	msgs1 := f.natsMessages(t)
	cpu, kids := self1+kids1-self0-kids0, kids1-kids0
	peakHeap, peakRSS := peak.stop()
	peaks := state.stop()
	if final.State != wire.JobDone || final.FramesDone != frames {
		t.Fatalf("bench job ended %s with %d/%d frames: %s", final.State, final.FramesDone, frames, final.Error)
	}
	m := f.manifest(t, st.ID)
	if len(m.Frames) != frames {
		t.Fatalf("manifest lists %d frames, want %d", len(m.Frames), frames)
	}
	t.Logf("RESULT manifest: %d frames and %d tasks in %d shards", len(m.Frames), len(m.Tasks), len(m.Shards))

	queue, gaps := f.dispatchTimes(t, st.ID)
	var first, last time.Time
	for _, mt := range m.Tasks {
		if first.IsZero() || mt.StartedAt.Before(first) {
			first = mt.StartedAt
		}
		if mt.FinishedAt.After(last) {
			last = mt.FinishedAt
		}
	}
	idle := f.idleProbes(t, cli, probes)

	t.Logf("farm bench: %s of %d frames, %d nodes, %d frames per task (%d tasks), load-test delay %s",
		normal.Kind, frames, nodes, fpt, final.TasksTotal, delay)
	if len(m.Outputs) > 0 {
		r := f.manifestTask(t, st.ID, wire.AssembleTaskID(st.ID))
		frameWall := r.StartedAt.Sub(st.CreatedAt)
		t.Logf("RESULT frames alone %.0f frames/s (submit to the assembly's start: %.2f s); assembly %.2f s (read %d ms, encode %d ms, upload %d ms) on %s",
			float64(frames)/frameWall.Seconds(), frameWall.Seconds(), r.FinishedAt.Sub(r.StartedAt).Seconds(),
			r.Timings.LoadMS, r.Timings.DenoiseMS, r.Timings.UploadMS, r.Node)
		t.Logf("RESULT assembled %v", m.Outputs)
	}
	t.Logf("RESULT end-to-end %.0f frames/s (%d frames in %.2f s, submit call %s)",
		float64(frames)/wall.Seconds(), frames, wall.Seconds(), submitted.Round(time.Millisecond))
	t.Logf("RESULT timeline from the submit call: first task started at %d ms, last finished at %.2f s, manifest seen at %.2f s",
		first.Sub(start).Milliseconds(), last.Sub(start).Seconds(), wall.Seconds())
	t.Logf("RESULT cpu %.1f s in the job (this process and the S3 gateway child, which used %.1f s): %.2f ms per frame, %.2f cores busy",
		cpu.Seconds(), kids.Seconds(), float64(cpu.Microseconds())/1000/float64(frames), cpu.Seconds()/wall.Seconds())
	t.Logf("RESULT NATS messages per frame in the job: %.2f in, %.2f out (the server's counts)",
		float64(msgs1.in-msgs0.in)/float64(frames), float64(msgs1.out-msgs0.out)/float64(frames))
	t.Logf("RESULT dispatch idle farm (published -> started, %d one-task jobs): p50 %s p99 %s max %s",
		len(idle), pct(idle, 50), pct(idle, 99), pct(idle, 100))
	t.Logf("RESULT dispatch hand-off in the job (node's previous task finished -> next started): p50 %s p99 %s max %s",
		pct(gaps, 50), pct(gaps, 99), pct(gaps, 100))
	t.Logf("RESULT queue wait in the job (published -> started, backlog included): p50 %s p99 %s",
		pct(queue, 50), pct(queue, 99))
	t.Logf("RESULT memory (whole process: coordinator, %d nodes, NATS, etcd): heap in use %s before, peak %s; peak RSS %s",
		nodes, mib(base.heap), mib(peakHeap), mib(peakRSS))
	if metricsURL != "" {
		t.Logf("RESULT coordinator process alone: peak heap in use %s, peak RSS %s (from its /metrics every 500 ms)",
			mib(peaks.coordHeap), mib(peaks.coordRSS))
	}
	t.Logf("RESULT etcd during the job: at most %d keys under %s; database at most %s (%s in use); at the end %s (%s in use)",
		peaks.keys, wire.EtcdRoot, mib(peaks.dbSize), mib(peaks.dbInUse), mib(peaks.endSize), mib(peaks.endInUse))
	if before, after, err := f.etcd.Server.CompactAndDefrag(ctx); err == nil {
		t.Logf("RESULT etcd compacted and defragmented after the job: %s -> %s, %d keys",
			mib(uint64(before.DBSize)), mib(uint64(after.DBSize)), after.Keys)
	} else {
		t.Logf("RESULT etcd compaction after the job failed: %v", err)
	}
}

// natsCounts are the messages a NATS server took in and sent out.
type natsCounts struct{ in, out int64 }

// natsMessages reads the farm's NATS server's message counts.
func (f *farm) natsMessages(t *testing.T) natsCounts {
	t.Helper()
	v, err := f.nats.Server.Server().Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	return natsCounts{in: v.InMsgs, out: v.OutMsgs}
}

// benchSpec is the benchmark's job: a batch of about frames images over 20
// prompts, or with BENCH_KIND=animation an animation of frames frames
// between three keys, assembled at the end.
func benchSpec(t *testing.T, frames, fpt int) wire.JobSpec {
	switch kind := os.Getenv("BENCH_KIND"); kind {
	case "", wire.KindBatch:
	case wire.KindAnimation:
		return wire.JobSpec{Kind: wire.KindAnimation, Name: "bench", Model: "tiny", Width: 16, Height: 16,
			Steps: 4, CFGScale: wire.GuidanceScale(3), FramesPerTask: fpt, Frames: frames, Keyframes: []wire.Keyframe{
				{Frame: 0, Prompt: "bench key a", Seed: 1},
				{Frame: frames / 2, Prompt: "bench key b", Seed: 2},
				{Frame: frames - 1, Prompt: "bench key c", Seed: 3},
			}}
	default:
		t.Fatalf("BENCH_KIND=%q: want batch or animation", kind)
	}
	prompts := make([]string, 0, 20)
	for i := range 20 {
		prompts = append(prompts, fmt.Sprintf("bench prompt %d", i))
	}
	perPrompt := (frames + len(prompts) - 1) / len(prompts)
	prompts = prompts[:(frames+perPrompt-1)/perPrompt]
	return batch("bench", prompts, perPrompt, fpt)
}

// dispatchTimes reads the job's manifest and returns each task's wait from
// publish to start, and each node's gaps between finishing a task and
// starting the next.
func (f *farm) dispatchTimes(t *testing.T, job string) (queue, gaps []time.Duration) {
	t.Helper()
	byNode := map[string][]wire.ManifestTask{}
	for _, mt := range f.manifest(t, job).Tasks {
		queue = append(queue, time.Duration(mt.Timings.QueueMS)*time.Millisecond)
		byNode[mt.Node] = append(byNode[mt.Node], mt)
	}
	for _, ts := range byNode {
		slices.SortFunc(ts, func(a, b wire.ManifestTask) int { return a.StartedAt.Compare(b.StartedAt) })
		for i := 1; i < len(ts); i++ {
			gaps = append(gaps, ts[i].StartedAt.Sub(ts[i-1].FinishedAt))
		}
	}
	return queue, gaps
}

// idleProbes submits n one-frame jobs, 20 ms apart, to the idle farm and
// returns each task's time from publish to start.
func (f *farm) idleProbes(t *testing.T, cli *client.Client, n int) []time.Duration {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for i := range n {
		st, err := cli.Submit(ctx, batch("probe", []string{fmt.Sprintf("probe %d", i)}, 1, 1))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.ID)
		time.Sleep(20 * time.Millisecond)
	}
	var out []time.Duration
	for _, id := range ids {
		waitJob(t, cli, id, 30*time.Second)
		ts := f.manifest(t, id).Tasks
		if len(ts) != 1 {
			t.Fatalf("probe %s: the manifest records %d tasks", id, len(ts))
		}
		out = append(out, time.Duration(ts[0].Timings.QueueMS)*time.Millisecond)
	}
	return out
}

// cpuTime is the CPU time used so far by this process and by its children
// (the S3 gateway).
func cpuTime() (own, children time.Duration) {
	self := os.Getpid()
	return farmtest.ProcessCPU(self), farmtest.ChildrenCPU(self)
}

// pct is the p-th percentile of ds (nearest rank).
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)].Round(100 * time.Microsecond)
}

type memSample struct{ heap, rss uint64 }

func memNow() memSample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapInuse, rss: rss()}
}

// rss is the process's resident set from /proc (0 elsewhere).
func rss() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// peakMem samples heap in use and RSS every 250 ms and keeps the peaks.
type peakMem struct {
	done      chan struct{}
	wg        sync.WaitGroup
	once      sync.Once
	heap, rss uint64
}

func newPeakMem() *peakMem {
	p := &peakMem{done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			s := memNow()
			p.heap, p.rss = max(p.heap, s.heap), max(p.rss, s.rss)
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *peakMem) stop() (heap, rss uint64) {
	p.once.Do(func() { close(p.done); p.wg.Wait() })
	return p.heap, p.rss
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func cpuProfile(t *testing.T, path string) func() {
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(fh); err != nil {
		t.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); fh.Close() }
}

func writeHeap(t *testing.T, path string) {
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := pprof.Lookup("heap").WriteTo(fh, 0); err != nil {
		t.Fatal(err)
	}
}

// stateSampler samples, every 500 ms, the etcd keys and database size of
// the farm and, given a metrics URL, the coordinator's heap and RSS, and
// keeps the peaks.
type stateSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	statePeaks
}

type statePeaks struct {
	keys                               int64
	dbSize, dbInUse, endSize, endInUse uint64
	coordHeap, coordRSS                uint64
}

func (f *farm) sampleState(t *testing.T, metricsURL string) *stateSampler {
	s := &stateSampler{done: make(chan struct{})}
	endpoint := f.etcdConfig().Endpoints[0]
	sample := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if resp, err := f.etc.Get(ctx, wire.EtcdRoot, clientv3.WithPrefix(), clientv3.WithCountOnly()); err == nil {
			s.keys = max(s.keys, resp.Count)
		}
		if st, err := f.etc.Status(ctx, endpoint); err == nil {
			s.dbSize, s.dbInUse = max(s.dbSize, uint64(st.DbSize)), max(s.dbInUse, uint64(st.DbSizeInUse))
			s.endSize, s.endInUse = uint64(st.DbSize), uint64(st.DbSizeInUse)
		}
		if metricsURL != "" {
			heap, rss := coordinatorMemory(ctx, metricsURL)
			s.coordHeap, s.coordRSS = max(s.coordHeap, heap), max(s.coordRSS, rss)
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			sample()
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *stateSampler) stop() statePeaks {
	s.once.Do(func() { close(s.done) })
	s.wg.Wait()
	return s.statePeaks
}

// coordinatorMemory reads go_memstats_heap_inuse_bytes and
// process_resident_memory_bytes from a coordinator's /metrics.
func coordinatorMemory(ctx context.Context, url string) (heap, rss uint64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes":
			heap = uint64(n)
		case "process_resident_memory_bytes":
			rss = uint64(n)
		}
	}
	return heap, rss
}
