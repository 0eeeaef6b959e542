package safetensors

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fileBytes builds a file from a header and dataLen zero bytes of data.
func fileBytes(header string, dataLen int) []byte {
	b := make([]byte, 8, 8+len(header)+dataLen)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

func TestOpen_BadHeaders(t *testing.T) {
	withLen := func(n uint64, rest string) []byte {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, n)
		return append(b, rest...)
	}
	const w = `"unet.conv_in.weight"`
	tests := []struct {
		name string
		file []byte
		msg  string // the error text after "safetensors: PATH: "
	}{
		{"TooShort", []byte{1, 2, 3}, "file is 3 bytes, too short for the 8-byte header length"},
		{"HeaderTooLong", withLen(200<<20, "{}"), "header length 209715200 is over the 104857600-byte limit"},
		{"HeaderPastEOF", withLen(100, "{}"), "header length 100 is past the end of the 10-byte file"},
		{"EmptyHeader", fileBytes("", 0), "header is not JSON: unexpected EOF"},
		{"BrokenJSON", fileBytes(`{"a":`, 0), `tensor "a": header is not JSON: unexpected EOF`},
		{"NotObject", fileBytes(`[1,2]`, 0), "header is not a JSON object"},
		{"TrailingData", fileBytes(`{} {}`, 0), "header has data after its JSON object"},
		{"NotUTF8", fileBytes("{\"\xff\":1}", 0), "header is not valid UTF-8"},
		{"MetadataNotObject", fileBytes(`{"__metadata__":[1]}`, 0), "__metadata__ is not a JSON object"},
		{"MetadataNotString", fileBytes(`{"__metadata__":{"a":1}}`, 0), `__metadata__ value of "a" is 1, not a string`},
		{"Duplicate", fileBytes(`{"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, 4),
			`tensor "x": appears twice in the header`},
		{"EntryNotObject", fileBytes(`{`+w+`:5}`, 0), `tensor "unet.conv_in.weight": entry is 5, not a JSON object`},
		{"UnknownField", fileBytes(`{"x":{"dtype":"F32","shape":[],"data_offsets":[0,4],"extra":1}}`, 4), `tensor "x": unknown field "extra"`},
		{"MissingDType", fileBytes(`{"x":{"shape":[],"data_offsets":[0,4]}}`, 4), `tensor "x": missing dtype`},
		{"DTypeNotString", fileBytes(`{"x":{"dtype":4,"shape":[],"data_offsets":[0,4]}}`, 4), `tensor "x": dtype is 4, not a string`},
		{"UnknownDType", fileBytes(`{"x":{"dtype":"F128","shape":[],"data_offsets":[0,4]}}`, 4), `tensor "x": unknown dtype "F128"`},
		{"MissingShape", fileBytes(`{"x":{"dtype":"F32","data_offsets":[0,4]}}`, 4), `tensor "x": missing shape`},
		{"ShapeNotArray", fileBytes(`{"x":{"dtype":"F32","shape":3,"data_offsets":[0,4]}}`, 4), `tensor "x": shape 3: not a JSON array`},
		{"NegativeDim", fileBytes(`{"x":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}}`, 4),
			`tensor "x": shape [2,-1]: element 1 (-1) is not a non-negative integer`},
		{"FractionalDim", fileBytes(`{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, 4),
			`tensor "x": shape [1.5]: element 0 (1.5) is not a non-negative integer`},
		{"MissingOffsets", fileBytes(`{"x":{"dtype":"F32","shape":[]}}`, 4), `tensor "x": missing data_offsets`},
		{"ThreeOffsets", fileBytes(`{"x":{"dtype":"F32","shape":[],"data_offsets":[0,4,8]}}`, 8), `tensor "x": data_offsets [0 4 8]: want [begin end]`},
		{"BeginAfterEnd", fileBytes(`{"x":{"dtype":"F32","shape":[],"data_offsets":[8,4]}}`, 8), `tensor "x": data_offsets [8 4]: begin is after end`},
		{"EndPastData", fileBytes(`{"x":{"dtype":"F32","shape":[],"data_offsets":[4,8]}}`, 4),
			`tensor "x": data_offsets [4 8]: end is past the data section (4 bytes)`},
		{"SizeMismatch", fileBytes(`{`+w+`:{"dtype":"F32","shape":[4,4,3,3],"data_offsets":[0,100]}}`, 100),
			`tensor "unet.conv_in.weight": data_offsets [0 100] hold 100 bytes, shape [4 4 3 3] x f32 needs 576`},
		{"ShapeOverflow", fileBytes(`{"x":{"dtype":"F16","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, 4),
			`tensor "x": shape [4294967296 4294967296] x f16 overflows`},
		{"Overlap", fileBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[6,10]}}`, 10),
			`tensor "b": data_offsets [6 10] overlap tensor "a" at [0 8]`},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".safetensors")
			if err := os.WriteFile(path, tc.file, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatalf("Open succeeded, want %q", tc.msg)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			if want := "safetensors: " + path + ": " + tc.msg; err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", err, want)
			}
		})
	}
}

func TestOpen_GoodEdgeCases(t *testing.T) {
	tests := []struct {
		name   string
		header string
		data   int
		count  int
	}{
		{"Empty", `{}`, 0, 0},
		{"PaddedAndNullMetadata", `{"__metadata__":null}      `, 0, 0},
		{"ZeroSizedTensorsShareOffsets", `{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4]}}`, 4, 2},
		{"GapBetweenTensors", `{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}}`, 4, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := FromBytes("mem", fileBytes(tc.header, tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(f.Names()); got != tc.count {
				t.Errorf("%d tensors, want %d", got, tc.count)
			}
		})
	}
}

func TestOpen_NotFound(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "missing.safetensors"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "safetensors: ") {
		t.Errorf("Open of a missing file: %v", err)
	}
}

// FuzzParseHeader feeds arbitrary bytes as a whole file: parsing must never
// panic, and whatever it accepts must be readable within bounds.
func FuzzParseHeader(f *testing.F) {
	f.Add(fileBytes(`{"__metadata__":{"format":"pt"},"x":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}}`, 8))
	f.Add(fileBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}`, 12))
	f.Add(fileBytes(`{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}  `, 8))
	f.Add(fileBytes(`{"x":{"dtype":"F32","shape":[4,4,3,3],"data_offsets":[0,100]}}`, 100))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{'})
	f.Fuzz(func(t *testing.T, buf []byte) {
		file, err := FromBytes("fuzz", buf)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		for _, name := range file.Names() {
			ti, _ := file.Info(name)
			raw, _, err := file.Raw(name)
			if err != nil || int64(len(raw)) != ti.Offsets[1]-ti.Offsets[0] {
				t.Fatalf("%s: Raw gave %d bytes, %v", name, len(raw), err)
			}
			v, _, err := file.Float32(name)
			if err == nil && len(v) != ti.NumElements() {
				t.Fatalf("%s: %d values for shape %v", name, len(v), ti.Shape)
			}
		}
	})
}
