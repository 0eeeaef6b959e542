package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// probe is what ffprobe reports of an MP4's video stream.
type probe struct {
	CodecName    string `json:"codec_name"`
	PixFmt       string `json:"pix_fmt"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	ColorSpace   string `json:"color_space"`
	NbReadFrames string `json:"nb_read_frames"`
}

func ffprobe(t *testing.T, mp4 []byte) probe {
	t.Helper()
	path := filepath.Join(t.TempDir(), "probe.mp4")
	if err := os.WriteFile(path, mp4, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,pix_fmt,nb_read_frames,width,height,color_space", "-of", "json", path)
	cmd.Dir = filepath.Dir(path) // where FFREPORT, if set, puts its log
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var r struct{ Streams []probe }
	if err := json.Unmarshal(out, &r); err != nil || len(r.Streams) != 1 {
		t.Fatalf("ffprobe output %s: %v", out, err)
	}
	return r.Streams[0]
}

// firstFrame decodes the first frame of mp4 back to RGB with ffmpeg.
func firstFrame(t *testing.T, ffmpeg string, mp4 []byte) image.Image {
	t.Helper()
	path := filepath.Join(t.TempDir(), "frame.mp4")
	if err := os.WriteFile(path, mp4, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ffmpeg, "-v", "error", "-i", path, "-frames:v", "1",
		"-f", "image2pipe", "-c:v", "png", "-pix_fmt", "rgb24", "pipe:1")
	cmd.Dir = filepath.Dir(path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("decoding the first frame: %v", err)
	}
	m, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("decoding the first frame: %v", err)
	}
	return m
}

func encodeMP4(t *testing.T, ffmpeg string, frames []image.Image, fps int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeMP4(context.Background(), ffmpeg, &buf, frames, fps); err != nil {
		t.Fatalf("EncodeMP4: %v", err)
	}
	if b := buf.Bytes(); len(b) < 12 || string(b[4:8]) != "ftyp" {
		t.Fatalf("output does not start with an ISO BMFF ftyp box: % x", b[:min(len(b), 12)])
	}
	return buf.Bytes()
}

// TestEncodeMP4 runs only where ffmpeg is installed; every subtest checks
// that EncodeMP4 leaves no directory of its own in TMPDIR.
func TestEncodeMP4(t *testing.T) {
	ffmpeg := FFmpeg()
	if ffmpeg == "" {
		t.Skip("ffmpeg is not on PATH, so EncodeMP4 is not tested (apt-get install ffmpeg)")
	}
	_, probeErr := exec.LookPath("ffprobe")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			f(t)
			if left, _ := filepath.Glob(filepath.Join(tmp, "latentfarm-mp4-*")); len(left) > 0 {
				t.Errorf("left %s behind", left)
			}
		})
	}

	run("32x32 scaled to 64x64", func(t *testing.T) {
		frames := gradientFrames(48, 32, 32)
		mp4 := encodeMP4(t, ffmpeg, frames, 8)
		if probeErr != nil {
			t.Logf("no ffprobe, so codec and frame count are not checked: %v", probeErr)
			return
		}
		p := ffprobe(t, mp4)
		want := probe{CodecName: "h264", PixFmt: "yuv420p", Width: 64, Height: 64, ColorSpace: "bt709", NbReadFrames: "48"}
		if p != want {
			t.Fatalf("ffprobe says %+v, want %+v", p, want)
		}
		// The first frame comes back with the source's colours: the
		// colour matrix used to encode is the one the file is tagged with.
		got, src := firstFrame(t, ffmpeg, mp4), frames[0]
		var sum float64
		for y := range 32 {
			for x := range 32 {
				a, b := rgbAt(src, x, y), rgbAt(got, 2*x, 2*y)
				for k := range 3 {
					sum += math.Abs(float64(a[k]) - float64(b[k]))
				}
			}
		}
		mae := sum / (32 * 32 * 3)
		t.Logf("%d bytes; first frame mean abs error %.2f levels", len(mp4), mae)
		if mae > 4 {
			t.Errorf("first frame mean abs error %.2f levels, want at most 4 (a BT.601/BT.709 mix-up measured 5.9)", mae)
		}
	})

	run("odd size padded to even", func(t *testing.T) {
		mp4 := encodeMP4(t, ffmpeg, gradientFrames(5, 101, 67), 24)
		if probeErr != nil {
			return
		}
		if p := ffprobe(t, mp4); p.Width != 102 || p.Height != 68 || p.NbReadFrames != "5" {
			t.Fatalf("ffprobe says %+v, want 102x68 and 5 frames", p)
		}
	})

	run("cancelled before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var buf bytes.Buffer
		err := EncodeMP4(ctx, ffmpeg, &buf, gradientFrames(2, 32, 32), 8)
		if !errors.Is(err, context.Canceled) || buf.Len() != 0 {
			t.Fatalf("error %v and %d bytes, want context.Canceled and nothing written", err, buf.Len())
		}
	})

	run("cancelled while encoding", func(t *testing.T) {
		// 300 frames of 1024x1024 noise take ffmpeg many seconds.
		noisy := []image.Image{noise(1024, 1024), noise(1024, 1024)}
		for i, b := range noisy[1].(*image.RGBA).Pix {
			noisy[1].(*image.RGBA).Pix[i] = b ^ 0x5a
		}
		frames := make([]image.Image, 300)
		for i := range frames {
			frames[i] = noisy[i%2]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		var buf bytes.Buffer
		err := EncodeMP4(ctx, ffmpeg, &buf, frames, 24)
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) || buf.Len() != 0 {
			t.Fatalf("error %v and %d bytes after %v, want context.DeadlineExceeded and nothing written", err, buf.Len(), took)
		}
		if took > 3*time.Second {
			t.Errorf("EncodeMP4 returned %v after the deadline, want under 3s", took)
		}
		t.Logf("stopped after %v: %v", took, err)
	})

	run("ffmpeg fails", func(t *testing.T) {
		dir := t.TempDir()
		args := mp4Args(image.Pt(512, 512), 8, filepath.Join(dir, "out.mp4"))
		for i, a := range args {
			if a == "libx264" {
				args[i] = "no-such-encoder"
			}
		}
		// Frames far larger than a pipe's buffer, so that the writer is
		// blocked when ffmpeg exits.
		big := noise(512, 512)
		frames := []image.Image{big, big, big, big, big, big, big, big}
		err := runFFmpeg(context.Background(), ffmpeg, dir, args, frames)
		if err == nil || !strings.Contains(err.Error(), "media: mp4: ffmpeg: exit status") ||
			!strings.Contains(err.Error(), "no-such-encoder") {
			t.Fatalf("error %v, want ffmpeg's exit status and its stderr naming the encoder", err)
		}
		t.Log(err)
	})

	run("relative ffmpeg path", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Symlink(ffmpeg, filepath.Join(dir, "ffmpeg")); err != nil {
			t.Fatal(err)
		}
		t.Chdir(dir)
		encodeMP4(t, "./ffmpeg", gradientFrames(2, 16, 16), 8)
	})

	run("bad ffmpeg path", func(t *testing.T) {
		err := EncodeMP4(context.Background(), filepath.Join(t.TempDir(), "ffmpeg"), &bytes.Buffer{}, gradientFrames(2, 32, 32), 8)
		if err == nil || !strings.Contains(err.Error(), "media: mp4: starting ffmpeg") {
			t.Fatalf("error %v, want one about starting ffmpeg", err)
		}
	})
}

// TestEncodeMP4_Refusals needs no ffmpeg: the arguments are checked first.
func TestEncodeMP4_Refusals(t *testing.T) {
	frames := gradientFrames(2, 32, 32)
	tests := []struct {
		name    string
		ffmpeg  string
		frames  []image.Image
		fps     int
		wantErr string
	}{
		{"no ffmpeg", "", frames, 8, "media: mp4: no ffmpeg on PATH"},
		{"no frames", "ffmpeg", nil, 8, "media: mp4: no frames"},
		{"zero fps", "ffmpeg", frames, 0, "media: mp4: fps is 0"},
		{"mismatched size", "ffmpeg", []image.Image{frames[0], noise(16, 16)}, 8, "media: mp4: frame 1 is 16x16 but frame 0 is 32x32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := EncodeMP4(context.Background(), tc.ffmpeg, &bytes.Buffer{}, tc.frames, tc.fps)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestMP4Filter(t *testing.T) {
	tests := []struct {
		size image.Point
		want string
	}{
		{image.Pt(512, 512), "pad=ceil(iw/2)*2:ceil(ih/2)*2,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"},
		{image.Pt(32, 32), "scale=iw*2:ih*2:flags=neighbor,pad="},
		{image.Pt(8, 512), "scale=iw*8:ih*8:flags=neighbor,pad="},
		{image.Pt(64, 63), "scale=iw*2:ih*2:flags=neighbor,pad="},
	}
	for _, tc := range tests {
		if got := mp4Filter(tc.size); !strings.HasPrefix(got, tc.want) {
			t.Errorf("mp4Filter(%v) = %q, want it to start with %q", tc.size, got, tc.want)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 10}
	if got := tb.String(); got != "(no output on stderr)" {
		t.Errorf("empty tail %q", got)
	}
	for _, s := range []string{"first line\n", "second\nthird\n"} {
		if _, err := tb.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := tb.String(), "...ond; third"; got != want {
		t.Errorf("tail %q, want %q", got, want)
	}
}
