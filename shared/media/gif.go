package media

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/gif"
	"io"
	"math"
	"runtime"
	"sync"
)

// maxGIFSide is the largest side a GIF's 16-bit logical screen can hold.
const maxGIFSide = 1<<16 - 1

// checkFrames reports an error unless there is at least one frame, all of
// one non-empty size, and fps is positive; it returns that size.
func checkFrames(frames []image.Image, fps int) (image.Point, error) {
	if len(frames) == 0 {
		return image.Point{}, errors.New("no frames")
	}
	if fps <= 0 {
		return image.Point{}, fmt.Errorf("fps is %d; it must be at least 1", fps)
	}
	for i, f := range frames {
		if f == nil {
			return image.Point{}, fmt.Errorf("frame %d is nil", i)
		}
	}
	size := frames[0].Bounds().Size()
	if size.X <= 0 || size.Y <= 0 {
		return image.Point{}, fmt.Errorf("frame 0 is empty (%dx%d)", size.X, size.Y)
	}
	for i, f := range frames[1:] {
		if s := f.Bounds().Size(); s != size {
			return image.Point{}, fmt.Errorf("frame %d is %dx%d but frame 0 is %dx%d; all frames must have one size",
				i+1, s.X, s.Y, size.X, size.Y)
		}
	}
	return size, nil
}

// gifDelay is the frame delay in 1/100 s for fps. Browsers show delays
// under 2 as 10 (a legacy of early GIFs with a delay of 0 or 1), so 2 is
// the floor and anything above 50 fps plays at 50.
func gifDelay(fps int) int {
	return max(2, int(math.Round(100/float64(fps))))
}

// EncodeGIF writes frames as an animated GIF that loops forever, at fps
// frames per second. All frames share one global palette of up to 256
// colours built from pixels of every frame, and are Floyd–Steinberg
// dithered to it, so colours and gradients stay stable from frame to frame
// instead of flickering as per-frame palettes would. Frames are taken as
// opaque: alpha is premultiplied in, as over black.
func EncodeGIF(w io.Writer, frames []image.Image, fps int) error {
	size, err := checkFrames(frames, fps)
	if err != nil {
		return fmt.Errorf("media: gif: %w", err)
	}
	if size.X > maxGIFSide || size.Y > maxGIFSide {
		return fmt.Errorf("media: gif: %dx%d is larger than a GIF's %d pixels per side", size.X, size.Y, maxGIFSide)
	}
	pal := buildPalette(samplePixels(frames), 256)
	g := &gif.GIF{
		Image:     make([]*image.Paletted, len(frames)),
		Delay:     make([]int, len(frames)),
		LoopCount: 0,
		Config:    image.Config{ColorModel: pal, Width: size.X, Height: size.Y},
	}
	delay := gifDelay(fps)
	for i := range g.Delay {
		g.Delay[i] = delay
		// Every frame shares pal's backing array: that is how image/gif
		// knows to use the global colour table instead of a local one.
		g.Image[i] = image.NewPaletted(image.Rectangle{Max: size}, pal)
	}
	ditherAll(g.Image, frames)
	if err := gif.EncodeAll(w, g); err != nil {
		return fmt.Errorf("media: gif: %w", err)
	}
	return nil
}

// ditherAll dithers frames[i] into dst[i], frames in parallel: the palette
// is fixed, so frames do not depend on each other.
func ditherAll(dst []*image.Paletted, frames []image.Image) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(frames)) {
		wg.Go(func() {
			for i := range next {
				draw.FloydSteinberg.Draw(dst[i], dst[i].Bounds(), frames[i], frames[i].Bounds().Min)
			}
		})
	}
	for i := range frames {
		next <- i
	}
	close(next)
	wg.Wait()
}
