package localfarm

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"testing"
	"time"
)

// TestEnsureCerts_MakesReusesAndRenews: the CA and server certificate are
// made once, kept across calls, and replaced when a host is missing, when
// they near expiry, or when a file is damaged.
func TestEnsureCerts_MakesReusesAndRenews(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	hosts := []string{"localhost", "127.0.0.1", "::1", "farm.example"}
	c, err := ensureCerts(dir, hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{c.CAKeyFile, c.KeyFile} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, want mode 0600", f, err)
		}
	}
	verify(t, c, hosts, now)
	ca, server := read(t, c.CAFile), read(t, c.CertFile)

	if _, err := ensureCerts(dir, hosts, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, c.CAFile), ca) || !bytes.Equal(read(t, c.CertFile), server) {
		t.Fatal("a second call with the same hosts replaced a certificate")
	}

	more := append(hosts, "10.9.8.7")
	if _, err := ensureCerts(dir, more, now); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, c.CAFile), ca) || bytes.Equal(read(t, c.CertFile), server) {
		t.Fatal("a new host: want a new server certificate from the same CA")
	}
	verify(t, c, more, now)

	later := now.Add(serverLifetime - 10*24*time.Hour)
	server = read(t, c.CertFile)
	if _, err := ensureCerts(dir, more, later); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, c.CAFile), ca) || bytes.Equal(read(t, c.CertFile), server) {
		t.Fatal("server certificate near expiry: want it renewed by the same CA")
	}
	verify(t, c, more, later)

	muchLater := now.Add(caLifetime - 10*24*time.Hour)
	if _, err := ensureCerts(dir, more, muchLater); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(read(t, c.CAFile), ca) {
		t.Fatal("CA near expiry: want a new CA")
	}
	verify(t, c, more, muchLater)

	if err := os.WriteFile(c.KeyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureCerts(dir, more, muchLater); err != nil {
		t.Fatal(err)
	}
	verify(t, c, more, muchLater)
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verify checks that the server certificate is valid for every host at now,
// chained to the CA, and matches its key.
func verify(t *testing.T, c Certs, hosts []string, now time.Time) {
	t.Helper()
	ca, _, err := loadPair(c.CAFile, c.CAKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := loadPair(c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, h := range hosts {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("certificate for %s: %v", h, err)
		}
	}
}

// TestOptions_TLSIsOnOffLoopback: TLS is on by default unless the farm
// listens on loopback only, stays off when asked, and an unknown mode is
// refused.
func TestOptions_TLSIsOnOffLoopback(t *testing.T) {
	for _, c := range []struct {
		listen   string
		mode     TLSMode
		want     TLSMode
		wantFail bool
	}{
		{"127.0.0.1", TLSAuto, TLSOff, false},
		{"::1", TLSAuto, TLSOff, false},
		{"localhost", TLSAuto, TLSOff, false},
		{"0.0.0.0", TLSAuto, TLSOn, false},
		{"10.1.2.3", TLSAuto, TLSOn, false},
		{"0.0.0.0", TLSOff, TLSOff, false},
		{"127.0.0.1", TLSOn, TLSOn, false},
		{"127.0.0.1", "maybe", "", true},
	} {
		f, err := New(Options{Dir: t.TempDir(), Listen: c.listen, TLS: c.mode, S3FromTestBinary: true})
		if c.wantFail {
			if !errors.Is(err, ErrOptions) {
				t.Errorf("listen %s, tls %q: %v, want ErrOptions", c.listen, c.mode, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("listen %s, tls %q: %v", c.listen, c.mode, err)
		} else if f.opts.TLS != c.want {
			t.Errorf("listen %s, tls %q: %q, want %q", c.listen, c.mode, f.opts.TLS, c.want)
		}
	}
}
