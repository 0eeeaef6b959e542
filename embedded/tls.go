package embedded

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ServerTLS are the files a server presents TLS with. The zero value (or a
// nil pointer) means plain TCP.
type ServerTLS struct {
	// CertFile and KeyFile are the server's certificate and key.
	CertFile, KeyFile string
	// CAFile signed CertFile. etcd checks its peers' certificates against
	// it, and the S3 gateway child its own health check.
	CAFile string
}

// on reports whether t asks for TLS.
func (t *ServerTLS) on() bool { return t != nil && t.CertFile != "" }

func (t *ServerTLS) validate(errBase error) error {
	if !t.on() {
		if t != nil && (t.KeyFile != "" || t.CAFile != "") {
			return fmt.Errorf("%w: tls: key or CA given without a certificate", errBase)
		}
		return nil
	}
	if t.KeyFile == "" || t.CAFile == "" {
		return fmt.Errorf("%w: tls: certificate, key and CA go together", errBase)
	}
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		return fmt.Errorf("%w: tls: %w", errBase, err)
	}
	return nil
}

// clientConfig verifies servers against CAFile; nil when TLS is off.
func (t *ServerTLS) clientConfig() (*tls.Config, error) {
	if !t.on() {
		return nil, nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", t.CAFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// scheme is "https" with TLS, "http" without.
func (t *ServerTLS) scheme() string {
	if t.on() {
		return "https"
	}
	return "http"
}
