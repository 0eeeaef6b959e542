package comfy

import (
	"image"
	"image/color"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// box returns the bounding box of the white pixels of m.
func box(m *image.Gray) image.Rectangle {
	var r image.Rectangle
	for y := 0; y < m.Rect.Dy(); y++ {
		for x := 0; x < m.Rect.Dx(); x++ {
			if m.GrayAt(x, y).Y == 255 {
				r = r.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return r
}

func TestMaskImage_AlphaChannelAndGrowth(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 12, 12))
	for i := range img.Pix {
		img.Pix[i] = 255 // opaque white
	}
	img.SetNRGBA(5, 5, color.NRGBA{A: 0})   // transparent: repainted
	img.SetNRGBA(1, 1, color.NRGBA{A: 200}) // mostly opaque: kept
	for _, tc := range []struct {
		grow int
		want image.Rectangle
	}{
		{0, image.Rect(5, 5, 6, 6)},
		{1, image.Rect(5, 5, 6, 6)},
		{3, image.Rect(4, 4, 7, 7)},
		{6, image.Rect(3, 3, 9, 9)}, // 2 up and left, 3 down and right, as ComfyUI's conv2d
	} {
		m, err := maskImage(img, maskChannelAlpha, tc.grow)
		if err != nil {
			t.Fatal(err)
		}
		if got := box(m); got != tc.want {
			t.Errorf("grow %d: mask covers %v, want %v", tc.grow, got, tc.want)
		}
	}
}

func TestMaskImage_ColourChannelAndEmpty(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	img.SetGray(2, 3, color.Gray{Y: 255})
	img.SetGray(4, 4, color.Gray{Y: 127}) // rounds to 0
	m, err := maskImage(img, "red", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := box(m); got != image.Rect(2, 3, 3, 4) {
		t.Errorf("red mask covers %v, want the one white pixel", got)
	}
	if _, err := maskImage(img, maskChannelAlpha, 6); err == nil || !strings.Contains(err.Error(), "nothing to repaint") {
		t.Errorf("an opaque image's alpha mask: %v, want an error saying it is empty", err)
	}
}

func TestInputKey_NamesOfUploads(t *testing.T) {
	key := wire.InputKey(strings.Repeat("0f", 32), "jpeg")
	name := inputName(key)
	for _, given := range []string{name, name + " [input]", "sub/" + name, `sub\` + name} {
		if got, err := inputKey(given); err != nil || got != key {
			t.Errorf("inputKey(%q) = %q, %v; want %q", given, got, err, key)
		}
	}
	for _, bad := range []string{"photo.png", "", "../" + name + "x", "sha256-abc.png"} {
		if _, err := inputKey(bad); err == nil {
			t.Errorf("inputKey(%q) accepted", bad)
		}
	}
}
