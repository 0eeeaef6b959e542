package node

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkNodes_LoadTest measures the node side of the farm: b.N
// single-frame tasks through 8 load-test nodes with no render time, each
// frame uploaded to the S3 gateway and its result published. It reports
// frames per second and the dispatch latency (task published to task
// started).
func BenchmarkNodes_LoadTest(b *testing.B) {
	f := newTestFarm(b)
	for i := range 8 {
		f.start(b, f.options(fmt.Sprintf("bench-%d", i), 8))
	}
	tasks := job(b, "bench", b.N, 1, nil)
	b.ResetTimer()
	start := time.Now()
	f.publish(b, tasks...)
	res := f.results(b, b.N, time.Duration(b.N)*time.Second+10*time.Second)
	elapsed := time.Since(start)
	b.StopTimer()
	if len(res) != b.N {
		b.Fatalf("%d results for %d tasks", len(res), b.N)
	}
	queue := make([]int64, 0, len(res))
	for _, r := range res {
		if !r.OK() {
			b.Fatalf("result %+v", r)
		}
		queue = append(queue, r.Timings.QueueMS)
	}
	slices.Sort(queue)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(queue[len(queue)/2]), "p50-dispatch-ms")
	b.ReportMetric(float64(queue[len(queue)*99/100]), "p99-dispatch-ms")
}
