// Package media holds the image inputs and animation outputs of the farm:
// decoding and checking user images (init images and masks), encoding
// animated GIFs, and encoding MP4 through an ffmpeg found on PATH.
//
// It reads untrusted bytes, so every decode checks the limits from the image
// header before it allocates pixels. It must never import the engine or any
// farm component, and never reach the network.
package media

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"strconv"
	"strings"
)

// Limits on input images.
const (
	MaxInputBytes = 32 << 20 // encoded size
	MaxInputSide  = 2048     // pixels per side
	MinInputSide  = 8
)

// Errors that DecodeInput and ReadInput wrap, for errors.Is: a caller maps
// them to its own codes (ErrTooLarge is "payload too large", the rest "bad input").
var (
	ErrFormat   = errors.New("media: not a PNG or JPEG image")
	ErrCorrupt  = errors.New("media: truncated or corrupt image")
	ErrTooLarge = errors.New("media: image over the size limits")
	ErrTooSmall = errors.New("media: image under the size limits")
)

// Input is a decoded user image.
type Input struct {
	Image         image.Image
	Format        string // "png" or "jpeg"
	Width, Height int
}

// inputError is an error about one named input; it matches its kind (one of
// the Err values above) and the decoder's own error with errors.Is.
type inputError struct {
	name, msg string
	kind, err error
}

func (e *inputError) Error() string { return "media: " + e.name + ": " + e.msg }
func (e *inputError) Unwrap() []error {
	if e.err == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.err}
}

func inputErr(name string, kind, err error, format string, args ...any) error {
	return &inputError{name: name, msg: fmt.Sprintf(format, args...), kind: kind, err: err}
}

// Magic numbers from the PNG specification (section 5.2) and JPEG's SOI
// marker followed by the first byte of the next marker.
var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	jpegMagic = []byte("\xff\xd8\xff")
)

// otherFormats names formats a user is likely to upload by mistake, so that
// the refusal says what the file is rather than only what it is not.
var otherFormats = []struct{ magic, name string }{
	{"GIF87a", "GIF"},
	{"GIF89a", "GIF"},
	{"BM", "BMP"},
	{"II*\x00", "TIFF"},
	{"MM\x00*", "TIFF"},
	{"\x00\x00\x00\x0cjP  ", "JPEG 2000"},
	{"%PDF", "PDF"},
}

// sniff returns "png" or "jpeg" from data's magic bytes, or an error saying
// what data is instead.
func sniff(name string, data []byte) (string, error) {
	switch {
	case bytes.HasPrefix(data, pngMagic):
		return "png", nil
	case bytes.HasPrefix(data, jpegMagic):
		return "jpeg", nil
	}
	other := ""
	for _, f := range otherFormats {
		if strings.HasPrefix(string(data), f.magic) {
			other = f.name
		}
	}
	if len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP" {
		other = "WebP"
	}
	if len(data) >= 12 && string(data[4:8]) == "ftyp" {
		other = "HEIF/AVIF or MP4"
	}
	if other != "" {
		return "", inputErr(name, ErrFormat, nil, "%s images are not accepted; convert it to PNG or JPEG", other)
	}
	return "", inputErr(name, ErrFormat, nil, "not a PNG or JPEG image (starts with %s)", quotePrefix(data, 9))
}

// quotePrefix quotes at most n bytes of data, marking a cut with "...".
func quotePrefix(data []byte, n int) string {
	if len(data) <= n {
		return strconv.Quote(string(data))
	}
	return strconv.Quote(string(data[:n]) + "...")
}

// formatName is how error messages spell a format.
func formatName(format string) string {
	if format == "png" {
		return "PNG"
	}
	return "JPEG"
}

// decoderMessage strips the decoder's own "png: " or "invalid JPEG format: "
// style prefix, as the message already names the format.
func decoderMessage(err error) string {
	s := err.Error()
	for _, p := range []string{"png: unsupported feature: ", "png: ", "invalid JPEG format: ", "unsupported JPEG feature: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// DecodeInput decodes a PNG or JPEG from data, checking the size limits
// from the header before it decodes (and allocates) any pixels.
//
// name is used in error messages (a file path or "init_image"). The format
// comes from the magic bytes, never from name. Decoding calls image/png and
// image/jpeg directly rather than through the image registry, so a format
// that another package registers is still refused here.
func DecodeInput(name string, data []byte) (*Input, error) {
	if len(data) == 0 {
		return nil, inputErr(name, ErrFormat, nil, "0 bytes")
	}
	if len(data) > MaxInputBytes {
		return nil, inputErr(name, ErrTooLarge, nil, "%d bytes is larger than the limit of %d bytes", len(data), MaxInputBytes)
	}
	format, err := sniff(name, data)
	if err != nil {
		return nil, err
	}
	decodeConfig, decode := png.DecodeConfig, png.Decode
	if format == "jpeg" {
		decodeConfig, decode = jpeg.DecodeConfig, jpeg.Decode
	}
	cfg, err := decodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, corrupt(name, format, data, err)
	}
	if err := checkSide(name, cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return nil, corrupt(name, format, data, err)
	}
	b := img.Bounds()
	if b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		// Neither decoder does this today; refuse rather than trust the header.
		return nil, inputErr(name, ErrCorrupt, nil, "corrupt %s: header says %dx%d but the pixels are %dx%d",
			formatName(format), cfg.Width, cfg.Height, b.Dx(), b.Dy())
	}
	return &Input{Image: img, Format: format, Width: cfg.Width, Height: cfg.Height}, nil
}

func corrupt(name, format string, data []byte, err error) error {
	var pu png.UnsupportedError
	var ju jpeg.UnsupportedError
	if errors.As(err, &pu) || errors.As(err, &ju) {
		return inputErr(name, ErrFormat, err, "%s uses a feature the decoder does not support: %s", formatName(format), decoderMessage(err))
	}
	msg := decoderMessage(err)
	if cutShort(format, data) && !errors.Is(err, io.ErrUnexpectedEOF) {
		// The decoder may see the cut as missing pixels or a bad
		// Huffman code; the cause is the missing end of the file.
		return inputErr(name, ErrCorrupt, errors.Join(io.ErrUnexpectedEOF, err),
			"truncated or corrupt %s: unexpected EOF (%s)", formatName(format), msg)
	}
	return inputErr(name, ErrCorrupt, err, "truncated or corrupt %s: %s", formatName(format), msg)
}

// pngEnd is PNG's empty IEND chunk, and jpegEnd JPEG's EOI marker, which
// end every complete file.
var (
	pngEnd  = []byte("\x00\x00\x00\x00IEND\xaeB`\x82")
	jpegEnd = []byte("\xff\xd9")
)

// cutShort reports whether data lacks the end a complete file has.
// Trailing bytes after the end are allowed, as many writers add them.
func cutShort(format string, data []byte) bool {
	if format == "png" {
		return !bytes.Contains(data, pngEnd)
	}
	return !bytes.HasSuffix(bytes.TrimRight(data, "\x00\r\n "), jpegEnd)
}

func checkSide(name string, w, h int) error {
	switch {
	case w > MaxInputSide || h > MaxInputSide:
		return inputErr(name, ErrTooLarge, nil, "%dx%d is larger than %d pixels per side", w, h, MaxInputSide)
	case w < MinInputSide || h < MinInputSide:
		return inputErr(name, ErrTooSmall, nil, "%dx%d is smaller than %d pixels per side", w, h, MinInputSide)
	}
	return nil
}

// ReadInput reads the file at path and decodes it with DecodeInput. It
// refuses a file over MaxInputBytes before reading it whole, and reads at
// most one byte past the limit from anything that is not a regular file.
func ReadInput(path string) (*Input, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("media: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("media: %w", err)
	}
	if fi.IsDir() {
		return nil, nil, inputErr(path, ErrFormat, nil, "is a directory, not an image")
	}
	if fi.Size() > MaxInputBytes {
		return nil, nil, inputErr(path, ErrTooLarge, nil, "%d bytes is larger than the limit of %d bytes", fi.Size(), MaxInputBytes)
	}
	// Size is only a hint (a file can grow, a pipe reports 0): the limit
	// holds on what is read.
	data, err := io.ReadAll(io.LimitReader(f, MaxInputBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("media: %w", err)
	}
	in, err := DecodeInput(path, data)
	if err != nil {
		return nil, nil, err
	}
	return in, data, nil
}

// CheckMask reports an error unless mask has the image's size.
func CheckMask(img, mask *Input) error {
	switch {
	case img == nil:
		return errors.New("media: mask given without an image")
	case mask == nil:
		return errors.New("media: no mask")
	case mask.Width != img.Width || mask.Height != img.Height:
		return fmt.Errorf("media: mask is %dx%d but the image is %dx%d; a mask must have the image's size",
			mask.Width, mask.Height, img.Width, img.Height)
	}
	return nil
}

// SHA256Hex is the lowercase hex SHA-256 of data, the content address of an input.
func SHA256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
