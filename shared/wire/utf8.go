package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// checkUTF8 refuses a spec with bytes that are not UTF-8, naming the field
// they are in: JSON decoding would turn them into U+FFFD without a word,
// and YAML's error names no field.
func checkUTF8(data []byte, isJSON bool) error {
	if utf8.Valid(data) {
		return nil
	}
	bad := firstInvalid(data)
	line := 1 + bytes.Count(data[:bad], []byte("\n"))
	if isJSON {
		if field := jsonFieldAt(data, bad); field != "" {
			return FieldErrors{{Field: field, Reason: fmt.Sprintf("not valid UTF-8 (byte %d, line %d)", bad, line)}}
		}
	}
	return fmt.Errorf("wire: job spec: not valid UTF-8 at byte %d (line %d)", bad, line)
}

// firstInvalid is the offset of the first byte that is not UTF-8.
func firstInvalid(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(data)
}

// jsonFieldAt walks the JSON tokens and returns the path ("prompts[2]",
// "keyframes[0].prompt") of the value or key holding offset.
func jsonFieldAt(data []byte, offset int) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	type level struct {
		array bool
		key   string
		index int
	}
	var stack []level
	path := func() string {
		var b bytes.Buffer
		for i, l := range stack {
			switch {
			case l.array:
				b.WriteString("[" + strconv.Itoa(l.index) + "]")
			case l.key != "":
				if i > 0 {
					b.WriteByte('.')
				}
				b.WriteString(l.key)
			}
		}
		return b.String()
	}
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		end := int(dec.InputOffset())
		n := len(stack)
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:n-1]
			expectKey = n > 1 && !stack[n-2].array
			continue
		}
		if n > 0 && !stack[n-1].array && expectKey {
			stack[n-1].key = fmt.Sprint(tok)
			if end > offset {
				return path()
			}
			expectKey = false
			continue
		}
		if n > 0 && stack[n-1].array {
			stack[n-1].index++
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, level{array: d == '[', index: -1})
			expectKey = d == '{'
			continue
		}
		if end > offset {
			return path()
		}
		expectKey = n > 0 && !stack[n-1].array
	}
}
