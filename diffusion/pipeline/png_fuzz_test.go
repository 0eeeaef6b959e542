package pipeline

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"maps"
	"testing"
)

// FuzzEncodePNG_RoundTrip writes any parameters text into a PNG of any
// small size with EncodePNG, the metadata writer of every rendered frame,
// and reads the file back: ReadPNGText (what farm pnginfo and img2img
// inputs use) finds exactly that text under "parameters", whether it went
// into a tEXt or an iTXt chunk, and image/png still decodes the pixels
// unchanged.
func FuzzEncodePNG_RoundTrip(f *testing.F) {
	for _, tc := range a1111Texts {
		f.Add(tc.text, uint8(7), uint8(7))
	}
	f.Add("", uint8(0), uint8(0))
	f.Add("a café, 20°\x00\nSteps: 20", uint8(1), uint8(63))
	f.Add("日本 ✨\nNegative prompt: ぼやけ\xff\xfe", uint8(15), uint8(2))
	f.Fuzz(func(t *testing.T, parameters string, w, h uint8) {
		img := image.NewNRGBA(image.Rect(0, 0, int(w%64)+1, int(h%64)+1))
		for i := range img.Pix {
			img.Pix[i] = uint8(i*31) ^ byte(len(parameters))
		}
		var buf bytes.Buffer
		if err := EncodePNG(&buf, img, parameters); err != nil {
			t.Fatalf("EncodePNG: %v", err)
		}
		texts, err := ReadPNGText(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("ReadPNGText of our own PNG: %v", err)
		}
		if want := map[string]string{"parameters": parameters}; !maps.Equal(texts, want) {
			t.Fatalf("wrote %q, read back %q", parameters, texts)
		}
		back, err := png.Decode(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("image/png cannot read our PNG: %v", err)
		}
		if back.Bounds() != img.Bounds() {
			t.Fatalf("bounds %v, wrote %v", back.Bounds(), img.Bounds())
		}
		for y := range img.Bounds().Dy() {
			for x := range img.Bounds().Dx() {
				if got, want := color.NRGBAModel.Convert(back.At(x, y)), img.NRGBAAt(x, y); got != want {
					t.Fatalf("pixel %d,%d is %v, wrote %v", x, y, got, want)
				}
			}
		}
	})
}
