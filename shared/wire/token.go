package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// JoinTokenPrefix starts every join token: the format's name and version.
// What follows is the token's JSON in unpadded base64url.
const JoinTokenPrefix = "lfjoin1."

// JoinToken is what a node needs to join a farm: the endpoints, the CA that
// signed the servers' certificates and the node's own logins, which allow
// only what a node does (docs/SECURITY.md). `farm up` and `farm token
// create` issue them; it is a secret: keep it in a file of mode 0600 or an
// environment variable, never on a command line.
type JoinToken struct {
	// Name names the token. The nodes that join with it take ids Name or
	// Name-SUFFIX, and only those.
	Name string `json:"name"`
	// Expires is when the farm stops taking the token, in Unix seconds (0:
	// never).
	Expires       int64    `json:"expires,omitempty"`
	CA            string   `json:"ca,omitempty"`
	NATSURL       string   `json:"nats_url"`
	NATSUser      string   `json:"nats_user"`
	NATSPassword  string   `json:"nats_password"`
	EtcdEndpoints []string `json:"etcd_endpoints"`
	EtcdUser      string   `json:"etcd_user"`
	EtcdPassword  string   `json:"etcd_password"`
	S3Endpoint    string   `json:"s3_endpoint"`
	S3AccessKey   string   `json:"s3_access_key"`
	S3SecretKey   string   `json:"s3_secret_key"`
	S3Bucket      string   `json:"s3_bucket"`
	S3Region      string   `json:"s3_region,omitempty"`
}

// ErrJoinToken marks a join token that does not parse or is not valid.
var ErrJoinToken = errors.New("wire: join token")

// MaxTokenName is the longest token name.
const MaxTokenName = 32

// ValidTokenName reports whether s can name a join token: 1 to 32 lower-case
// letters and digits. No "-": a token's nodes are named Name-SUFFIX, and
// with a "-" in names the ids of token "a" would include those of "a-b".
func ValidTokenName(s string) bool {
	if len(s) == 0 || len(s) > MaxTokenName {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Encode is the token as one string: JoinTokenPrefix and base64url JSON.
func (t JoinToken) Encode() string {
	// Marshalling strings, a number and a list of strings cannot fail.
	data, _ := json.Marshal(t)
	return JoinTokenPrefix + base64.RawURLEncoding.EncodeToString(data)
}

// ParseJoinToken reads a token made by Encode and validates it. It accepts
// only what Encode makes, byte for byte: whatever it parses encodes back to
// s. Expiry is not checked here (see Expired).
func ParseJoinToken(s string) (JoinToken, error) {
	var t JoinToken
	payload, ok := strings.CutPrefix(s, JoinTokenPrefix)
	if !ok {
		return t, fmt.Errorf("%w: does not start with %q (is it a join token of this farm version?)", ErrJoinToken, JoinTokenPrefix)
	}
	// The decoder skips CR and LF even in strict mode; a token has none.
	if strings.ContainsAny(payload, "\r\n") {
		return t, fmt.Errorf("%w: not base64url: a line break inside the token", ErrJoinToken)
	}
	data, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return t, fmt.Errorf("%w: not base64url: %w", ErrJoinToken, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return JoinToken{}, fmt.Errorf("%w: %w", ErrJoinToken, err)
	}
	if again, _ := json.Marshal(t); !bytes.Equal(again, data) {
		return JoinToken{}, fmt.Errorf("%w: not as farm wrote it (edited or truncated?)", ErrJoinToken)
	}
	if err := t.Validate(); err != nil {
		return JoinToken{}, err
	}
	return t, nil
}

// Validate lists what is missing or malformed.
func (t JoinToken) Validate() error {
	var problems []string
	if !ValidTokenName(t.Name) {
		problems = append(problems, fmt.Sprintf("name %q: want 1 to %d lower-case letters and digits", t.Name, MaxTokenName))
	}
	if t.Expires < 0 {
		problems = append(problems, fmt.Sprintf("expires %d is negative", t.Expires))
	}
	for _, f := range []struct{ name, v string }{
		{"nats_url", t.NATSURL}, {"nats_user", t.NATSUser}, {"nats_password", t.NATSPassword},
		{"etcd_user", t.EtcdUser}, {"etcd_password", t.EtcdPassword}, {"s3_endpoint", t.S3Endpoint},
		{"s3_access_key", t.S3AccessKey}, {"s3_secret_key", t.S3SecretKey}, {"s3_bucket", t.S3Bucket},
	} {
		if f.v == "" {
			problems = append(problems, f.name+" is missing")
		}
	}
	if len(t.EtcdEndpoints) == 0 {
		problems = append(problems, "etcd_endpoints is missing")
	}
	for _, e := range t.EtcdEndpoints {
		if e == "" {
			problems = append(problems, "etcd_endpoints has an empty endpoint")
			break
		}
	}
	if t.CA != "" {
		if b, _ := pem.Decode([]byte(t.CA)); b == nil || b.Type != "CERTIFICATE" {
			problems = append(problems, "ca is not a PEM certificate")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrJoinToken, strings.Join(problems, "; "))
	}
	return nil
}

// ExpiresAt is when the token expires; zero when it does not.
func (t JoinToken) ExpiresAt() time.Time {
	if t.Expires == 0 {
		return time.Time{}
	}
	return time.Unix(t.Expires, 0)
}

// Expired reports whether the token has expired at now.
func (t JoinToken) Expired(now time.Time) bool {
	return t.Expires != 0 && !now.Before(t.ExpiresAt())
}

// AllowsNodeID reports whether a node joining with the token may take id:
// the token's name, or the name, "-" and more.
func (t JoinToken) AllowsNodeID(id string) bool {
	return ValidID(id) && (id == t.Name || strings.HasPrefix(id, t.Name+"-"))
}

// ReadJoinToken reads a token from path, whitespace around it ignored.
func ReadJoinToken(path string) (JoinToken, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return JoinToken{}, fmt.Errorf("%w: %w", ErrJoinToken, err)
	}
	t, err := ParseJoinToken(strings.TrimSpace(string(data)))
	if err != nil {
		return t, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// WriteJoinToken writes t to path with mode 0600, replacing what was there.
func WriteJoinToken(path string, t JoinToken) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(t.Encode()+"\n"), 0o600); err != nil {
		return fmt.Errorf("wire: join token: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("wire: join token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("wire: join token: %w", err)
	}
	return nil
}
