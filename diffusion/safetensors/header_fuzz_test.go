package safetensors

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzParseHeader_RoundTrip takes every file FromBytes accepts, writes its
// tensors and metadata again with Write, and reads the new file: it holds
// the same names, dtypes, shapes, bytes and metadata (Write lays the data
// out in its own order, so only the offsets change). A file the reader
// accepts is one the project's writer can reproduce.
func FuzzParseHeader_RoundTrip(f *testing.F) {
	f.Add(fileBytes(`{"__metadata__":{"format":"pt"},"x":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}}`, 8))
	f.Add(fileBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}`, 12))
	f.Add(fileBytes(`{"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"e":{"dtype":"U8","shape":[0,3],"data_offsets":[8,8]}}`, 8))
	path := filepath.Join(fuzzScratch(f), "rewritten.safetensors")
	f.Fuzz(func(t *testing.T, buf []byte) {
		file, err := FromBytes("fuzz", buf)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		var tensors []Tensor
		for _, name := range file.Names() {
			raw, ti, err := file.Raw(name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			tensors = append(tensors, Tensor{Name: name, DType: ti.DType, Shape: ti.Shape, Data: bytes.Clone(raw)})
		}
		if err := Write(path, tensors, file.Metadata()); err != nil {
			t.Fatalf("accepted file does not write again: %v", err)
		}
		out, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		back, err := FromBytes("rewritten", out)
		if err != nil {
			t.Fatalf("rewritten file is refused: %v", err)
		}
		if !slices.Equal(sorted(back.Names()), sorted(file.Names())) || !maps.Equal(back.Metadata(), file.Metadata()) {
			t.Fatalf("names %v metadata %v, rewritten as %v, %v", file.Names(), file.Metadata(), back.Names(), back.Metadata())
		}
		for _, want := range tensors {
			raw, ti, err := back.Raw(want.Name)
			if err != nil || ti.DType != want.DType || !slices.Equal(ti.Shape, want.Shape) || !bytes.Equal(raw, want.Data) {
				t.Fatalf("%s: %s %v %d bytes, rewritten as %s %v %d bytes (%v)",
					want.Name, want.DType, want.Shape, len(want.Data), ti.DType, ti.Shape, len(raw), err)
			}
		}
	})
}

// sorted sorts s in place and returns it.
func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// fuzzScratch returns a folder for the files a fuzz target rewrites on
// every execution: on tmpfs (/dev/shm) where the machine has one, since a
// disk write costs several times the parse under test, else f.TempDir().
func fuzzScratch(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "latentfarm-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}
