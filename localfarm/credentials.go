package localfarm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// loadOrCreateCredentials reads dir's credentials.json and fills any missing
// secret with a new random one; the first start of a farm creates them all.
// Secrets never change once written, so a restart keeps every client working.
func loadOrCreateCredentials(dir string) (wire.Credentials, bool, error) {
	c, err := wire.ReadCredentials(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return c, false, fmt.Errorf("localfarm: %w", err)
	}
	created := false
	fill := func(p *string, gen func() (string, error)) error {
		if *p != "" {
			return nil
		}
		v, err := gen()
		if err != nil {
			return err
		}
		*p, created = v, true
		return nil
	}
	constant := func(v string) func() (string, error) { return func() (string, error) { return v, nil } }
	for _, f := range []struct {
		p   *string
		gen func() (string, error)
	}{
		{&c.Token, secret(32)},
		{&c.NATSUser, constant("farm")},
		{&c.NATSPassword, secret(32)},
		{&c.EtcdUser, constant("root")},
		{&c.EtcdPassword, secret(32)},
		{&c.S3AccessKey, accessKey},
		{&c.S3SecretKey, secret(40)},
	} {
		if err := fill(f.p, f.gen); err != nil {
			return c, false, fmt.Errorf("localfarm: generate credentials: %w", err)
		}
	}
	return c, created, nil
}

// saveCredentials writes c to dir/credentials.json with mode 0600.
func saveCredentials(dir string, c wire.Credentials) error {
	if err := wire.WriteCredentials(dir, c); err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	// WriteCredentials creates with 0600; make sure an older file is too.
	if err := os.Chmod(filepath.Join(dir, wire.CredentialsFile), 0o600); err != nil {
		return fmt.Errorf("localfarm: credentials: %w", err)
	}
	return nil
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// secret returns a generator of n random letters and digits (5.95 bits each).
func secret(n int) func() (string, error) {
	return func() (string, error) { return randomString(n, alnum) }
}

// accessKey looks like an AWS access key id: 20 upper-case letters and digits.
func accessKey() (string, error) {
	s, err := randomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
	return "LFRM" + s, err
}

func randomString(n int, chars string) (string, error) {
	// Reject bytes past the last whole multiple of len(chars): no modulo bias.
	limit := 256 - 256%len(chars)
	var sb strings.Builder
	buf := make([]byte, 64)
	for sb.Len() < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, x := range buf {
			if int(x) < limit && sb.Len() < n {
				sb.WriteByte(chars[int(x)%len(chars)])
			}
		}
	}
	return sb.String(), nil
}
