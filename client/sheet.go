package client

import (
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path"
	"path/filepath"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// WriteContactSheet lays the downloaded frames of m (under dir/frames) out
// in a grid, cols frames a row in manifest order, each scaled up by an
// integer factor with nearest-neighbour sampling so small frames stay sharp,
// and writes the sheet as a PNG to out.
func WriteContactSheet(dir string, m wire.Manifest, cols, scale int, out string) error {
	if cols < 1 || scale < 1 {
		return fmt.Errorf("client: contact sheet: %d columns at scale %d", cols, scale)
	}
	if len(m.Frames) == 0 {
		return fmt.Errorf("client: contact sheet: job %s has no frames", m.JobID)
	}
	frames := make([]image.Image, len(m.Frames))
	var cw, ch int
	for i, f := range m.Frames {
		img, err := readPNG(filepath.Join(dir, "frames", path.Base(f.Key)))
		if err != nil {
			return err
		}
		frames[i] = img
		cw, ch = max(cw, img.Bounds().Dx()*scale), max(ch, img.Bounds().Dy()*scale)
	}
	const gap = 2
	rows := (len(frames) + cols - 1) / cols
	sheet := image.NewNRGBA(image.Rect(0, 0, cols*(cw+gap)-gap, rows*(ch+gap)-gap))
	draw.Draw(sheet, sheet.Bounds(), image.White, image.Point{}, draw.Src)
	for i, img := range frames {
		x0, y0 := (i%cols)*(cw+gap), (i/cols)*(ch+gap)
		b := img.Bounds()
		for y := 0; y < b.Dy()*scale; y++ {
			for x := 0; x < b.Dx()*scale; x++ {
				sheet.Set(x0+x, y0+y, img.At(b.Min.X+x/scale, b.Min.Y+y/scale))
			}
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("client: contact sheet: %w", err)
	}
	if err := png.Encode(f, sheet); err != nil {
		f.Close()
		return fmt.Errorf("client: contact sheet %s: %w", out, err)
	}
	return f.Close()
}

func readPNG(p string) (image.Image, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("client: contact sheet: %w", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("client: contact sheet: %s: %w", p, err)
	}
	return img, nil
}
