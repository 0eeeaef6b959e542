package wire

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testCA is a PEM certificate block; ParseJoinToken only checks its shape.
const testCA = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"

func sampleToken() JoinToken {
	return JoinToken{Name: "gpu", Expires: 1893456000, CA: testCA,
		NATSURL: "tls://10.0.0.5:4222", NATSUser: "node-gpu", NATSPassword: "n4ts",
		EtcdEndpoints: []string{"https://10.0.0.5:2379"}, EtcdUser: "node-gpu", EtcdPassword: "3tcd",
		S3Endpoint: "https://10.0.0.5:7070", S3AccessKey: "AK", S3SecretKey: "SK", S3Bucket: "farm", S3Region: "us-east-1"}
}

func TestJoinToken_RoundTripsAndRefusesDamage(t *testing.T) {
	tok := sampleToken()
	s := tok.Encode()
	if !strings.HasPrefix(s, JoinTokenPrefix) || strings.ContainsAny(s, " \n=+/") {
		t.Fatalf("encoded token %q: want the prefix and base64url without padding", s)
	}
	back, err := ParseJoinToken(s)
	if err != nil || !reflect.DeepEqual(back, tok) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	noName := tok
	noName.Name = "GPU-1"
	noEtcd := tok
	noEtcd.EtcdEndpoints = nil
	for name, bad := range map[string]string{
		"empty":         "",
		"other prefix":  "lfjoin2." + s[len(JoinTokenPrefix):],
		"truncated":     s[:len(s)-4],
		"padded":        s + "==",
		"space":         s + " ",
		"not json":      JoinTokenPrefix + "bm90IGpzb24",
		"bad name":      noName.Encode(),
		"no endpoints":  noEtcd.Encode(),
		"unknown field": JoinTokenPrefix + "eyJ4IjoxfQ",
	} {
		if _, err := ParseJoinToken(bad); !errors.Is(err, ErrJoinToken) {
			t.Errorf("%s: %v, want ErrJoinToken", name, err)
		}
	}
}

func TestJoinToken_NodeIDsAndExpiry(t *testing.T) {
	tok := sampleToken()
	for id, want := range map[string]bool{"gpu": true, "gpu-host-a1": true, "gpu2": false, "cpu-1": false,
		"gp": false, "gpu-": true, "gpu-bad/id": false} {
		if got := tok.AllowsNodeID(id); got != want {
			t.Errorf("AllowsNodeID(%q) = %v, want %v", id, got, want)
		}
	}
	at := time.Unix(tok.Expires, 0)
	if tok.Expired(at.Add(-time.Second)) || !tok.Expired(at) {
		t.Error("expiry is not at Expires")
	}
	tok.Expires = 0
	if tok.Expired(time.Now().Add(100*365*24*time.Hour)) || !tok.ExpiresAt().IsZero() {
		t.Error("a token without Expires expired")
	}
}

func TestJoinToken_FileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "join-token")
	tok := sampleToken()
	if err := WriteJoinToken(path, tok); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v: want 0600", st.Mode().Perm(), err)
	}
	back, err := ReadJoinToken(path)
	if err != nil || !reflect.DeepEqual(back, tok) {
		t.Fatalf("read back: %+v, %v", back, err)
	}
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJoinToken(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged file: %v, want an error naming it", err)
	}
}
