package safetensors

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestFile_Float32Errors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ints.safetensors")
	ids := Tensor{Name: "ids", DType: I64, Shape: []int{2}, Data: make([]byte, 16)}
	if err := Write(path, []Tensor{ids}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Float32("ids"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Float32 of I64: %v, want ErrUnsupported", err)
	}
	if _, _, err := f.Float32("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Errorf("Float32 of a missing tensor: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := f.Float32("ids"); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Float32 after Close: %v, want os.ErrClosed", err)
	}
}

func TestWrite_RoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rt.safetensors")
	w := []float32{1, -2.5, 3.25e-6, float32(math.Inf(1)), 65504, 1e-7, 0, -0}
	f64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(f64, math.Float64bits(0.1))
	binary.LittleEndian.PutUint64(f64[8:], math.Float64bits(-1e300))
	tensors := []Tensor{
		F16Tensor("b.half", []int{2, 4}, w),
		F32Tensor("a.full", []int{2, 2, 2}, w),
		BF16Tensor("c.brain", []int{8}, w),
		{Name: "d.double", DType: F64, Shape: []int{2}, Data: f64},
		F32Tensor("e.scalar", nil, []float32{7}),
		F32Tensor("f.empty", []int{0, 3}, nil),
	}
	md := map[string]string{"format": "pt", "note": "quote \" and <tag>"}
	if err := Write(path, tensors, md); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	if n%8 != 0 || !strings.HasPrefix(string(raw[8:]), `{"__metadata__":{"format":"pt",`) {
		t.Fatalf("header length %d / start %q: want padded to 8, metadata first", n, raw[8:40])
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Names(); !reflect.DeepEqual(got, []string{"a.full", "b.half", "c.brain", "d.double", "e.scalar", "f.empty"}) {
		t.Fatalf("Names = %v", got)
	}
	if !reflect.DeepEqual(f.Metadata(), md) {
		t.Errorf("Metadata = %v, want %v", f.Metadata(), md)
	}
	want := map[string][]float32{
		"a.full":   w,
		"b.half":   {1, -2.5, 3.2782555e-06, float32(math.Inf(1)), 65504, 1.1920929e-07, 0, 0},
		"c.brain":  {1, -2.5, 3.2484531e-06, float32(math.Inf(1)), 65536, 1.0011718e-07, 0, 0},
		"d.double": {0.1, float32(math.Inf(-1))},
		"e.scalar": {7},
		"f.empty":  {},
	}
	for _, tt := range tensors {
		got, shape, err := f.Float32(tt.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want[tt.Name]) || len(shape) != len(tt.Shape) {
			t.Errorf("%s: got %v shape %v, want %v shape %v", tt.Name, got, shape, want[tt.Name], tt.Shape)
		}
	}
	// The F16 data follows every 4- and 8-byte tensor, like the reference writer.
	if a, b := mustInfo(t, f, "d.double"), mustInfo(t, f, "b.half"); a.Offsets[0] != 0 || b.Offsets[0] < a.Offsets[1] {
		t.Errorf("data order: d.double at %v, b.half at %v", a.Offsets, b.Offsets)
	}
}

func mustInfo(t *testing.T, f *File, name string) TensorInfo {
	t.Helper()
	ti, ok := f.Info(name)
	if !ok {
		t.Fatalf("no tensor %q", name)
	}
	return ti
}

func TestWrite_Rejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		tensors []Tensor
		msg     string
	}{
		{"ShortData", []Tensor{{Name: "x", DType: F32, Shape: []int{3}, Data: make([]byte, 8)}}, `tensor "x": 8 bytes of data, shape [3] x F32 needs 12`},
		{"Duplicate", []Tensor{F32Tensor("x", []int{1}, []float32{1}), F16Tensor("x", []int{1}, []float32{1})}, `tensor "x" given twice`},
		{"Reserved", []Tensor{F32Tensor("__metadata__", []int{1}, []float32{1})}, `is empty, reserved or not UTF-8`},
		{"NegativeDim", []Tensor{{Name: "x", DType: F32, Shape: []int{-1}}}, `negative dimension`},
		{"BadDType", []Tensor{{Name: "x", Shape: []int{1}, Data: make([]byte, 4)}}, `invalid dtype`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".safetensors")
			err := Write(path, tc.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Write: %v, want an error containing %q", err, tc.msg)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("file exists after a failed Write: %v", err)
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("leftover files: %v", ents)
	}
}
