package media

import (
	"bytes"
	"image"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadInput checks that the three places an uploaded image is read
// agree on every input: farm submit reads the file (ReadInput), the
// coordinator's upload handler and the node decode the bytes (DecodeInput),
// and the coordinator's job check later reads the stored object's size with
// image.DecodeConfig. The same bytes are accepted or refused alike, and
// when accepted they have one format and one size everywhere.
func FuzzReadInput(f *testing.F) {
	for _, tc := range decodeCases(f) {
		if len(tc.data) < 1<<16 {
			f.Add(tc.data)
		}
	}
	path := filepath.Join(fuzzScratch(f), "init.png")
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := DecodeInput(path, data)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fromFile, read, ferr := ReadInput(path)
		if (err == nil) != (ferr == nil) || err != nil && err.Error() != ferr.Error() {
			t.Fatalf("DecodeInput: %v; ReadInput of the same bytes: %v", err, ferr)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(read, data) {
			t.Fatalf("ReadInput returned %d bytes of %d", len(read), len(data))
		}
		if fromFile.Format != in.Format || fromFile.Width != in.Width || fromFile.Height != in.Height {
			t.Fatalf("ReadInput %s %dx%d, DecodeInput %s %dx%d", fromFile.Format, fromFile.Width, fromFile.Height, in.Format, in.Width, in.Height)
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("DecodeInput accepted a %s image.DecodeConfig refuses: %v", in.Format, err)
		}
		if format != in.Format || cfg.Width != in.Width || cfg.Height != in.Height {
			t.Fatalf("image.DecodeConfig %s %dx%d, DecodeInput %s %dx%d", format, cfg.Width, cfg.Height, in.Format, in.Width, in.Height)
		}
	})
}

// fuzzScratch returns a folder for the files a fuzz target rewrites on
// every execution: on tmpfs (/dev/shm) where the machine has one, since a
// disk write costs several times the decode under test, else f.TempDir().
func fuzzScratch(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "latentfarm-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}
