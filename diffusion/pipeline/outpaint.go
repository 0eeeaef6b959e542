package pipeline

import (
	"image"
	"image/color"
)

// Outpainting grows the canvas and inpaints the new area (strength 1 by
// default). The new area is pre-filled, for the VAE and for strengths
// below 1, with the image mirrored across its edges and then blurred: the
// colours and overall structure continue past the seam without the streaks
// of stretched edge pixels or the hard copies of a plain mirror. The mask
// covers the new area and one latent pixel (the VAE factor) of the
// original along each extended side, so that the seam itself is repainted
// rather than left as an edge between two images.

// fillBlurPasses box blurs approximate a Gaussian (three passes of a box
// of radius r have a standard deviation of about r).
const fillBlurPasses = 3

// extendCanvas returns img grown by pad, the original pixels in place and
// the new area filled with a blurred mirror image of the original. factor
// is the VAE factor; the blur radius is two latent pixels.
func extendCanvas(img *image.NRGBA, pad Padding, factor int) *image.NRGBA {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	cw, ch := w+pad.Left+pad.Right, h+pad.Top+pad.Bottom
	mirror := make([][3]float32, cw*ch)
	for y := 0; y < ch; y++ {
		sy := reflectIndex(y-pad.Top, h)
		for x := 0; x < cw; x++ {
			c := img.NRGBAAt(reflectIndex(x-pad.Left, w), sy)
			mirror[y*cw+x] = [3]float32{float32(c.R), float32(c.G), float32(c.B)}
		}
	}
	for range fillBlurPasses {
		mirror = boxBlur(mirror, cw, ch, 2*factor)
	}
	out := image.NewNRGBA(image.Rect(0, 0, cw, ch))
	inner := image.Rect(pad.Left, pad.Top, pad.Left+w, pad.Top+h)
	for y := 0; y < ch; y++ {
		for x := 0; x < cw; x++ {
			if (image.Point{x, y}).In(inner) {
				c := img.NRGBAAt(x-pad.Left, y-pad.Top)
				c.A = 255
				out.SetNRGBA(x, y, c)
				continue
			}
			v := mirror[y*cw+x]
			out.SetNRGBA(x, y, color.NRGBA{R: round8(v[0]), G: round8(v[1]), B: round8(v[2]), A: 255})
		}
	}
	return out
}

// reflectIndex maps i to 0..n-1 by mirroring at the edges, the edge pixel
// repeated (NumPy's "symmetric" padding), as far out as needed.
func reflectIndex(i, n int) int {
	m := i % (2 * n)
	if m < 0 {
		m += 2 * n
	}
	if m >= n {
		m = 2*n - 1 - m
	}
	return m
}

// boxBlur averages every pixel of a w x h RGB image over the square of
// radius r around it, clamping at the borders; it is separable.
func boxBlur(src [][3]float32, w, h, r int) [][3]float32 {
	tmp := make([][3]float32, len(src))
	blurLine(src, tmp, w, h, r, 1, w) // rows
	out := make([][3]float32, len(src))
	blurLine(tmp, out, h, w, r, w, 1) // columns
	return out
}

// blurLine box-blurs lines lines of n pixels each with a running sum;
// along a line pixels are step apart, and lines start next apart.
func blurLine(src, dst [][3]float32, n, lines, r, step, next int) {
	at := func(base, k int) [3]float32 { return src[base+min(max(k, 0), n-1)*step] }
	d := float32(2*r + 1)
	for l := 0; l < lines; l++ {
		base := l * next
		var sum [3]float32
		for k := -r; k <= r; k++ {
			v := at(base, k)
			sum[0], sum[1], sum[2] = sum[0]+v[0], sum[1]+v[1], sum[2]+v[2]
		}
		for i := 0; i < n; i++ {
			dst[base+i*step] = [3]float32{sum[0] / d, sum[1] / d, sum[2] / d}
			in, out := at(base, i+r+1), at(base, i-r)
			for c := range sum {
				sum[c] += in[c] - out[c]
			}
		}
	}
}

// round8 rounds v to the nearest 8-bit level.
func round8(v float32) uint8 {
	return uint8(min(max(v+0.5, 0), 255))
}

// outpaintMask grows the w x h mask of the original by pad: 1 on the new
// area and on the factor pixels of the original next to it, the original's
// own mask elsewhere.
func outpaintMask(mask []float32, w, h int, pad Padding, factor int) []float32 {
	cw, ch := w+pad.Left+pad.Right, h+pad.Top+pad.Bottom
	out := make([]float32, cw*ch)
	fill(out, 1)
	// The margins of the original that the seam repaint covers.
	left, top := margin(pad.Left, factor), margin(pad.Top, factor)
	right, bottom := margin(pad.Right, factor), margin(pad.Bottom, factor)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if x < left || y < top || x >= w-right || y >= h-bottom {
				continue
			}
			out[(y+pad.Top)*cw+x+pad.Left] = mask[y*w+x]
		}
	}
	return out
}

// margin is how far the mask reaches into the original on a side padded
// by p.
func margin(p, factor int) int {
	if p == 0 {
		return 0
	}
	return factor
}
