//go:build farmbench

package embedded_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/embedded"
	"github.com/minio/minio-go/v7"
)

// BenchmarkS3Gateway_PutSmall puts 300-byte objects (a load-test frame's
// size) from 32 writers at once, the farm bench's shape, and reports the CPU
// each PUT costs the gateway child and this process.
//
//	go test -tags farmbench -run '^$' -bench S3Gateway -benchtime 20000x ./embedded
func BenchmarkS3Gateway_PutSmall(b *testing.B) {
	gw, err := embedded.StartS3(embedded.S3Options{Dir: b.TempDir(), AccessKey: "bench", SecretKey: "bench-secret"})
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	c := client(&testing.T{}, gw)
	ctx := context.Background()
	if err := c.MakeBucket(ctx, "frames", minio.MakeBucketOptions{}); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 300)
	var next atomic.Int64
	childBefore, selfBefore := procCPU(b, gw.Pid()), selfCPU()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				key := fmt.Sprintf("jobs/j%d/frames/%08d.png", i/20000, i)
				if _, err := c.PutObject(ctx, "frames", key, bytes.NewReader(body), int64(len(body)),
					minio.PutObjectOptions{ContentType: "image/png"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(procCPU(b, gw.Pid())-childBefore)/n/1e3, "gw-µs/put")
	b.ReportMetric(float64(selfCPU()-selfBefore)/n/1e3, "client-µs/put")
}

// procCPU is a process's user+system CPU time in ns, from /proc.
func procCPU(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * int64(time.Second/100)
}

func selfCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
