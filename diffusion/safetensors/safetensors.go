// Package safetensors reads and writes the safetensors tensor file format
// (8-byte little-endian header length, JSON header, raw little-endian data).
// Files are memory-mapped when possible and every header is validated before
// any tensor is handed out, so a corrupt or hostile file yields an error that
// says where it is wrong. This package must never execute or unpickle
// anything, and never trust an offset or shape it has not checked.
package safetensors

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"sync"
)

// File is an open safetensors file. Its methods are safe for concurrent use.
type File struct {
	path     string
	mu       sync.RWMutex
	buf      []byte // whole file; nil once closed
	unmap    func([]byte) error
	data     int64 // offset of the data section in buf
	tensors  map[string]TensorInfo
	names    []string
	metadata map[string]string
}

// Open reads and validates the header of the safetensors file at path and
// maps its data.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	size := st.Size()
	if size < 8 {
		return nil, &FormatError{File: path, Msg: fmt.Sprintf("file is %d bytes, too short for the 8-byte header length", size)}
	}
	buf, unmap, err := mapFile(fh, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	f, err := newFile(path, buf)
	if err != nil {
		if unmap != nil {
			_ = unmap(buf)
		}
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// newFile validates buf, the whole content of the file at path.
func newFile(path string, buf []byte) (*File, error) {
	bad := func(format string, args ...any) error {
		return &FormatError{File: path, Msg: fmt.Sprintf(format, args...)}
	}
	size := int64(len(buf))
	if size < 8 {
		return nil, bad("file is %d bytes, too short for the 8-byte header length", size)
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > maxHeaderLen {
		return nil, bad("header length %d is over the %d-byte limit", n, maxHeaderLen)
	}
	if int64(n) > size-8 {
		return nil, bad("header length %d is past the end of the %d-byte file", n, size)
	}
	h, err := parseHeader(path, buf[8:8+n], size-8-int64(n))
	if err != nil {
		return nil, err
	}
	f := &File{path: path, buf: buf, data: 8 + int64(n), tensors: h.tensors, metadata: h.metadata}
	for name := range h.tensors {
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return f, nil
}

// mapFile maps the file read-only, or reads it whole when mapping fails.
// The returned unmap is nil for a file that was read.
func mapFile(fh *os.File, size int64) ([]byte, func([]byte) error, error) {
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("file of %d bytes is too large", size)
	}
	if buf, unmap, err := mmap(fh, int(size)); err == nil {
		return buf, unmap, nil
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(fh, 0, size), buf); err != nil {
		return nil, nil, err
	}
	return buf, nil, nil
}

// Close releases the mapping; slices returned by Raw become invalid.
// Calling it twice is safe.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	buf := f.buf
	f.buf = nil
	if buf != nil && f.unmap != nil {
		if err := f.unmap(buf); err != nil {
			return fmt.Errorf("safetensors: %s: unmap: %w", f.path, err)
		}
	}
	return nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Names returns the tensor names, sorted.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Info returns the description of tensor name.
func (f *File) Info(name string) (TensorInfo, bool) {
	ti, ok := f.tensors[name]
	if ok {
		ti.Shape = append([]int(nil), ti.Shape...)
	}
	return ti, ok
}

// Metadata returns a copy of the header's __metadata__ (empty if none).
func (f *File) Metadata() map[string]string {
	m := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		m[k] = v
	}
	return m
}

// Raw returns the stored bytes of tensor name. The slice aliases the file
// mapping: it must not be modified and is invalid after Close.
func (f *File) Raw(name string) ([]byte, TensorInfo, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.rawLocked(name)
}

func (f *File) rawLocked(name string) ([]byte, TensorInfo, error) {
	ti, ok := f.Info(name)
	if !ok {
		return nil, ti, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	if f.buf == nil {
		return nil, ti, fmt.Errorf("safetensors: %s: %w", f.path, os.ErrClosed)
	}
	return f.buf[f.data+ti.Offsets[0] : f.data+ti.Offsets[1]], ti, nil
}

// Float32 returns tensor name converted to a new []float32 and its shape.
// F32, F16, BF16 and F64 are converted exactly (F64 rounds to nearest);
// other dtypes give an error matching ErrUnsupported.
func (f *File) Float32(name string) ([]float32, []int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	raw, ti, err := f.rawLocked(name)
	if err != nil {
		return nil, nil, err
	}
	out, err := DecodeFloat32(ti.DType, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, err)
	}
	return out, ti.Shape, nil
}

// DecodeFloat32 converts little-endian raw data of dtype dt to float32.
func DecodeFloat32(dt DType, raw []byte) ([]float32, error) {
	size := dt.Size()
	if size == 0 || len(raw)%size != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of %s elements: %w", len(raw), dt, ErrInvalid)
	}
	out := make([]float32, len(raw)/size)
	le := binary.LittleEndian
	switch dt {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = Float16ToFloat32(le.Uint16(raw[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = BFloat16ToFloat32(le.Uint16(raw[2*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
		}
	default:
		return nil, fmt.Errorf("%s cannot be converted to float32: %w", dt, ErrUnsupported)
	}
	return out, nil
}

// FromBytes validates buf, the whole content of a safetensors file, and
// reads tensors from it without copying; name is used in error messages.
func FromBytes(name string, buf []byte) (*File, error) { return newFile(name, buf) }
