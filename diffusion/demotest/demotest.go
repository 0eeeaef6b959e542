// Package demotest judges, without a person looking, whether a picture
// rendered by the project's demo model (models/demo, trained by
// tools/train-demo on flat coloured shapes) shows what its prompt asked for:
// the background colour, the foreground colour and the shape. It is the
// semantic end-to-end check of the engine. It must never import the farm,
// and it only understands the demo model's own prompt grammar and palette.
package demotest

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"
)

// Palette maps the demo's colour words to the RGB values the training
// pictures use (tools/train-demo/data.py PALETTE).
var Palette = map[string]color.RGBA{
	"red":    {220, 40, 40, 255},
	"green":  {40, 180, 60, 255},
	"blue":   {40, 80, 220, 255},
	"yellow": {240, 220, 40, 255},
	"white":  {245, 245, 245, 255},
	"black":  {20, 20, 20, 255},
}

// Colours lists the palette's names in a fixed order.
var Colours = []string{"red", "green", "blue", "yellow", "white", "black"}

// Shapes lists the shapes the demo model draws.
var Shapes = []string{"circle", "square", "triangle", "diamond"}

// maxColourDist is how far (Euclidean RGB) a pixel may be from a palette
// colour and still count as it; half the closest two palette colours'
// distance (about 180) keeps anti-aliased edge mixtures out.
const maxColourDist = 70

// Scene is what a single-object picture shows, or what its prompt asks for.
type Scene struct {
	Foreground string
	Background string
	Shape      string // "" when it cannot be told
}

// String formats the scene as the demo's prompt would.
func (s Scene) String() string {
	return fmt.Sprintf("%s %s on %s", s.Foreground, s.Shape, s.Background)
}

// ParsePrompt reads "a [small |large ]<colour> <shape> on a <colour>
// background" into the scene it asks for.
func ParsePrompt(prompt string) (Scene, error) {
	w := strings.Fields(strings.ToLower(prompt))
	if len(w) == 8 && (w[1] == "small" || w[1] == "large") {
		w = append(w[:1], w[2:]...)
	}
	if len(w) != 7 || w[0] != "a" || w[3] != "on" || w[4] != "a" || w[6] != "background" {
		return Scene{}, fmt.Errorf("demotest: prompt %q: want \"a <colour> <shape> on a <colour> background\"", prompt)
	}
	s := Scene{Foreground: w[1], Shape: w[2], Background: w[5]}
	if _, ok := Palette[s.Foreground]; !ok {
		return Scene{}, fmt.Errorf("demotest: prompt %q: unknown colour %q", prompt, s.Foreground)
	}
	if _, ok := Palette[s.Background]; !ok {
		return Scene{}, fmt.Errorf("demotest: prompt %q: unknown colour %q", prompt, s.Background)
	}
	if !contains(Shapes, s.Shape) {
		return Scene{}, fmt.Errorf("demotest: prompt %q: unknown shape %q", prompt, s.Shape)
	}
	return s, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Read tells the scene of a picture: the background is the commonest palette
// colour of the border pixels, the foreground the commonest other palette
// colour of the central half, and the shape comes from the foreground
// pixels' outline.
func Read(img image.Image) Scene {
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	labels := make([]string, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			labels[y*w+x] = nearest(img.At(r.Min.X+x, r.Min.Y+y))
		}
	}
	border := map[string]int{}
	centre := map[string]int{}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			l := labels[y*w+x]
			if x < 2 || y < 2 || x >= w-2 || y >= h-2 {
				border[l]++
			}
			if x >= w/4 && x < w-w/4 && y >= h/4 && y < h-h/4 {
				centre[l]++
			}
		}
	}
	var s Scene
	s.Background = commonest(border, "")
	s.Foreground = commonest(centre, s.Background)
	if s.Foreground != "" {
		mask := make([]bool, w*h)
		for i, l := range labels {
			mask[i] = l == s.Foreground
		}
		s.Shape = shapeOf(mask, w, h)
	}
	return s
}

// nearest returns the palette colour within maxColourDist of c, or "".
func nearest(c color.Color) string {
	r, g, b, _ := color.NRGBAModel.Convert(c).RGBA()
	best, bestD := "", math.Inf(1)
	for _, name := range Colours {
		p := Palette[name]
		dr, dg, db := float64(r>>8)-float64(p.R), float64(g>>8)-float64(p.G), float64(b>>8)-float64(p.B)
		if d := math.Sqrt(dr*dr + dg*dg + db*db); d < bestD {
			best, bestD = name, d
		}
	}
	if bestD > maxColourDist {
		return ""
	}
	return best
}

// commonest returns the most frequent palette label other than "" and
// except; ties go to the earlier colour of Colours.
func commonest(counts map[string]int, except string) string {
	best, n := "", 0
	for _, name := range Colours {
		if name != except && counts[name] > n {
			best, n = name, counts[name]
		}
	}
	return best
}

// shapeOf classifies the foreground mask by how much of its bounding box it
// fills (square ~1, circle ~pi/4, triangle and diamond ~1/2) and, for the
// last two, by where it is widest: a triangle at its base, a diamond in its
// middle.
func shapeOf(mask []bool, w, h int) string {
	x0, y0, x1, y1, n := w, h, -1, -1, 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if mask[y*w+x] {
				x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
				n++
			}
		}
	}
	bw, bh := x1-x0+1, y1-y0+1
	if n < 6 || bw < 3 || bh < 3 {
		return ""
	}
	fill := float64(n) / float64(bw*bh)
	switch {
	case fill > 0.88:
		return "square"
	case fill > 0.68:
		return "circle"
	}
	rowWidth := func(frac float64) int {
		y := y0 + int(frac*float64(bh-1)+0.5)
		c := 0
		for x := x0; x <= x1; x++ {
			if mask[y*w+x] {
				c++
			}
		}
		return c
	}
	if rowWidth(0.85) > rowWidth(0.5) {
		return "triangle"
	}
	return "diamond"
}

// Case is one prompt and seed of the semantic test.
type Case struct {
	Prompt string
	Seed   uint64
}

// Cases returns n prompt/seed pairs that between them use every colour as
// foreground and as background and every shape, never with the same colour
// twice in one prompt.
func Cases(n int) []Case {
	out := make([]Case, n)
	for i := range out {
		round := i / len(Colours)
		fg := Colours[i%len(Colours)]
		bg := Colours[(i+1+round%(len(Colours)-1))%len(Colours)]
		shape := Shapes[(i+round)%len(Shapes)]
		out[i] = Case{Prompt: fmt.Sprintf("a %s %s on a %s background", fg, shape, bg), Seed: uint64(1000 + 7*i)}
	}
	return out
}
