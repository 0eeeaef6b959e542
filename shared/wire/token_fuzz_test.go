package wire

import (
	"errors"
	"testing"
)

// FuzzJoinToken feeds strings to ParseJoinToken (a node reads a token it
// was handed, from a file or the environment). Whatever it refuses gets
// ErrJoinToken, never a panic; whatever it accepts is valid and encodes
// back to the very same string.
func FuzzJoinToken(f *testing.F) {
	f.Add(sampleToken().Encode())
	short := sampleToken()
	short.Expires, short.CA, short.S3Region = 0, "", ""
	f.Add(short.Encode())
	f.Add(JoinTokenPrefix)
	f.Add(JoinTokenPrefix + "e30")          // {}
	f.Add(JoinTokenPrefix + "bnVsbA")       // null
	f.Add(JoinTokenPrefix + "W10")          // []
	f.Add(JoinTokenPrefix + "eyJuYW1lIjoi") // {"name":"
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			if !errors.Is(err, ErrJoinToken) {
				t.Fatalf("error %v is not ErrJoinToken", err)
			}
			return
		}
		if err := tok.Validate(); err != nil {
			t.Fatalf("accepted an invalid token: %v", err)
		}
		if again := tok.Encode(); again != s {
			t.Fatalf("%q\nencodes back as\n%q", s, again)
		}
	})
}
