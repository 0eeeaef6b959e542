package localfarm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Certs are the files of the farm's own certificate authority and the
// certificate every server of `farm up` presents, under DATA/tls.
type Certs struct {
	// CAFile is the CA certificate every client verifies the servers with.
	CAFile string
	// CAKeyFile is the CA's private key (mode 0600): whoever reads it can
	// impersonate every server of the farm.
	CAKeyFile string
	// CertFile and KeyFile are the servers' certificate and key (mode 0600).
	CertFile, KeyFile string
}

// Lifetimes of what EnsureCerts makes, and how early it replaces them.
const (
	caLifetime     = 10 * 365 * 24 * time.Hour
	serverLifetime = 397 * 24 * time.Hour // the longest browsers accept
	renewBefore    = 30 * 24 * time.Hour
)

// EnsureCerts makes dir/ca.pem, ca-key.pem, server.pem and server-key.pem
// unless they exist and are good: the CA is replaced when missing, unreadable
// or within 30 days of expiry (and with it the server certificate); the
// server certificate when missing, not signed by the CA, within 30 days of
// expiry, or missing one of hosts (DNS names or IP addresses) from its
// subject alternative names. Replacing the CA invalidates join tokens and
// credentials that carry the old one.
func EnsureCerts(dir string, hosts []string) (Certs, error) {
	return ensureCerts(dir, hosts, time.Now())
}

func ensureCerts(dir string, hosts []string, now time.Time) (Certs, error) {
	c := Certs{CAFile: filepath.Join(dir, "ca.pem"), CAKeyFile: filepath.Join(dir, "ca-key.pem"),
		CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return c, fmt.Errorf("localfarm: tls: %w", err)
	}
	ca, caKey, err := loadPair(c.CAFile, c.CAKeyFile)
	if err != nil || !ca.IsCA || now.Add(renewBefore).After(ca.NotAfter) {
		if ca, caKey, err = newCA(now); err != nil {
			return c, err
		}
		if err := writePair(c.CAFile, c.CAKeyFile, ca, caKey); err != nil {
			return c, err
		}
	}
	cert, _, err := loadPair(c.CertFile, c.KeyFile)
	if err == nil && cert.CheckSignatureFrom(ca) == nil && now.Add(renewBefore).Before(cert.NotAfter) && covers(cert, hosts) {
		return c, nil
	}
	cert, key, err := newServerCert(ca, caKey, hosts, now)
	if err != nil {
		return c, err
	}
	return c, writePair(c.CertFile, c.KeyFile, cert, key)
}

// covers reports whether cert names every host.
func covers(cert *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(cert.DNSNames, h) {
			return false
		}
	}
	return true
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("localfarm: tls: ca key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"latentfarm"}, CommonName: "latentfarm CA " + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("localfarm: tls: ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("localfarm: tls: ca certificate: %w", err)
	}
	return cert, key, nil
}

// newServerCert signs a certificate for hosts. It is also a client
// certificate: etcd's peer listener asks its peers for one.
func newServerCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("localfarm: tls: server key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"latentfarm"}, CommonName: "latentfarm server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("localfarm: tls: server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("localfarm: tls: server certificate: %w", err)
	}
	return cert, key, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("localfarm: tls: serial number: %w", err)
	}
	return n, nil
}

// loadPair reads a certificate and its ECDSA key and checks that they match.
func loadPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, err := readPEM(certFile, "CERTIFICATE")
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(cert)
	if err != nil {
		return nil, nil, err
	}
	k, err := readPEM(keyFile, "EC PRIVATE KEY")
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	if !key.PublicKey.Equal(c.PublicKey) {
		return nil, nil, errors.New("key does not match certificate")
	}
	return c, key, nil
}

func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != typ {
		return nil, fmt.Errorf("%s: no %s block", path, typ)
	}
	return b.Bytes, nil
}

// writePair writes the certificate (0644) and the key (0600), each through
// a temporary file so that a crash leaves the old or the new one.
func writePair(certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("localfarm: tls: %w", err)
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	return nil
}

// tlsHosts are the names a server certificate of this farm must carry:
// loopback, the listen and advertised hosts, this machine's name and
// non-loopback addresses, and extra.
func tlsHosts(listen, advertise string, extra []string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	add := func(h string) {
		if ip := net.ParseIP(h); (ip == nil || !ip.IsUnspecified()) && h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	add(listen)
	add(advertise)
	if h, err := os.Hostname(); err == nil {
		add(h)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				add(n.IP.String())
			}
		}
	}
	for _, h := range extra {
		add(h)
	}
	return hosts
}
