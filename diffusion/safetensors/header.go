package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalid is matched (errors.Is) by every error about a malformed file.
var ErrInvalid = errors.New("safetensors: invalid file")

// ErrUnsupported is matched by errors about a dtype that cannot be converted.
var ErrUnsupported = errors.New("safetensors: unsupported dtype")

// maxHeaderLen bounds the JSON header; real headers are a few hundred KiB.
const maxHeaderLen = 100 << 20

// FormatError says what is wrong with a file and where; it matches ErrInvalid.
type FormatError struct {
	File   string // path as given to Open
	Tensor string // empty when the problem is not about one tensor
	Msg    string
	Err    error // underlying cause, if any (a JSON syntax error, say)
}

// Error formats the error as "safetensors: FILE: tensor "NAME": MSG".
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("safetensors: ")
	b.WriteString(e.File)
	if e.Tensor != "" {
		fmt.Fprintf(&b, ": tensor %q", e.Tensor)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *FormatError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalid.
func (e *FormatError) Is(target error) bool { return target == ErrInvalid }

// TensorInfo describes one stored tensor.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Offsets are [begin, end) byte offsets relative to the start of the data
	// section, as written in the header.
	Offsets [2]int64
}

// NumElements returns the product of the shape (1 for a scalar).
func (ti TensorInfo) NumElements() int {
	n := 1
	for _, d := range ti.Shape {
		n *= d
	}
	return n
}

type header struct {
	tensors  map[string]TensorInfo
	metadata map[string]string
}

// parseHeader validates the JSON header of file against a data section of
// dataLen bytes.
func parseHeader(file string, raw []byte, dataLen int64) (*header, error) {
	bad := func(tensor, format string, args ...any) error {
		return &FormatError{File: file, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
	}
	if !utf8.Valid(raw) {
		return nil, bad("", "header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, &FormatError{File: file, Msg: "header is not JSON", Err: eofErr(err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, bad("", "header is not a JSON object")
	}
	h := &header{tensors: map[string]TensorInfo{}, metadata: map[string]string{}}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, &FormatError{File: file, Msg: "header is not JSON", Err: eofErr(err)}
		}
		name, _ := tok.(string) // object keys are always strings
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, &FormatError{File: file, Tensor: name, Msg: "header is not JSON", Err: eofErr(err)}
		}
		if seen[name] {
			return nil, bad(name, "appears twice in the header")
		}
		seen[name] = true
		if name == "__metadata__" {
			if err := h.parseMetadata(file, val); err != nil {
				return nil, err
			}
			continue
		}
		ti, err := parseTensor(file, name, val, dataLen)
		if err != nil {
			return nil, err
		}
		h.tensors[name] = ti
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, &FormatError{File: file, Msg: "header is not JSON", Err: eofErr(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("", "header has data after its JSON object")
	}
	if err := checkOverlaps(file, h.tensors); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *header) parseMetadata(file string, val json.RawMessage) error {
	if string(val) == "null" {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(val, &m); err != nil {
		return &FormatError{File: file, Msg: "__metadata__ is not a JSON object"}
	}
	for k, v := range m {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return &FormatError{File: file, Msg: fmt.Sprintf("__metadata__ value of %q is %s, not a string", k, clip(v))}
		}
		h.metadata[k] = s
	}
	return nil
}

func parseTensor(file, name string, val json.RawMessage, dataLen int64) (TensorInfo, error) {
	bad := func(format string, args ...any) (TensorInfo, error) {
		return TensorInfo{}, &FormatError{File: file, Tensor: name, Msg: fmt.Sprintf(format, args...)}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(val, &fields); err != nil || fields == nil {
		return bad("entry is %s, not a JSON object", clip(val))
	}
	for k := range fields {
		if k != "dtype" && k != "shape" && k != "data_offsets" {
			return bad("unknown field %q", k)
		}
	}
	ti := TensorInfo{Name: name}
	rawDT, ok := fields["dtype"]
	if !ok {
		return bad("missing dtype")
	}
	var dt string
	if err := json.Unmarshal(rawDT, &dt); err != nil {
		return bad("dtype is %s, not a string", clip(rawDT))
	}
	if ti.DType, ok = ParseDType(dt); !ok {
		return bad("unknown dtype %q", dt)
	}
	rawShape, ok := fields["shape"]
	if !ok {
		return bad("missing shape")
	}
	shape, err := parseInts(rawShape)
	if err != nil {
		return bad("shape %s: %v", clip(rawShape), err)
	}
	rawOff, ok := fields["data_offsets"]
	if !ok {
		return bad("missing data_offsets")
	}
	off, err := parseInts(rawOff)
	if err != nil {
		return bad("data_offsets %s: %v", clip(rawOff), err)
	}
	if len(off) != 2 {
		return bad("data_offsets %v: want [begin end]", off)
	}
	begin, end := off[0], off[1]
	if begin > end {
		return bad("data_offsets %v: begin is after end", off)
	}
	if end > dataLen {
		return bad("data_offsets %v: end is past the data section (%d bytes)", off, dataLen)
	}
	need, ok := byteSize(shape, ti.DType)
	if !ok {
		return bad("shape %v x %s overflows", shape, strings.ToLower(dt))
	}
	if uint64(end-begin) != need {
		return bad("data_offsets %v hold %d bytes, shape %v x %s needs %d",
			off, end-begin, shape, strings.ToLower(dt), need)
	}
	ti.Shape = make([]int, len(shape))
	for i, d := range shape {
		ti.Shape[i] = int(d)
	}
	ti.Offsets = [2]int64{begin, end}
	return ti, nil
}

// parseInts reads a JSON array of non-negative integers.
func parseInts(raw json.RawMessage) ([]int64, error) {
	var nums []json.RawMessage
	if err := json.Unmarshal(raw, &nums); err != nil || nums == nil {
		return nil, errors.New("not a JSON array")
	}
	out := make([]int64, len(nums))
	for i, n := range nums {
		v, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("element %d (%s) is not a non-negative integer", i, clip(n))
		}
		out[i] = v
	}
	return out, nil
}

// byteSize returns product(shape)*dt.Size(), or false on overflow past 2^62.
func byteSize(shape []int64, dt DType) (uint64, bool) {
	n := uint64(dt.Size())
	for _, d := range shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > 1<<62 {
			return 0, false
		}
		n = lo
	}
	return n, true
}

func checkOverlaps(file string, tensors map[string]TensorInfo) error {
	list := make([]TensorInfo, 0, len(tensors))
	for _, ti := range tensors {
		if ti.Offsets[0] < ti.Offsets[1] {
			list = append(list, ti)
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Offsets[0] != list[j].Offsets[0] {
			return list[i].Offsets[0] < list[j].Offsets[0]
		}
		return list[i].Name < list[j].Name
	})
	for i := 1; i < len(list); i++ {
		prev, cur := list[i-1], list[i]
		if cur.Offsets[0] < prev.Offsets[1] {
			return &FormatError{File: file, Tensor: cur.Name, Msg: fmt.Sprintf(
				"data_offsets %v overlap tensor %q at %v", cur.Offsets[:], prev.Name, prev.Offsets[:])}
		}
	}
	return nil
}

// eofErr turns a bare io.EOF from the JSON decoder into io.ErrUnexpectedEOF.
func eofErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// clip shortens a raw JSON value for an error message.
func clip(raw []byte) string {
	const limit = 40
	if len(raw) > limit {
		return string(raw[:limit]) + "..."
	}
	return string(raw)
}
