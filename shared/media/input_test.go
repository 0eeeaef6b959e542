package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// noise is a w x h image of fixed pseudo-random colours, which compresses
// badly, so a PNG of it is long enough to cut in half past its header.
func noise(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	s := uint32(1)
	for i := range m.Pix {
		s = s*1664525 + 1013904223
		m.Pix[i] = uint8(s >> 24)
		if i%4 == 3 {
			m.Pix[i] = 0xff
		}
	}
	return m
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatalf("png.Encode: %v", err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatalf("jpeg.Encode: %v", err)
	}
	return b.Bytes()
}

func encodeGIF(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, m, nil); err != nil {
		t.Fatalf("gif.Encode: %v", err)
	}
	return b.Bytes()
}

// pngHeader is a PNG signature and an IHDR chunk (with a correct CRC)
// declaring a w x h 8-bit RGB image, followed by no pixel data at all.
func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 0, 17)
	ihdr = append(ihdr, "IHDR"...)
	ihdr = binary.BigEndian.AppendUint32(ihdr, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // depth 8, truecolour, deflate, adaptive filter, no interlace
	out := append([]byte(nil), pngMagic...)
	out = binary.BigEndian.AppendUint32(out, 13)
	out = append(out, ihdr...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(ihdr))
}

// decodeCase is one input to DecodeInput and what must come of it.
type decodeCase struct {
	name    string
	file    string
	data    []byte
	format  string // on success
	w, h    int    // on success
	wantErr string // substring of the error; "" means success
	kind    error  // the error must match this with errors.Is
}

func decodeCases(t testing.TB) []decodeCase {
	validPNG := encodePNG(t, noise(64, 48))
	validJPEG := encodeJPEG(t, noise(64, 48))
	badCRC := bytes.Clone(validPNG)
	badCRC[len(pngMagic)+8+13] ^= 0xff // the first byte of IHDR's CRC
	return []decodeCase{
		{name: "valid PNG", file: "init.png", data: validPNG, format: "png", w: 64, h: 48},
		{name: "valid JPEG", file: "init.jpg", data: validJPEG, format: "jpeg", w: 64, h: 48},
		{name: "PNG named .jpg", file: "init.jpg", data: validPNG, format: "png", w: 64, h: 48},
		{name: "smallest PNG", file: "init.png", data: encodePNG(t, noise(8, 8)), format: "png", w: 8, h: 8},
		{name: "largest PNG", file: "init.png", data: encodePNG(t, image.NewGray(image.Rect(0, 0, 2048, 8))), format: "png", w: 2048, h: 8},
		{name: "truncated PNG", file: "init.png", data: validPNG[:len(validPNG)/2],
			wantErr: "media: init.png: truncated or corrupt PNG: unexpected EOF", kind: ErrCorrupt},
		{name: "PNG cut inside its header", file: "init.png", data: validPNG[:20],
			wantErr: "media: init.png: truncated or corrupt PNG: unexpected EOF", kind: ErrCorrupt},
		{name: "PNG header without pixels", file: "init.png", data: pngHeader(64, 64),
			wantErr: "media: init.png: truncated or corrupt PNG: unexpected EOF", kind: ErrCorrupt},
		{name: "PNG with a bad header checksum", file: "init.png", data: badCRC,
			wantErr: "media: init.png: truncated or corrupt PNG: invalid format: invalid checksum", kind: ErrCorrupt},
		{name: "truncated JPEG", file: "init.jpg", data: validJPEG[:len(validJPEG)/2],
			wantErr: "media: init.jpg: truncated or corrupt JPEG: unexpected EOF", kind: ErrCorrupt},
		{name: "text file", file: "init.png", data: []byte("hello world, I am not an image\n"),
			wantErr: `media: init.png: not a PNG or JPEG image (starts with "hello wor...")`, kind: ErrFormat},
		{name: "short binary", file: "init_image", data: []byte{0, 1, 0xfe},
			wantErr: `media: init_image: not a PNG or JPEG image (starts with "\x00\x01\xfe")`, kind: ErrFormat},
		{name: "empty file", file: "init.png", data: []byte{},
			wantErr: "media: init.png: 0 bytes", kind: ErrFormat},
		{name: "oversized PNG header", file: "init.png", data: pngHeader(100000, 100000),
			wantErr: "media: init.png: 100000x100000 is larger than 2048 pixels per side", kind: ErrTooLarge},
		{name: "too wide JPEG", file: "init.jpg", data: encodeJPEG(t, image.NewGray(image.Rect(0, 0, 4096, 16))),
			wantErr: "media: init.jpg: 4096x16 is larger than 2048 pixels per side", kind: ErrTooLarge},
		{name: "too small PNG", file: "init.png", data: encodePNG(t, noise(4, 4)),
			wantErr: "media: init.png: 4x4 is smaller than 8 pixels per side", kind: ErrTooSmall},
		{name: "GIF", file: "init.png", data: encodeGIF(t, noise(16, 16)),
			wantErr: "media: init.png: GIF images are not accepted; convert it to PNG or JPEG", kind: ErrFormat},
		{name: "WebP", file: "init.webp", data: []byte("RIFF\x24\x00\x00\x00WEBPVP8 "),
			wantErr: "WebP images are not accepted", kind: ErrFormat},
	}
}

func TestDecodeInput(t *testing.T) {
	for _, tc := range decodeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			in, err := DecodeInput(tc.file, tc.data)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("decoded %dx%d %s, want error %q", in.Width, in.Height, in.Format, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
				}
				if !errors.Is(err, tc.kind) {
					t.Errorf("error %q does not match %v", err, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeInput: %v", err)
			}
			if in.Format != tc.format || in.Width != tc.w || in.Height != tc.h {
				t.Errorf("got %s %dx%d, want %s %dx%d", in.Format, in.Width, in.Height, tc.format, tc.w, tc.h)
			}
			if b := in.Image.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
				t.Errorf("image bounds %v, want %dx%d", b, tc.w, tc.h)
			}
		})
	}
}

// TestDecodeInput_WrapsDecoderError checks that the decoder's own error
// stays reachable with errors.Is.
func TestDecodeInput_WrapsDecoderError(t *testing.T) {
	data := encodePNG(t, noise(64, 48))
	_, err := DecodeInput("init.png", data[:len(data)/2])
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error %v does not wrap io.ErrUnexpectedEOF", err)
	}
}

// TestDecodeInput_HugeHeaderAllocatesNothing checks that a header declaring
// 100000x100000 (30 GB of RGB) is refused from the header alone.
func TestDecodeInput_HugeHeaderAllocatesNothing(t *testing.T) {
	data := pngHeader(100000, 100000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := DecodeInput("init.png", data)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v, want ErrTooLarge", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("refusing the header allocated %d bytes, want under 1 MiB", n)
	}
}

func TestDecodeInput_OverByteLimit(t *testing.T) {
	data := make([]byte, MaxInputBytes+1)
	copy(data, pngMagic)
	_, err := DecodeInput("init.png", data)
	want := "media: init.png: 33554433 bytes is larger than the limit of 33554432 bytes"
	if err == nil || err.Error() != want || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v, want %q matching ErrTooLarge", err, want)
	}
}

func TestReadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	valid := encodePNG(t, noise(16, 24))
	huge := filepath.Join(dir, "huge.png")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file: refused from its size, never read.
	if err := errors.Join(f.Truncate(MaxInputBytes+1), f.Close()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, wantErr string
		kind                error
	}{
		{name: "valid", path: write("ok.png", valid)},
		{name: "missing", path: filepath.Join(dir, "nope.png"), wantErr: "nope.png: no such file or directory", kind: os.ErrNotExist},
		{name: "directory", path: dir, wantErr: "is a directory, not an image", kind: ErrFormat},
		{name: "over the byte limit", path: huge, wantErr: "huge.png: 33554433 bytes is larger than the limit", kind: ErrTooLarge},
		{name: "text", path: write("text.png", []byte("hello world")), wantErr: "text.png: not a PNG or JPEG image", kind: ErrFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, data, err := ReadInput(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, tc.kind) {
					t.Fatalf("error %v, want one containing %q matching %v", err, tc.wantErr, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadInput: %v", err)
			}
			if !bytes.Equal(data, valid) || in.Width != 16 || in.Height != 24 || in.Format != "png" {
				t.Errorf("got %s %dx%d and %d bytes, want png 16x24 and %d bytes", in.Format, in.Width, in.Height, len(data), len(valid))
			}
		})
	}
}

func TestCheckMask(t *testing.T) {
	img := &Input{Width: 32, Height: 32}
	tests := []struct {
		name      string
		img, mask *Input
		wantErr   string
	}{
		{"same size", img, &Input{Width: 32, Height: 32}, ""},
		{"wrong height", img, &Input{Width: 32, Height: 16}, "media: mask is 32x16 but the image is 32x32; a mask must have the image's size"},
		{"wrong width", img, &Input{Width: 64, Height: 32}, "media: mask is 64x32 but the image is 32x32"},
		{"no mask", img, nil, "media: no mask"},
		{"no image", nil, img, "media: mask given without an image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckMask(tc.img, tc.mask)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("CheckMask: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSHA256Hex(t *testing.T) {
	// Test vectors from FIPS 180-2, appendix B.
	tests := []struct{ in, want string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := SHA256Hex([]byte(tc.in)); got != tc.want {
				t.Errorf("SHA256Hex(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzDecodeInput checks that no input panics, and that what decodes keeps
// the limits and what does not says why in a "media: <name>: " error.
func FuzzDecodeInput(f *testing.F) {
	for _, tc := range decodeCases(f) {
		if len(tc.data) < 1<<16 {
			f.Add(tc.data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := DecodeInput("fuzz.png", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "media: fuzz.png: ") {
				t.Fatalf("error %q lacks the media: name: prefix", err)
			}
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrTooSmall) {
				t.Fatalf("error %q matches none of the Err values", err)
			}
			return
		}
		if in.Format != "png" && in.Format != "jpeg" {
			t.Fatalf("format %q", in.Format)
		}
		if in.Width < MinInputSide || in.Height < MinInputSide || in.Width > MaxInputSide || in.Height > MaxInputSide {
			t.Fatalf("decoded %dx%d, outside the limits", in.Width, in.Height)
		}
		if b := in.Image.Bounds(); b.Dx() != in.Width || b.Dy() != in.Height {
			t.Fatalf("bounds %v but Width, Height %d, %d", b, in.Width, in.Height)
		}
		_ = color.RGBAModel.Convert(in.Image.At(0, 0)) // the pixels are readable
	})
}
