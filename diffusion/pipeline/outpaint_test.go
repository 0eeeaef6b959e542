package pipeline

import (
	"image"
	"image/color"
	"testing"
)

// testPicture is a w x h picture with a horizontal red ramp, a vertical
// green ramp and a blue square, so that every edge pixel differs.
func testPicture(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{R: uint8(255 * x / w), G: uint8(255 * y / h), B: 40, A: 255}
			if x >= w/4 && x < w/2 && y >= h/4 && y < h/2 {
				c.B = 230
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func TestExtendCanvas(t *testing.T) {
	src := testPicture(16, 16)
	pad := Padding{Left: 8, Top: 16, Right: 24, Bottom: 0}
	out := extendCanvas(src, pad, 2)
	if got := out.Rect.Size(); got != image.Pt(48, 32) {
		t.Fatalf("canvas %v, want 48x32", got)
	}
	for y := 0; y < 16; y++ {
		for x := 0; x < 16; x++ {
			if got, want := out.NRGBAAt(x+8, y+16), src.NRGBAAt(x, y); got != want {
				t.Fatalf("original pixel (%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
	// The fill is not flat: it carries the ramps on.
	var lo, hi [3]uint8
	lo = [3]uint8{255, 255, 255}
	for y := 0; y < 32; y++ {
		for x := 0; x < 48; x++ {
			if x >= 8 && x < 24 && y >= 16 {
				continue
			}
			c := out.NRGBAAt(x, y)
			if c.A != 255 {
				t.Fatalf("fill pixel (%d,%d) has alpha %d", x, y, c.A)
			}
			for i, v := range []uint8{c.R, c.G, c.B} {
				lo[i], hi[i] = min(lo[i], v), max(hi[i], v)
			}
		}
	}
	if hi[0]-lo[0] < 64 || hi[1]-lo[1] < 64 {
		t.Errorf("fill ranges R %d..%d, G %d..%d: flat, want the ramps continued", lo[0], hi[0], lo[1], hi[1])
	}
	// Next to the seam the fill follows the original's edge (a flat grey
	// would be 60 levels off on average here; the blur of the steep ramp
	// costs some).
	sum := 0
	for x := 0; x < 16; x++ {
		a, b := out.NRGBAAt(x+8, 15), src.NRGBAAt(x, 0)
		sum += max(int(a.R)-int(b.R), int(b.R)-int(a.R))
	}
	mean := float64(sum) / 16
	t.Logf("seam row: %.1f levels from the edge on average", mean)
	if mean > 24 {
		t.Errorf("fill above the original differs from its top edge by %.1f levels on average, want at most 24", mean)
	}
}

func TestReflectIndex(t *testing.T) {
	want := []int{2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1} // i = -3..7 for n = 3
	for i := -3; i <= 7; i++ {
		if got := reflectIndex(i, 3); got != want[i+3] {
			t.Errorf("reflectIndex(%d, 3) = %d, want %d", i, got, want[i+3])
		}
	}
}

func TestOutpaintMask(t *testing.T) {
	// A 4x4 original masked at (1,1), padded 2 left and 2 bottom, VAE factor 1.
	mask := make([]float32, 16)
	mask[1*4+1] = 1
	got := outpaintMask(mask, 4, 4, Padding{Left: 2, Bottom: 2}, 1)
	want := []string{
		"111000",
		"111000",
		"111000",
		"111000",
		"111111",
		"111111",
	}
	// Row 1, column 1 of the original is (3, 1) on the canvas; column 0 of
	// the original is the repainted seam next to the left padding, and
	// row 3 the seam above the bottom padding.
	want[1] = "111100"
	want[3] = "111111"
	for y, row := range want {
		for x, c := range row {
			if v := got[y*6+x]; v != float32(c-'0') {
				t.Fatalf("mask (%d,%d) = %v, want %c\n%v", x, y, v, c, got)
			}
		}
	}
}
