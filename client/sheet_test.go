package client

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

func TestWriteContactSheet(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "frames"), 0o755); err != nil {
		t.Fatal(err)
	}
	colours := []color.NRGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}}
	var m wire.Manifest
	for i, c := range colours {
		img := image.NewNRGBA(image.Rect(0, 0, 4, 4))
		for p := 0; p < len(img.Pix); p += 4 {
			img.Pix[p], img.Pix[p+1], img.Pix[p+2], img.Pix[p+3] = c.R, c.G, c.B, c.A
		}
		name := filepath.Join(dir, "frames", []string{"000000.png", "000001.png", "000002.png"}[i])
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		m.Frames = append(m.Frames, wire.ManifestFrame{Index: i, Key: "jobs/j/frames/" + filepath.Base(name)})
	}
	out := filepath.Join(dir, "sheet.png")
	if err := WriteContactSheet(dir, m, 2, 3, out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sheet, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 2 columns of 12 px with a 2 px gap; 2 rows.
	if b := sheet.Bounds(); b.Dx() != 26 || b.Dy() != 26 {
		t.Fatalf("sheet is %v, want 26x26", b)
	}
	for _, tc := range []struct {
		x, y int
		want color.NRGBA
	}{{0, 0, colours[0]}, {11, 11, colours[0]}, {14, 0, colours[1]}, {0, 14, colours[2]}, {12, 0, color.NRGBA{255, 255, 255, 255}}} {
		if got := color.NRGBAModel.Convert(sheet.At(tc.x, tc.y)).(color.NRGBA); got != tc.want {
			t.Errorf("pixel (%d,%d) = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
	if err := WriteContactSheet(dir, wire.Manifest{JobID: "j"}, 2, 3, out); err == nil {
		t.Error("a sheet of no frames was written")
	}
}
