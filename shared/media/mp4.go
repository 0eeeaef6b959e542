package media

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// minVideoSide is the short side below which frames are scaled up for MP4.
// libx264 itself takes frames down to 2x2 (even sides only; measured with
// ffmpeg 5.1 and x264 164), but players and browsers show tiny videos
// badly or not at all, so a 32x32 animation is scaled to 64x64 by a whole
// factor, nearest neighbour, which keeps the pixels sharp.
const minVideoSide = 64

// stderrTailBytes is how much of ffmpeg's stderr an error quotes.
const stderrTailBytes = 2048

// ffmpegWaitDelay bounds the wait for ffmpeg's pipes after it exits or is
// killed, should a stray child process hold them open.
const ffmpegWaitDelay = 5 * time.Second

// FFmpeg returns the path of ffmpeg on PATH, or "" when there is none.
func FFmpeg() string {
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		return ""
	}
	return p
}

// mp4Scale is the whole factor that brings the short side of size to at
// least minVideoSide (1 when it already is).
func mp4Scale(size image.Point) int {
	short := min(size.X, size.Y)
	return max(1, (minVideoSide+short-1)/short)
}

// mp4Filter scales tiny frames up, pads odd sides to even (yuv420p halves
// chroma per side) and converts to yuv420p with the BT.709 matrix in TV
// range, which is what the output is tagged with and what players assume.
func mp4Filter(size image.Point) string {
	var f []string
	if k := mp4Scale(size); k > 1 {
		f = append(f, fmt.Sprintf("scale=iw*%d:ih*%d:flags=neighbor", k, k))
	}
	f = append(f,
		"pad=ceil(iw/2)*2:ceil(ih/2)*2",
		"scale=out_color_matrix=bt709:out_range=tv",
		"format=yuv420p",
	)
	return strings.Join(f, ",")
}

// mp4Args are ffmpeg's arguments to read PNG frames from stdin and write
// an H.264 MP4 to out. +faststart moves the index to the front so that a
// browser can play while downloading; it needs a seekable output, hence a
// file rather than stdout.
func mp4Args(size image.Point, fps int, out string) []string {
	return []string{
		"-hide_banner", "-nostats", "-loglevel", "error",
		"-f", "image2pipe", "-framerate", strconv.Itoa(fps), "-c:v", "png", "-i", "pipe:0",
		"-vf", mp4Filter(size),
		"-c:v", "libx264", "-pix_fmt", "yuv420p",
		"-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
		"-movflags", "+faststart", "-an", "-f", "mp4", "-y", out,
	}
}

// EncodeMP4 writes frames as an H.264 (libx264) yuv420p MP4 at fps frames
// per second by running ffmpeg (a path, as FFmpeg returns) with the frames
// piped to it as PNGs. Odd sides are padded to even and frames with a short
// side under 64 pixels are scaled up. On failure the error quotes the tail
// of ffmpeg's stderr. When ctx ends ffmpeg is killed and the error wraps
// ctx.Err(). ffmpeg writes to a temporary directory that is always removed.
func EncodeMP4(ctx context.Context, ffmpeg string, w io.Writer, frames []image.Image, fps int) error {
	if ffmpeg == "" {
		return errors.New("media: mp4: no ffmpeg on PATH; install ffmpeg with libx264, or write a GIF")
	}
	size, err := checkFrames(frames, fps)
	if err != nil {
		return fmt.Errorf("media: mp4: %w", err)
	}
	if strings.ContainsRune(ffmpeg, filepath.Separator) {
		// ffmpeg runs in the temporary directory: a relative path would
		// be looked up there.
		if ffmpeg, err = filepath.Abs(ffmpeg); err != nil {
			return fmt.Errorf("media: mp4: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "latentfarm-mp4-")
	if err != nil {
		return fmt.Errorf("media: mp4: %w", err)
	}
	defer os.RemoveAll(dir)
	if dir, err = filepath.Abs(dir); err != nil { // TMPDIR may be relative
		return fmt.Errorf("media: mp4: %w", err)
	}
	out := filepath.Join(dir, "out.mp4")
	if err := runFFmpeg(ctx, ffmpeg, dir, mp4Args(size, fps, out), frames); err != nil {
		return err
	}
	f, err := os.Open(out)
	if err != nil {
		return fmt.Errorf("media: mp4: ffmpeg wrote no output: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("media: mp4: %w", err)
	}
	return nil
}

// runFFmpeg runs ffmpeg with args in dir, writing frames as PNGs to its
// stdin. Running in dir means that anything ffmpeg writes on its own (a
// report file when FFREPORT is set) is removed with dir.
func runFFmpeg(ctx context.Context, ffmpeg, dir string, args []string, frames []image.Image) error {
	cmd := exec.CommandContext(ctx, ffmpeg, args...)
	cmd.Dir = dir
	cmd.WaitDelay = ffmpegWaitDelay
	stderr := &tailBuffer{max: stderrTailBytes}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("media: mp4: %w", err)
	}
	if err := cmd.Start(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("media: mp4: stopped: %w", ctx.Err())
		}
		return fmt.Errorf("media: mp4: starting ffmpeg: %w", err)
	}
	written := make(chan error, 1)
	go func() { written <- writePNGs(ctx, stdin, frames) }()
	// Wait closes stdin once ffmpeg exits, which ends a write that is
	// blocked because ffmpeg failed or was killed.
	waitErr := cmd.Wait()
	writeErr := <-written
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("media: mp4: stopped: %w", ctx.Err())
	case waitErr != nil:
		return fmt.Errorf("media: mp4: ffmpeg: %w: %s", waitErr, stderr.String())
	case writeErr != nil:
		return fmt.Errorf("media: mp4: writing frames to ffmpeg: %w", writeErr)
	}
	return nil
}

// writePNGs writes frames to w as a stream of PNGs and closes w. The PNGs
// are stored uncompressed: they only cross a pipe, so compressing them
// would cost CPU for nothing.
func writePNGs(ctx context.Context, w io.WriteCloser, frames []image.Image) error {
	defer w.Close()
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := png.Encoder{CompressionLevel: png.NoCompression}
	for i, f := range frames {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := enc.Encode(bw, f); err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return w.Close()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

// String is the kept tail with its lines joined by "; ".
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for l := range strings.Lines(string(t.buf)) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	s := strings.Join(lines, "; ")
	if s == "" {
		return "(no output on stderr)"
	}
	if t.cut {
		s = "..." + s
	}
	return s
}
