package media

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"math"
	"strings"
	"testing"
)

// gradientFrames is an animation of n w x h frames like a sky at dawn: a
// diagonal gradient whose two end colours drift from night blues to
// morning oranges, so that the frames' colours span a wide range that a
// per-frame palette would quantize differently in every frame.
func gradientFrames(n, w, h int) []image.Image {
	lerp := func(a, b, u float64) float64 { return a + (b-a)*u }
	frames := make([]image.Image, n)
	for f := range n {
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		p := float64(f) / float64(n-1)
		from := [3]float64{lerp(20, 250, p), lerp(30, 120, p), lerp(120, 40, p)}
		to := [3]float64{lerp(60, 255, p), lerp(200, 230, p), lerp(230, 90, p)}
		for y := range h {
			for x := range w {
				u := float64(x+y) / float64(w+h-2)
				var c [3]uint8
				for k := range c {
					c[k] = uint8(lerp(from[k], to[k], u) + 0.5)
				}
				m.SetRGBA(x, y, color.RGBA{c[0], c[1], c[2], 0xff})
			}
		}
		frames[f] = m
	}
	return frames
}

// meanAbsError is the mean absolute difference per channel between the
// frames and the decoded GIF, in 8-bit levels.
func meanAbsError(frames []image.Image, g *gif.GIF) [3]float64 {
	var sum [3]float64
	n := 0
	for i, f := range frames {
		b := f.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				want := rgbAt(f, x, y)
				got := rgbAt(g.Image[i], x-b.Min.X, y-b.Min.Y)
				for k := range 3 {
					sum[k] += math.Abs(float64(want[k]) - float64(got[k]))
				}
				n++
			}
		}
	}
	for k := range sum {
		sum[k] /= float64(n)
	}
	return sum
}

func encodeDecodeGIF(t *testing.T, frames []image.Image, fps int) *gif.GIF {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeGIF(&buf, frames, fps); err != nil {
		t.Fatalf("EncodeGIF: %v", err)
	}
	g, err := gif.DecodeAll(&buf)
	if err != nil {
		t.Fatalf("gif.DecodeAll: %v", err)
	}
	return g
}

func TestEncodeGIF_Gradient(t *testing.T) {
	frames := gradientFrames(48, 32, 32)
	g := encodeDecodeGIF(t, frames, 8)
	if len(g.Image) != 48 {
		t.Fatalf("decoded %d frames, want 48", len(g.Image))
	}
	if g.LoopCount != 0 {
		t.Errorf("loop count %d, want 0 (forever)", g.LoopCount)
	}
	for i, d := range g.Delay {
		if d != 13 { // 100/8 = 12.5 rounds to 13
			t.Fatalf("frame %d delay %d, want 13", i, d)
		}
	}
	global, ok := g.Config.ColorModel.(color.Palette)
	if !ok || len(global) == 0 || len(global) > 256 {
		t.Fatalf("global palette %T of %d colours, want 1..256", g.Config.ColorModel, len(global))
	}
	for i, m := range g.Image {
		if &m.Palette[0] != &global[0] {
			t.Fatalf("frame %d has a local colour table, want the global one", i)
		}
		if m.Bounds() != image.Rect(0, 0, 32, 32) {
			t.Fatalf("frame %d bounds %v", i, m.Bounds())
		}
	}
	e := meanAbsError(frames, g)
	t.Logf("mean abs error per channel (R, G, B): %.2f %.2f %.2f levels, %d colours", e[0], e[1], e[2], len(global))
	for k, v := range e {
		if v > 6 {
			t.Errorf("channel %d mean abs error %.2f levels, want at most 6", k, v)
		}
	}
}

// TestEncodeGIF_StaticPartIsStable checks that a part of the picture that
// does not move gets the same palette indices in every frame, which a
// per-frame palette would not give.
func TestEncodeGIF_StaticPartIsStable(t *testing.T) {
	moving := gradientFrames(24, 48, 32)
	still := moving[0].(*image.RGBA)
	frames := make([]image.Image, len(moving))
	for i, f := range moving {
		m := image.NewRGBA(f.Bounds())
		copy(m.Pix, f.(*image.RGBA).Pix)
		// The top 16 rows never change. Floyd–Steinberg pushes error only
		// right and down, so the moving rows below cannot reach them.
		copy(m.Pix[:16*m.Stride], still.Pix[:16*still.Stride])
		frames[i] = m
	}
	g := encodeDecodeGIF(t, frames, 12)
	top := g.Image[0].Pix[:16*g.Image[0].Stride]
	for i, m := range g.Image[1:] {
		if !bytes.Equal(m.Pix[:16*m.Stride], top) {
			t.Fatalf("frame %d: the static rows changed", i+1)
		}
	}
}

// TestEncodeGIF_FewColoursExact checks that frames with at most 256
// colours come back exactly.
func TestEncodeGIF_FewColoursExact(t *testing.T) {
	cs := []color.RGBA{{255, 0, 0, 255}, {0, 200, 0, 255}, {10, 20, 30, 255}, {255, 255, 255, 255}}
	var frames []image.Image
	for f := range 4 {
		m := image.NewRGBA(image.Rect(0, 0, 16, 16))
		for y := range 16 {
			for x := range 16 {
				m.SetRGBA(x, y, cs[(x/4+y/4+f)%len(cs)])
			}
		}
		frames = append(frames, m)
	}
	g := encodeDecodeGIF(t, frames, 10)
	if e := meanAbsError(frames, g); e != [3]float64{} {
		t.Fatalf("mean abs error %v, want exact colours", e)
	}
}

func TestGIFDelay(t *testing.T) {
	tests := []struct{ fps, want int }{
		{1, 100}, {8, 13}, {10, 10}, {12, 8}, {24, 4}, {30, 3}, {50, 2}, {60, 2}, {1000, 2},
	}
	for _, tc := range tests {
		if got := gifDelay(tc.fps); got != tc.want {
			t.Errorf("gifDelay(%d) = %d, want %d", tc.fps, got, tc.want)
		}
	}
}

func TestEncodeGIF_Errors(t *testing.T) {
	frames := gradientFrames(3, 32, 32)
	tests := []struct {
		name    string
		frames  []image.Image
		fps     int
		wantErr string
	}{
		{"no frames", nil, 8, "media: gif: no frames"},
		{"zero fps", frames, 0, "media: gif: fps is 0; it must be at least 1"},
		{"mismatched size", append(frames[:2:2], image.NewRGBA(image.Rect(0, 0, 32, 16))),
			8, "media: gif: frame 2 is 32x16 but frame 0 is 32x32; all frames must have one size"},
		{"nil frame", []image.Image{frames[0], nil}, 8, "media: gif: frame 1 is nil"},
		{"empty frame", []image.Image{image.NewRGBA(image.Rectangle{})}, 8, "media: gif: frame 0 is empty (0x0)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := EncodeGIF(&buf, tc.frames, tc.fps)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// BenchmarkEncodeGIF is the cost of a typical farm animation.
func BenchmarkEncodeGIF(b *testing.B) {
	frames := gradientFrames(48, 512, 512)
	for b.Loop() {
		var buf bytes.Buffer
		if err := EncodeGIF(&buf, frames, 8); err != nil {
			b.Fatal(err)
		}
	}
}
