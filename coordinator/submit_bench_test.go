//go:build farmbench

package coordinator

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// TestSubmitBench_LargeBatch measures what a big batch costs the
// coordinator before any node renders: the submit call, the time until
// every task is in JetStream, and the heap the job's state holds (this
// process also runs NATS and etcd; the figure is the growth after a GC).
//
//	go test -tags farmbench -run SubmitBench -v ./coordinator
//	BENCH_SUBMIT_FRAMES=100000 (the default; the cap is wire.MaxFrames)
func TestSubmitBench_LargeBatch(t *testing.T) {
	frames := 100000
	if v, err := strconv.Atoi(os.Getenv("BENCH_SUBMIT_FRAMES")); err == nil {
		frames = v
	}
	f := newTestFarm(t)
	r := f.start(t, nil)
	r.waitLeading(t)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	spec := tinySpec(1)
	spec.Seeds, spec.Prompts, spec.ImagesPerPrompt = wire.Seeds{}, []string{"a"}, frames
	start := time.Now()
	st, err := r.cli.Submit(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	submitted := time.Since(start)
	js := f.nats.JetStream(t)
	farmtest.Eventually(t, 5*time.Minute, func() bool { return pendingTasks(t, js) == uint64(st.TasksTotal) })
	published := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("RESULT %d frames in %d tasks: submit call %s, all tasks in JetStream after %s, heap %+.1f MiB (%.0f bytes per frame)",
		frames, st.TasksTotal, submitted.Round(time.Millisecond), published.Round(time.Millisecond),
		float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(frames))
}
