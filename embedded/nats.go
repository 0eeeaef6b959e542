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
	"strings"
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
	// User and Password are the admin's login, allowed everything.
	// Required: nothing listens unauthenticated.
	User     string
	Password string
	// Users are further logins, each held to its own subjects; SetUsers
	// replaces them while the server runs.
	Users []NATSUser
	// TLS, when set, makes the client port TLS only: a plain-text client is
	// refused before it can log in.
	TLS *ServerTLS
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

// NATSUser is a login held to the subjects it may publish and subscribe to
// (NATS wildcards allowed). An empty list allows nothing.
type NATSUser struct {
	Name string
	// Password, or its bcrypt hash ($2a$...): the server keeps only hashes.
	Password  string
	Publish   []string
	Subscribe []string
}

// NATS is a running embedded NATS server with JetStream.
type NATS struct {
	srv      *natsserver.Server
	url      string
	user     string
	password string
	// base are the options the server started with; SetUsers reloads a
	// copy with other users.
	base  *natsserver.Options
	admin *natsserver.User
	mu    sync.Mutex
	once  sync.Once
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
	if err := opts.TLS.validate(ErrNATS); err != nil {
		return nil, err
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
		NoSigs:     true,
		NoLog:      opts.Logger == nil,
		MaxPayload: opts.MaxPayload,
	}
	admin, err := natsUser(NATSUser{Name: opts.User, Password: opts.Password})
	if err != nil {
		return nil, err
	}
	admin.Permissions = nil
	if so.Users, err = natsUsers(admin, opts.Users); err != nil {
		return nil, err
	}
	scheme := "nats"
	if opts.TLS.on() {
		if so.TLSConfig, err = natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{
			CertFile: opts.TLS.CertFile, KeyFile: opts.TLS.KeyFile}); err != nil {
			return nil, fmt.Errorf("%w: tls: %w", ErrNATS, err)
		}
		so.TLS, so.TLSTimeout, scheme = true, 5, "tls"
	}
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
		url:      scheme + "://" + net.JoinHostPort(host, strconv.Itoa(addr.Port)),
		user:     opts.User,
		password: opts.Password,
		base:     so.Clone(),
		admin:    admin,
	}, nil
}

// SetUsers replaces the logins besides the admin's, while the server runs:
// a client whose login is gone is disconnected, one whose subjects changed
// is held to the new ones.
func (n *NATS) SetUsers(users []NATSUser) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	o := n.base.Clone()
	var err error
	if o.Users, err = natsUsers(n.admin, users); err != nil {
		return err
	}
	if err := n.srv.ReloadOptions(o); err != nil {
		return fmt.Errorf("%w: reload users: %w", ErrNATS, err)
	}
	return nil
}

// natsUsers is the server's user list: admin first, then users.
func natsUsers(admin *natsserver.User, users []NATSUser) ([]*natsserver.User, error) {
	out := []*natsserver.User{admin}
	seen := map[string]bool{admin.Username: true}
	for _, u := range users {
		if seen[u.Name] {
			return nil, fmt.Errorf("%w: user %q given twice", ErrNATS, u.Name)
		}
		seen[u.Name] = true
		su, err := natsUser(u)
		if err != nil {
			return nil, err
		}
		out = append(out, su)
	}
	return out, nil
}

// natsUser hashes u's password unless it is a hash already. Minimum cost:
// the hash never leaves this process, and every connect pays for it
// (DefaultCost made connects time out under the race detector).
func natsUser(u NATSUser) (*natsserver.User, error) {
	if u.Name == "" || u.Password == "" {
		return nil, fmt.Errorf("%w: user %q: name and password are required", ErrNATS, u.Name)
	}
	hash := u.Password
	if !isBcrypt(hash) {
		h, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("%w: hash password: %w", ErrNATS, err)
		}
		hash = string(h)
	}
	return &natsserver.User{Username: u.Name, Password: hash, Permissions: &natsserver.Permissions{
		Publish: subjects(u.Publish), Subscribe: subjects(u.Subscribe)}}, nil
}

// subjects allows exactly allow: an empty list denies everything, where
// NATS would read it as no restriction.
func subjects(allow []string) *natsserver.SubjectPermission {
	if len(allow) == 0 {
		return &natsserver.SubjectPermission{Deny: []string{">"}}
	}
	return &natsserver.SubjectPermission{Allow: append([]string(nil), allow...)}
}

// isBcrypt reports whether s is a bcrypt hash, as the NATS server tells.
func isBcrypt(s string) bool { return strings.HasPrefix(s, "$2") }

// URL is the address clients on this machine use (no credentials in it):
// tls:// with TLS, nats:// without.
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
