package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/connect"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EtcdOptions configures an embedded single-member etcd.
type EtcdOptions struct {
	// Dir is etcd's data directory. Required.
	Dir string
	// Name is the member name (default "farm"); keep it stable across restarts.
	Name string
	// Host is the interface clients reach; empty means 127.0.0.1. Anything
	// other than loopback requires RootPassword.
	Host string
	// ClientPort and PeerPort: 0 picks free ports. The peer port always binds loopback.
	ClientPort int
	PeerPort   int
	// RootPassword, when set, turns on etcd auth with user "root": every
	// client must log in. It must stay the same across restarts of one Dir.
	RootPassword string
	// TLS, when set, serves the client and the peer URLs over TLS only;
	// peers must present a certificate signed by TLS.CAFile.
	TLS *ServerTLS
	// LogFile receives etcd's server log at level warn, in place of Logger.
	LogFile string
	// Logger receives the server's warnings and errors (unless LogFile is
	// set), those of the clients made here, and what the defragmentation
	// loop did; nil means silent.
	Logger hclog.Logger
	// CompactionRetention is how long superseded key revisions are kept
	// (etcd's periodic auto-compaction; default 5m, negative turns it off).
	// etcd samples the revision every tenth of it and, once per retention
	// (at most hourly), compacts to the revision current one retention ago:
	// old history lives between one and about two retentions. Watchers that
	// fall that far behind get ErrCompacted and must re-list.
	CompactionRetention time.Duration
	// DefragInterval is how often the member checks whether defragmenting
	// is worth it (default 10m, negative turns the loop off). Compaction
	// frees pages inside the db file; only a defragmentation, which blocks
	// reads and writes while it rewrites the file, gives them back. etcd
	// counts the pages a compaction freed only once a later write commits,
	// so an idle member is defragmented after its next write.
	DefragInterval time.Duration
	// DefragMinFree is the free part of the db file, in bytes, below which
	// the loop does not defragment (default 64 MiB); the free part must
	// also be at least half the file.
	DefragMinFree int64
	// ReadyTimeout bounds the wait for the member to serve (default 30s).
	ReadyTimeout time.Duration
}

// Defaults for EtcdOptions.
const (
	DefaultCompactionRetention = 5 * time.Minute
	DefaultDefragInterval      = 10 * time.Minute
	DefaultDefragMinFree       = 64 << 20
)

// Etcd is a running embedded etcd member.
type Etcd struct {
	e         *embed.Etcd
	endpoints []string
	user      string
	password  string
	tls       *tls.Config
	log       hclog.Logger
	clientLog *zap.Logger
	// closing quiets the server's complaints about its listeners closing.
	closing *atomic.Bool
	once    sync.Once

	// maint is the client for Usage and defragmentation; maintMu keeps
	// one maintenance pass at a time.
	maint         *clientv3.Client
	maintMu       sync.Mutex
	defragMinFree int64
	stopDefrag    context.CancelFunc
	defragDone    chan struct{}
}

// ErrEtcd marks errors from the embedded etcd.
var ErrEtcd = errors.New("embedded etcd")

// RootUser is the etcd user created when auth is on.
const RootUser = "root"

// StartEtcd validates opts, starts the member, waits until it serves and,
// when RootPassword is set, makes sure auth is on with that root password.
func StartEtcd(opts EtcdOptions) (*Etcd, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("%w: Dir is required", ErrEtcd)
	}
	if opts.Name == "" {
		opts.Name = "farm"
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.CompactionRetention == 0 {
		opts.CompactionRetention = DefaultCompactionRetention
	}
	if opts.DefragInterval == 0 {
		opts.DefragInterval = DefaultDefragInterval
	}
	if opts.DefragMinFree <= 0 {
		opts.DefragMinFree = DefaultDefragMinFree
	}
	if opts.RootPassword == "" && !isLoopback(opts.Host) {
		return nil, fmt.Errorf("%w: host %q is not loopback: set RootPassword so etcd does not listen unauthenticated", ErrEtcd, opts.Host)
	}
	if err := opts.TLS.validate(ErrEtcd); err != nil {
		return nil, err
	}
	var lastErr error
	// Free ports picked by us can be taken before etcd binds them: retry a few times.
	for attempt := 0; attempt < 3; attempt++ {
		e, err := startEtcdOnce(opts)
		if err == nil {
			return e, nil
		}
		lastErr = err
		if opts.ClientPort != 0 && opts.PeerPort != 0 {
			break
		}
	}
	return nil, lastErr
}

func startEtcdOnce(opts EtcdOptions) (*Etcd, error) {
	clientPort, peerPort := opts.ClientPort, opts.PeerPort
	var err error
	if clientPort == 0 {
		if clientPort, err = freePort(opts.Host); err != nil {
			return nil, fmt.Errorf("%w: client port: %w", ErrEtcd, err)
		}
	}
	if peerPort == 0 {
		if peerPort, err = freePort("127.0.0.1"); err != nil {
			return nil, fmt.Errorf("%w: peer port: %w", ErrEtcd, err)
		}
	}
	cfg := embed.NewConfig()
	cfg.Name = opts.Name
	cfg.Dir = opts.Dir
	scheme := opts.TLS.scheme()
	listenClient := url.URL{Scheme: scheme, Host: net.JoinHostPort(opts.Host, strconv.Itoa(clientPort))}
	advertiseClient := url.URL{Scheme: scheme, Host: net.JoinHostPort(dialHost(opts.Host), strconv.Itoa(clientPort))}
	peer := url.URL{Scheme: scheme, Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}
	if opts.TLS.on() {
		t := opts.TLS
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile}
		cfg.PeerTLSInfo = transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile,
			TrustedCAFile: t.CAFile, ClientCertAuth: true}
	}
	clientTLS, err := opts.TLS.clientConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: tls: %w", ErrEtcd, err)
	}
	cfg.ListenClientUrls = []url.URL{listenClient}
	cfg.AdvertiseClientUrls = []url.URL{advertiseClient}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = opts.Name + "=" + peer.String()
	cfg.InitialClusterToken = "latentfarm-" + opts.Name
	cfg.ListenMetricsUrls = nil
	// Keep the store small on a long-running farm: a coordinator rewrites
	// job state records every second or so, and each write is a revision.
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "0" // off
	if opts.CompactionRetention > 0 {
		// A bare integer would read as hours: always give the unit.
		cfg.AutoCompactionRetention = opts.CompactionRetention.String()
	}
	closing := new(atomic.Bool)
	if opts.LogFile != "" {
		cfg.Logger = "zap"
		cfg.LogLevel = "warn"
		cfg.LogOutputs = []string{opts.LogFile}
	} else {
		// The bridge passes warnings and errors only: etcd's server logs
		// every start, election and compaction at info.
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(quietLogger(connect.ZapToHclog(opts.Logger), closing))
	}
	clientLog := connect.ZapToHclog(opts.Logger.Named("client"))
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: start: %w", ErrEtcd, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("%w: %w", ErrEtcd, err)
	case <-time.After(opts.ReadyTimeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("%w: not ready after %s (data dir %s)", ErrEtcd, opts.ReadyTimeout, opts.Dir)
	}
	out := &Etcd{e: e, endpoints: []string{advertiseClient.String()}, tls: clientTLS,
		log: opts.Logger, clientLog: clientLog, closing: closing, defragMinFree: opts.DefragMinFree}
	if opts.RootPassword != "" {
		if err := ensureAuth(out.endpoints, opts.RootPassword, clientTLS); err != nil {
			out.Close()
			return nil, err
		}
		out.user, out.password = RootUser, opts.RootPassword
	}
	if out.maint, err = clientv3.New(out.ClientConfig()); err != nil {
		out.Close()
		return nil, fmt.Errorf("%w: maintenance client: %w", ErrEtcd, err)
	}
	if opts.DefragInterval > 0 {
		out.startDefragLoop(opts.DefragInterval)
	}
	return out, nil
}

// ensureAuth turns etcd auth on with the given root password, or checks
// that it already is.
func ensureAuth(endpoints []string, password string, tc *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Logging in works whether auth is on (checks the password) or off.
	// Its client logs nothing: on a new data dir its first login warns that
	// auth is off, which is what this function is here to change; what
	// goes wrong is in the error it returns.
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, Username: RootUser, Password: password,
		TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("%w: log in as root (is RootPassword the one this data dir was created with?): %w", ErrEtcd, err)
	}
	defer c.Close()
	st, err := c.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("%w: auth status: %w", ErrEtcd, err)
	}
	if st.Enabled {
		if _, err := c.Get(ctx, "latentfarm-auth-probe"); err != nil {
			return fmt.Errorf("%w: auth check as root: %w", ErrEtcd, err)
		}
		return nil
	}
	// 1. root user (an earlier start may have created it before crashing).
	if _, err := c.UserAdd(ctx, RootUser, password); errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		if _, err := c.UserChangePassword(ctx, RootUser, password); err != nil {
			return fmt.Errorf("%w: set root password: %w", ErrEtcd, err)
		}
	} else if err != nil {
		return fmt.Errorf("%w: add root user: %w", ErrEtcd, err)
	}
	// 2. root role, granted to root.
	if _, err := c.RoleAdd(ctx, RootUser); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return fmt.Errorf("%w: add root role: %w", ErrEtcd, err)
	}
	if _, err := c.UserGrantRole(ctx, RootUser, RootUser); err != nil {
		return fmt.Errorf("%w: grant root role: %w", ErrEtcd, err)
	}
	// 3. auth on.
	if _, err := c.AuthEnable(ctx); err != nil {
		return fmt.Errorf("%w: enable auth: %w", ErrEtcd, err)
	}
	return nil
}

// Endpoints are the client URLs.
func (e *Etcd) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// User is the user clients log in as; empty when auth is off.
func (e *Etcd) User() string { return e.user }

// Password is the root password; empty when auth is off.
func (e *Etcd) Password() string { return e.password }

// ClientConfig is a clientv3 configuration for this member, with credentials.
func (e *Etcd) ClientConfig() clientv3.Config {
	return clientv3.Config{Endpoints: e.Endpoints(), Username: e.user, Password: e.password,
		TLS: e.tls, DialTimeout: 5 * time.Second, Logger: e.clientLog}
}

// Close stops the defragmentation loop and the member and waits for both;
// safe to call twice.
func (e *Etcd) Close() {
	e.once.Do(func() {
		// 1. Stop the defragmentation loop; a pass under way is cancelled.
		if e.stopDefrag != nil {
			e.stopDefrag()
			<-e.defragDone
		}
		// 2. Close the maintenance client while the member still answers.
		if e.maint != nil {
			e.maint.Close()
		}
		// 3. embed.Etcd.Close drains clients, stops raft and closes the backend.
		e.closing.Store(true)
		e.e.Close()
	})
}

// freePort asks the kernel for a free TCP port on host.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dialHost turns a listen host into one a local client can dial.
func dialHost(host string) string {
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "127.0.0.1"
	}
	return host
}
