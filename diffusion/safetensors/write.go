package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Tensor is one tensor to write: little-endian data of the given dtype.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// F32Tensor builds an F32 tensor from values.
func F32Tensor(name string, shape []int, values []float32) Tensor {
	data := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: data}
}

// F16Tensor builds an F16 tensor from values, rounding to nearest even.
func F16Tensor(name string, shape []int, values []float32) Tensor {
	data := make([]byte, 2*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint16(data[2*i:], Float32ToFloat16(v))
	}
	return Tensor{Name: name, DType: F16, Shape: append([]int(nil), shape...), Data: data}
}

// BF16Tensor builds a BF16 tensor from values, rounding to nearest even.
func BF16Tensor(name string, shape []int, values []float32) Tensor {
	data := make([]byte, 2*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint16(data[2*i:], Float32ToBFloat16(v))
	}
	return Tensor{Name: name, DType: BF16, Shape: append([]int(nil), shape...), Data: data}
}

// Write stores tensors and metadata at path in the layout of the reference
// writer: __metadata__ first, tensors ordered by element size (largest first)
// then name, header padded with spaces to a multiple of 8 bytes. The file is
// written to a temporary name and renamed, so readers never see half a file.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	hdr, order, err := encodeHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	if _, err := tmp.Write(lenBuf[:]); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(hdr); err != nil {
		return fail(err)
	}
	for _, t := range order {
		if _, err := tmp.Write(t.Data); err != nil {
			return fail(err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// encodeHeader checks tensors and returns the padded JSON header and the
// order in which their data follows it.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, []Tensor, error) {
	order := append([]Tensor(nil), tensors...)
	sort.SliceStable(order, func(i, j int) bool {
		si, sj := order[i].DType.Size(), order[j].DType.Size()
		if si != sj {
			return si > sj
		}
		return order[i].Name < order[j].Name
	})
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if !utf8.ValidString(k) || !utf8.ValidString(metadata[k]) {
				return nil, nil, fmt.Errorf("metadata %q is not UTF-8", k)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	var offset int64
	seen := make(map[string]bool, len(order))
	for _, t := range order {
		if err := checkTensor(t, seen[t.Name]); err != nil {
			return nil, nil, err
		}
		seen[t.Name] = true
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		writeJSONString(&b, t.Name)
		fmt.Fprintf(&b, `:{"dtype":"%s","shape":[`, t.DType)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		end := offset + int64(len(t.Data))
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), order, nil
}

func checkTensor(t Tensor, duplicate bool) error {
	switch {
	case t.Name == "" || t.Name == "__metadata__" || !utf8.ValidString(t.Name):
		return fmt.Errorf("tensor name %q is empty, reserved or not UTF-8", t.Name)
	case duplicate:
		return fmt.Errorf("tensor %q given twice", t.Name)
	case t.DType.Size() == 0:
		return fmt.Errorf("tensor %q: invalid dtype %s", t.Name, t.DType)
	}
	shape := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor %q: negative dimension in shape %v", t.Name, t.Shape)
		}
		shape[i] = int64(d)
	}
	need, ok := byteSize(shape, t.DType)
	if !ok || need != uint64(len(t.Data)) {
		return fmt.Errorf("tensor %q: %d bytes of data, shape %v x %s needs %d",
			t.Name, len(t.Data), t.Shape, t.DType, need)
	}
	return nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}
