// Package connect opens the farm's three backing systems — NATS, etcd and an
// S3-compatible store — from plain config structs shared by the coordinator,
// the nodes, `farm up` and the CLI, and sets up the JetStream streams and
// consumers the farm's stream layout needs (see shared/wire).
//
// It must never hold state of its own or decide policy: callers pass every
// setting, including the logger the clients' own events go to, and own the
// returned clients.
package connect

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TLSFiles names the files of a TLS client setup. Zero means plain TCP.
type TLSFiles struct {
	// CAFile verifies the server (system roots when neither it nor CA is set).
	CAFile string `json:"ca_file,omitempty"`
	// CA is a CA certificate in PEM, trusted besides CAFile's: farm up's
	// credentials and join tokens carry the farm's CA this way (they set
	// it; config files name a CAFile).
	CA string `json:"-"`
	// CertFile and KeyFile are a client certificate (mutual TLS), both or neither.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// Enable turns TLS on with system roots when no file is given.
	Enable bool `json:"enable,omitempty"`
	// InsecureSkipVerify skips server verification (tests only).
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// Enabled reports whether TLS is requested.
func (f TLSFiles) Enabled() bool {
	return f.Enable || f.CAFile != "" || f.CA != "" || f.CertFile != "" || f.InsecureSkipVerify
}

// Config builds a *tls.Config, or nil when TLS is not requested.
func (f TLSFiles) Config() (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.InsecureSkipVerify} //nolint:gosec // opt-in for tests
	if f.CAFile != "" || f.CA != "" {
		pool := x509.NewCertPool()
		if f.CAFile != "" {
			pem, err := os.ReadFile(f.CAFile)
			if err != nil {
				return nil, fmt.Errorf("connect: tls ca: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("connect: tls ca %s: no certificate found", f.CAFile)
			}
		}
		if f.CA != "" && !pool.AppendCertsFromPEM([]byte(f.CA)) {
			return nil, errors.New("connect: tls ca: no certificate found in the PEM given")
		}
		cfg.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("connect: tls: cert file and key file go together")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("connect: tls client cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// NATSConfig says how to reach NATS.
type NATSConfig struct {
	// URL is one server's nats:// URL or, for a cluster, several separated
	// by commas; the client fails over between them and the ones the
	// servers announce.
	URL       string `json:"url"`
	User      string `json:"user,omitempty"`
	Password  string `json:"password,omitempty"`
	Token     string `json:"token,omitempty"`
	CredsFile string `json:"creds_file,omitempty"`
	NKeyFile  string `json:"nkey_file,omitempty"`
	// InboxPrefix replaces "_INBOX" in the subjects replies come back on:
	// a login allowed to subscribe only to its own inboxes needs it (a join
	// token's node sets it from the token).
	InboxPrefix string   `json:"-"`
	TLS         TLSFiles `json:"tls,omitzero"`
}

// Validate reports a config that cannot work.
func (c NATSConfig) Validate() error {
	if c.URL == "" {
		return errors.New("connect: nats url is required")
	}
	return nil
}

// NATS connects to NATS as name (shown in the server's connection list).
// It reconnects forever; callers close the connection. Disconnects,
// reconnects and asynchronous errors are logged to log (nil: not logged).
func NATS(c NATSConfig, name string, log hclog.Logger) (*nats.Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(5 * time.Second),
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("connect: nats nkey: %w", err)
		}
		opts = append(opts, o)
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	if log != nil {
		opts = append(opts,
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					log.Warn("nats disconnected", "error", err)
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
			nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
				subject := ""
				if sub != nil {
					subject = sub.Subject
				}
				log.Warn("nats error", "subject", subject, "error", err)
			}),
		)
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect: nats %s: %w", c.URL, err)
	}
	return nc, nil
}

// EtcdConfig says how to reach etcd.
type EtcdConfig struct {
	Endpoints []string `json:"endpoints"`
	User      string   `json:"user,omitempty"`
	Password  string   `json:"password,omitempty"`
	TLS       TLSFiles `json:"tls,omitzero"`
}

// Validate reports a config that cannot work.
func (c EtcdConfig) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("connect: at least one etcd endpoint is required")
	}
	return nil
}

// Etcd opens an etcd client. The client connects lazily; the first request
// fails if no endpoint answers. The client's warnings and errors go to log
// (nil: dropped).
func Etcd(c EtcdConfig, log hclog.Logger) (*clientv3.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            c.Endpoints,
		Username:             c.User,
		Password:             c.Password,
		TLS:                  tc,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               ZapToHclog(log),
	})
	if err != nil {
		return nil, fmt.Errorf("connect: etcd %v: %w", c.Endpoints, err)
	}
	return cli, nil
}
