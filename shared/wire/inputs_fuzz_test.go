package wire

import "testing"

// FuzzParseInputKey feeds job spec input keys (init_image, mask) to
// ParseInputKey: an accepted key is exactly the key InputKey builds from
// the sum and format it returns, so a key names one stored object.
func FuzzParseInputKey(f *testing.F) {
	f.Add("inputs/sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.png")
	f.Add("inputs/sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.jpg")
	f.Add("inputs/sha256-0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef.jpeg")
	f.Add("inputs/sha256-../../etc/passwd.png")
	f.Fuzz(func(t *testing.T, key string) {
		sum, format, ok := ParseInputKey(key)
		if ok != ValidInputKey(key) {
			t.Fatalf("ParseInputKey ok %v, ValidInputKey %v", ok, ValidInputKey(key))
		}
		if !ok {
			return
		}
		if format != "png" && format != "jpeg" {
			t.Fatalf("format %q", format)
		}
		if back := InputKey(sum, format); back != key {
			t.Fatalf("%q parses to %s, %s, which make %q", key, sum, format, back)
		}
	})
}
