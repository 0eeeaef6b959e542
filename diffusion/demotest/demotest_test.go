package demotest

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/clip"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/diffusion/unet"
)

// The bar: at least 24 prompt/seed pairs, at least 90% right.
const (
	numCases      = 24
	minColourRate = 0.90
	minShapeRate  = 0.75
)

// demoModelDir returns models/demo under the folder holding go.mod, failing
// the test when it is missing.
func demoModelDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
	model := filepath.Join(dir, "models", "demo")
	if _, err := os.Stat(filepath.Join(model, "model_index.json")); err != nil {
		t.Fatalf("demo model missing (make it with tools/train-demo): %v", err)
	}
	return model
}

// score is how many judged pictures matched their expected scenes.
type score struct{ n, colours, shapes int }

func (s score) colourRate() float64 { return float64(s.colours) / float64(s.n) }
func (s score) shapeRate() float64  { return float64(s.shapes) / float64(s.n) }

func (s *score) add(want, got Scene) {
	s.n++
	if want.Foreground == got.Foreground && want.Background == got.Background {
		s.colours++
	}
	if want.Shape == got.Shape {
		s.shapes++
	}
}

// renderCases renders every case at 32x32 with Euler, 20 steps, CFG 5 and
// returns what Read sees in each picture. With DEMOTEST_SAVE set to a folder
// the pictures are also written there, for a person to look at.
func renderCases(t *testing.T, b backend.Backend, m *checkpoint.Model, cases []Case, tag string) []Scene {
	t.Helper()
	p := pipeline.New(b, m)
	seen := make([]Scene, len(cases))
	dir := os.Getenv("DEMOTEST_SAVE")
	sheet := image.NewNRGBA(image.Rect(0, 0, 6*34*4, (len(cases)+5)/6*34*4))
	for i, c := range cases {
		res, err := p.TextToImage(context.Background(), pipeline.Request{
			Prompt: c.Prompt, Width: 32, Height: 32, Steps: 20, CFGScale: 5,
			Sampler: "euler", Seed: c.Seed,
		}, nil)
		if err != nil {
			t.Fatalf("%q seed %d: %v", c.Prompt, c.Seed, err)
		}
		seen[i] = Read(res.Image)
		if dir != "" {
			savePNG(t, filepath.Join(dir, fmt.Sprintf("%s-%02d.png", tag, i)), res.Image)
			paste(sheet, res.Image, (i%6)*34*4, (i/6)*34*4, 4)
		}
	}
	if dir != "" {
		savePNG(t, filepath.Join(dir, tag+"-sheet.png"), sheet)
	}
	return seen
}

// paste copies img into dst at (x0, y0), each pixel as a zoom x zoom block.
func paste(dst *image.NRGBA, img image.Image, x0, y0, zoom int) {
	r := img.Bounds()
	for y := 0; y < r.Dy()*zoom; y++ {
		for x := 0; x < r.Dx()*zoom; x++ {
			dst.Set(x0+x, y0+y, img.At(r.Min.X+x/zoom, r.Min.Y+y/zoom))
		}
	}
}

func savePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func judge(t *testing.T, cases []Case, seen []Scene, offset int) score {
	t.Helper()
	var s score
	for i, c := range cases {
		want, err := ParsePrompt(cases[(i+offset)%len(cases)].Prompt)
		if err != nil {
			t.Fatal(err)
		}
		s.add(want, seen[i])
		if offset == 0 {
			t.Logf("%-44q seed %4d: saw %-28s want %s", c.Prompt, c.Seed, seen[i], want)
		}
	}
	return s
}

// TestDemoModel_DrawsWhatPromptsSay renders the demo model through the whole
// engine (tokenizer, text encoder, UNet, Euler, VAE) and checks that the
// pictures show the colours and shapes their prompts ask for. Judging the
// same pictures against other prompts must fail, so the check tells
// pictures apart rather than passing anything.
func TestDemoModel_DrawsWhatPromptsSay(t *testing.T) {
	b := cpu.New()
	m, err := checkpoint.Load(b, demoModelDir(t), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := Cases(numCases)
	seen := renderCases(t, b, m, cases, "demo")
	s := judge(t, cases, seen, 0)
	t.Logf("colours right %d/%d (%.0f%%), shapes right %d/%d (%.0f%%)",
		s.colours, s.n, 100*s.colourRate(), s.shapes, s.n, 100*s.shapeRate())
	if s.colourRate() < minColourRate {
		t.Errorf("colours right in %.0f%% of %d pictures, want at least %.0f%%", 100*s.colourRate(), s.n, 100*minColourRate)
	}
	if s.shapeRate() < minShapeRate {
		t.Errorf("shapes right in %.0f%% of %d pictures, want at least %.0f%%", 100*s.shapeRate(), s.n, 100*minShapeRate)
	}
	wrong := judge(t, cases, seen, 1)
	if wrong.colourRate() >= minColourRate/2 {
		t.Errorf("judged against the wrong prompts, %.0f%% still pass: the check does not tell pictures apart", 100*wrong.colourRate())
	}
}

// TestDemoModel_RandomWeightsFail runs the same check with the text encoder
// and UNet replaced by random weights (the trained VAE kept, so pictures
// still decode to plausible colours): it must fail, or the check proves
// nothing.
func TestDemoModel_RandomWeightsFail(t *testing.T) {
	b := cpu.New()
	m, err := checkpoint.Load(b, demoModelDir(t), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.TextEncoder, err = clip.New(m.TextConfig, nn.NewRandomWeights(b, 1)); err != nil {
		t.Fatal(err)
	}
	if m.UNet, err = unet.New(m.UNetConfig, nn.NewRandomWeights(b, 2)); err != nil {
		t.Fatal(err)
	}
	cases := Cases(numCases)
	s := judge(t, cases, renderCases(t, b, m, cases, "random"), 0)
	t.Logf("random weights: colours right %d/%d, shapes right %d/%d", s.colours, s.n, s.shapes, s.n)
	if s.colourRate() >= minColourRate {
		t.Errorf("random weights pass the colour check (%.0f%%): the check cannot fail", 100*s.colourRate())
	}
}

// TestRead_TrainingPictures checks the judge itself on pictures drawn like
// the training data: every shape, every foreground/background pair.
func TestRead_TrainingPictures(t *testing.T) {
	for _, fg := range Colours {
		for _, bg := range Colours {
			if fg == bg {
				continue
			}
			for i, shape := range Shapes {
				want := Scene{Foreground: fg, Background: bg, Shape: shape}
				cx, cy := 16+float64(i%3-1)*1.5, 16-float64(i%2)*1.5
				if got := Read(draw(shape, Palette[fg], Palette[bg], cx, cy, 7.5+float64(i)/2)); got != want {
					t.Errorf("%s: read %s", want, got)
				}
			}
		}
	}
}

// TestParsePrompt_RejectsOtherGrammar keeps the judge from silently scoring
// prompts it does not understand.
func TestParsePrompt_RejectsOtherGrammar(t *testing.T) {
	for _, p := range []string{"", "a photo of an astronaut", "a purple circle on a red background",
		"a red hexagon on a blue background", "a red circle left of a blue square on a white background"} {
		if _, err := ParsePrompt(p); err == nil {
			t.Errorf("ParsePrompt(%q) accepted it", p)
		}
	}
	got, err := ParsePrompt("a large Red circle on a blue background")
	if want := (Scene{"red", "blue", "circle"}); err != nil || got != want {
		t.Errorf("ParsePrompt = %v, %v; want %v", got, err, want)
	}
}

// draw renders one shape like tools/train-demo/data.py, with 4x4
// supersampling, on a 32x32 picture.
func draw(shape string, fg, bg color.RGBA, cx, cy, r float64) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			cover := 0.0
			for sy := 0; sy < 4; sy++ {
				for sx := 0; sx < 4; sx++ {
					px, py := float64(x)+(float64(sx)+0.5)/4-cx, float64(y)+(float64(sy)+0.5)/4-cy
					if inside(shape, px, py, r) {
						cover += 1.0 / 16
					}
				}
			}
			mix := func(a, b uint8) uint8 { return uint8(float64(b)*(1-cover) + float64(a)*cover + 0.5) }
			img.SetNRGBA(x, y, color.NRGBA{mix(fg.R, bg.R), mix(fg.G, bg.G), mix(fg.B, bg.B), 255})
		}
	}
	return img
}

func inside(shape string, x, y, r float64) bool {
	abs := func(v float64) float64 { return max(v, -v) }
	switch shape {
	case "circle":
		return x*x+y*y <= r*r
	case "square":
		return abs(x) <= 0.85*r && abs(y) <= 0.85*r
	case "triangle":
		return y <= 0.8*r && abs(x) <= (y+r)/1.8
	case "diamond":
		return abs(x)+abs(y) <= r
	}
	panic("unknown shape " + shape)
}
