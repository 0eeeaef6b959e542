// Package embedded runs the farm's infrastructure inside one program: a NATS
// server with JetStream, a single-member etcd and, in a child process, the
// Versity S3 gateway over a local directory. `farm up` and the test helpers in
// shared/farmtest build on it. It must never start anything that listens
// without credentials (etcd is bound to loopback when it runs without auth),
// and it never imports the coordinator, the node or the engine.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

// NATSOptions configures an embedded NATS server.
type NATSOptions struct {
	// Host is the interface to listen on; empty means 127.0.0.1.
	Host string
	// Port is the client port; 0 picks a free port.
	Port int
	// StoreDir holds JetStream's files. Required: JetStream is always on.
	StoreDir string
	// User and Password are required from every client.
	User     string
	Password string
	// ServerName names the server; keep it stable across restarts.
	ServerName string
	// Monitor, when set, is the host:port of NATS's HTTP monitoring
	// endpoint (/varz, /jsz: what KEDA's JetStream scaler reads); port 0
	// picks a free one (see MonitorURL).
	Monitor string
	// MaxPayload caps one message in bytes; 0 keeps the server default (1 MiB).
	MaxPayload int32
	// Logger receives the server's log; nil means silent.
	Logger hclog.Logger
	// ReadyTimeout bounds the wait for the server to accept clients (default 10s).
	ReadyTimeout time.Duration
}

// NATS is a running embedded NATS server with JetStream.
type NATS struct {
	srv      *natsserver.Server
	url      string
	user     string
	password string
	once     sync.Once
}

// ErrNATS marks errors from the embedded NATS server.
var ErrNATS = errors.New("embedded nats")

// StartNATS validates opts, starts the server and waits until it accepts clients.
func StartNATS(opts NATSOptions) (*NATS, error) {
	if opts.StoreDir == "" {
		return nil, fmt.Errorf("%w: StoreDir is required", ErrNATS)
	}
	if opts.User == "" || opts.Password == "" {
		return nil, fmt.Errorf("%w: User and Password are required (nothing listens unauthenticated)", ErrNATS)
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d out of range", ErrNATS, opts.Port)
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 10 * time.Second
	}
	port := opts.Port
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	so := &natsserver.Options{
		ServerName: opts.ServerName,
		Host:       opts.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		Username:   opts.User,
		Password:   opts.Password,
		NoSigs:     true,
		NoLog:      opts.Logger == nil,
		MaxPayload: opts.MaxPayload,
	}
	// The server keeps only a bcrypt hash of the password (and does not warn
	// about a plaintext one). Minimum cost: the hash never leaves this
	// process, and every connect pays for it (DefaultCost made connects time
	// out under the race detector).
	hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("%w: hash password: %w", ErrNATS, err)
	}
	so.Password = string(hash)
	if opts.Monitor != "" {
		host, portStr, err := net.SplitHostPort(opts.Monitor)
		mport, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil || mport < 0 || mport > 65535 {
			return nil, fmt.Errorf("%w: monitor address %q: want host:port", ErrNATS, opts.Monitor)
		}
		if mport == 0 {
			mport = natsserver.RANDOM_PORT
		}
		so.HTTPHost, so.HTTPPort = host, mport
	}
	srv, err := natsserver.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNATS, err)
	}
	if opts.Logger != nil {
		srv.SetLoggerV2(natsLogger{opts.Logger}, false, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(opts.ReadyTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("%w: not ready to accept clients on %s:%d after %s", ErrNATS, opts.Host, opts.Port, opts.ReadyTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("%w: jetstream did not start (store dir %s)", ErrNATS, opts.StoreDir)
	}
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		return nil, fmt.Errorf("%w: unexpected listener address %v", ErrNATS, srv.Addr())
	}
	host := opts.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return &NATS{
		srv:      srv,
		url:      "nats://" + net.JoinHostPort(host, strconv.Itoa(addr.Port)),
		user:     opts.User,
		password: opts.Password,
	}, nil
}

// URL is the nats:// address clients on this machine use (no credentials in it).
func (n *NATS) URL() string { return n.url }

// Port is the client port the server listens on.
func (n *NATS) Port() int { return n.srv.Addr().(*net.TCPAddr).Port }

// User is the user name clients must present.
func (n *NATS) User() string { return n.user }

// MonitorURL is the base URL of the monitoring endpoint ("" when off).
func (n *NATS) MonitorURL() string {
	addr := n.srv.MonitorAddr()
	if addr == nil {
		return ""
	}
	return "http://" + addr.String()
}

// Password is the password clients must present.
func (n *NATS) Password() string { return n.password }

// Server exposes the underlying server for tests that need its internals.
func (n *NATS) Server() *natsserver.Server { return n.srv }

// Shutdown stops the server and waits until it is down; safe to call twice.
func (n *NATS) Shutdown() {
	n.once.Do(func() {
		// 1. Stop accepting clients and close them; JetStream flushes its stores.
		n.srv.Shutdown()
		// 2. Wait for every server goroutine to finish.
		n.srv.WaitForShutdown()
	})
}

// natsLogger adapts an hclog.Logger to the nats-server logger interface.
type natsLogger struct{ log hclog.Logger }

// Noticef logs at debug: NATS notices are mostly its start-up banner.
func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Trace(fmt.Sprintf(format, v...)) }
