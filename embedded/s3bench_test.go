//go:build farmbench

package embedded_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/minio/minio-go/v7"
	"golang.org/x/sys/unix"
)

// BenchmarkS3Gateway_PutSmall puts 300-byte objects (a load-test frame's
// size) the way nodes put frames (S3Client.PutBytes) from 32 writers at once,
// the farm bench's shape, and reports the CPU each PUT costs the gateway
// child and this process.
//
//	go test -tags farmbench -run '^$' -bench S3Gateway -benchtime 20000x ./embedded
func BenchmarkS3Gateway_PutSmall(b *testing.B) {
	gw, err := embedded.StartS3(embedded.S3Options{Dir: b.TempDir(), AccessKey: "bench", SecretKey: "bench-secret"})
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	c, err := connect.S3(connect.S3Config{Endpoint: gw.Host(), AccessKey: gw.AccessKey(), SecretKey: gw.SecretKey(),
		Region: "us-east-1", Bucket: "frames"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := c.MakeBucket(ctx, "frames", minio.MakeBucketOptions{}); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 300)
	var next atomic.Int64
	childBefore, selfBefore := farmtest.ProcessCPU(gw.Pid()), farmtest.ProcessCPU(os.Getpid())
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
				if err := c.PutBytes(ctx, "frames", key, body, "image/png"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(farmtest.ProcessCPU(gw.Pid())-childBefore)/n/1e3, "gw-µs/put")
	b.ReportMetric(float64(farmtest.ProcessCPU(os.Getpid())-selfBefore)/n/1e3, "client-µs/put")
}

// BenchmarkFileCreate_AsTheGatewayDoes creates files the way the gateway's
// posix backend stores a small object (an O_TMPFILE, 300 bytes, four
// extended attributes, a link into the folder) under $TMPDIR, and reports
// the CPU each costs: what the file system charges per frame, whatever S3
// server sits above it.
//
//	go test -tags farmbench -run '^$' -bench FileCreate -benchtime 20000x ./embedded
func BenchmarkFileCreate_AsTheGatewayDoes(b *testing.B) {
	dir := b.TempDir()
	tmp, frames := filepath.Join(dir, "tmp"), filepath.Join(dir, "frames")
	for _, d := range []string{tmp, frames} {
		if err := os.Mkdir(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	body, attr := bytes.Repeat([]byte("x"), 300), bytes.Repeat([]byte("a"), 32)
	before := farmtest.ProcessCPU(os.Getpid())
	b.ResetTimer()
	for i := range b.N {
		fd, err := unix.Open(tmp, unix.O_TMPFILE|unix.O_WRONLY, 0o600)
		if err != nil {
			b.Skipf("O_TMPFILE: %v", err)
		}
		if _, err := unix.Write(fd, body); err != nil {
			b.Fatal(err)
		}
		for _, name := range []string{"user.etag", "user.content-type", "user.checksum", "user.size"} {
			if err := unix.Fsetxattr(fd, name, attr, 0); err != nil {
				b.Skipf("xattrs: %v", err)
			}
		}
		err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD,
			filepath.Join(frames, fmt.Sprintf("%08d.png", i)), unix.AT_SYMLINK_FOLLOW)
		unix.Close(fd)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(farmtest.ProcessCPU(os.Getpid())-before)/float64(b.N)/1e3, "cpu-µs/file")
}
