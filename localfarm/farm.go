package localfarm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// s3Region is the region the gateway reports.
const s3Region = "us-east-1"

// s3AccountsFile, in the data dir, holds the join tokens' S3 keys for the
// gateway (mode 0600).
const s3AccountsFile = "s3-accounts.json"

// Farm is one all-in-one farm. Build it with New and start it with Run.
type Farm struct {
	opts Options
	log  hclog.Logger

	ready chan struct{}
	mu    sync.Mutex
	creds wire.Credentials

	unlock func()
	// tls is nil when the farm serves plain text; caPEM is then empty.
	tls   *embedded.ServerTLS
	caPEM string
	nats  *embedded.NATS
	etcd  *embedded.Etcd
	s3    *embedded.S3
	s3Log *os.File
	// admin is an etcd client logged in as root (startAccess).
	admin *clientv3.Client
	// coord is the coordinator's login, local the join token of the local
	// nodes (startAccess).
	coord login
	local wire.JoinToken
}

// New fills defaults, checks opts and returns a Farm; it starts nothing.
func New(opts Options) (*Farm, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return &Farm{opts: opts, log: opts.Logger.Named("up"), ready: make(chan struct{})}, nil
}

// Ready is closed once every part serves and the credentials are written;
// it stays open when Run fails first, so wait on Run's result as well.
func (f *Farm) Ready() <-chan struct{} { return f.ready }

// Dir is the data directory.
func (f *Farm) Dir() string { return f.opts.Dir }

// Credentials are the endpoints (as others reach them) and secrets; valid after Ready.
func (f *Farm) Credentials() wire.Credentials {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.creds
	c.EtcdEndpoints = append([]string(nil), c.EtcdEndpoints...)
	return c
}

// NATSConfig reaches the embedded NATS from this machine as the admin;
// valid after Ready.
func (f *Farm) NATSConfig() connect.NATSConfig {
	return connect.NATSConfig{URL: f.nats.URL(), User: f.nats.User(), Password: f.nats.Password(), TLS: f.clientTLS()}
}

// EtcdConfig reaches the embedded etcd from this machine as root; valid
// after Ready.
func (f *Farm) EtcdConfig() connect.EtcdConfig {
	return connect.EtcdConfig{Endpoints: f.etcd.Endpoints(), User: f.etcd.User(), Password: f.etcd.Password(), TLS: f.clientTLS()}
}

// S3Config reaches the gateway from this machine with the root keys; valid
// after Ready.
func (f *Farm) S3Config() connect.S3Config {
	return connect.S3Config{Endpoint: f.s3.Endpoint(), AccessKey: f.s3.AccessKey(),
		SecretKey: f.s3.SecretKey(), Bucket: f.opts.Bucket, Region: s3Region, TLS: f.clientTLS()}
}

// Certs are the farm's CA and server certificate files; zero when the
// farm serves plain text. Valid after Ready.
func (f *Farm) Certs() Certs {
	if f.tls == nil {
		return Certs{}
	}
	return Certs{CAFile: f.tls.CAFile, CAKeyFile: f.path("tls", "ca-key.pem"), CertFile: f.tls.CertFile, KeyFile: f.tls.KeyFile}
}

// clientTLS trusts the farm's CA; zero when the farm serves plain text.
func (f *Farm) clientTLS() connect.TLSFiles {
	return connect.TLSFiles{CA: f.caPEM}
}

// Run starts the servers, the coordinator and the nodes, serves until ctx
// ends or a part fails, then shuts everything down in order. It returns nil
// on a clean shutdown.
func (f *Farm) Run(ctx context.Context) error {
	defer f.stopInfra()
	if err := f.startInfra(ctx); err != nil {
		return err
	}
	stopAccess, err := f.startAccess(ctx)
	if err != nil {
		return err
	}
	defer stopAccess()
	return f.runServices(ctx)
}

// startInfra prepares the data dir and credentials and starts NATS, etcd and
// the S3 gateway.
func (f *Farm) startInfra(ctx context.Context) error {
	o := f.opts
	for _, d := range []string{o.Dir, f.path("nats"), f.path("etcd"), f.path("s3"), f.path("logs"), f.path("cache"), f.path("models"), f.path("coordinator")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("localfarm: data dir: %w", err)
		}
	}
	unlock, err := lockDir(o.Dir)
	if err != nil {
		return err
	}
	f.unlock = unlock
	creds, created, err := loadOrCreateCredentials(o.Dir)
	if err != nil {
		return err
	}
	if created {
		// Written before any server starts: secrets must never change for a data dir.
		if err := saveCredentials(o.Dir, creds); err != nil {
			return err
		}
		f.log.Info("generated credentials", "file", f.path(wire.CredentialsFile))
	}
	if err := f.setupTLS(); err != nil {
		return err
	}
	if f.nats, err = embedded.StartNATS(embedded.NATSOptions{
		Host: o.Listen, Port: o.NATSPort, StoreDir: f.path("nats"), ServerName: "farm",
		User: creds.NATSUser, Password: creds.NATSPassword, Logger: o.Logger.Named("nats"),
		Monitor: monitorAddr(o.NATSMonitor), TLS: f.tls,
	}); err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	if f.etcd, err = embedded.StartEtcd(embedded.EtcdOptions{
		Dir: f.path("etcd"), Host: o.Listen, ClientPort: o.EtcdPort, PeerPort: o.EtcdPeerPort,
		RootPassword: creds.EtcdPassword, LogFile: f.path("logs", "etcd.log"), Logger: o.Logger.Named("etcd"),
		TLS: f.tls,
	}); err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	if err := f.startS3(ctx, creds); err != nil {
		return err
	}
	host := o.Advertise
	natsScheme, httpScheme := "nats", "http"
	if f.tls != nil {
		natsScheme, httpScheme = "tls", "https"
	}
	creds.NATSURL = natsScheme + "://" + net.JoinHostPort(host, strconv.Itoa(f.nats.Port()))
	creds.NATSToken = ""
	creds.EtcdUser = embedded.RootUser
	creds.EtcdEndpoints = []string{httpScheme + "://" + net.JoinHostPort(host, port(f.etcd.Endpoints()[0]))}
	creds.S3Endpoint = httpScheme + "://" + net.JoinHostPort(host, port(f.s3.Endpoint()))
	creds.S3Bucket, creds.S3Region, creds.S3UseTLS = o.Bucket, s3Region, f.tls != nil
	creds.CA = f.caPEM
	f.mu.Lock()
	f.creds = creds
	f.mu.Unlock()
	return nil
}

func (f *Farm) startS3(ctx context.Context, creds wire.Credentials) error {
	o := f.opts
	logFile, err := os.OpenFile(f.path("logs", "s3-gateway.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("localfarm: s3 log: %w", err)
	}
	f.s3Log = logFile
	addr := net.JoinHostPort(o.Listen, strconv.Itoa(o.S3Port))
	var command []string
	if !o.S3FromTestBinary {
		command = o.S3Command
	}
	if f.s3, err = embedded.StartS3(embedded.S3Options{Dir: f.path("s3"), Addr: addr,
		AccessKey: creds.S3AccessKey, SecretKey: creds.S3SecretKey, Command: command, Output: logFile,
		TLS: f.tls, AccountsFile: f.path(s3AccountsFile),
	}); err != nil {
		return fmt.Errorf("localfarm: %w (log: %s)", err, f.path("logs", "s3-gateway.log"))
	}
	cli, err := connect.S3(f.S3Config())
	if err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := connect.EnsureBucket(bctx, cli, o.Bucket, s3Region); err != nil {
		return fmt.Errorf("localfarm: bucket %s: %w", o.Bucket, err)
	}
	return nil
}

// setupTLS makes or reuses the farm's CA and server certificate when the
// farm serves TLS, and warns when it serves plain text on a public interface.
func (f *Farm) setupTLS() error {
	o := f.opts
	if o.TLS == TLSOff {
		if !isLoopback(o.Listen) {
			f.log.Warn("TLS is off on a public interface: secrets, tasks and frames cross the network in plain text",
				"listen", o.Listen)
		}
		return nil
	}
	certs, err := EnsureCerts(f.path("tls"), tlsHosts(o.Listen, o.Advertise, o.TLSSANs))
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(certs.CAFile)
	if err != nil {
		return fmt.Errorf("localfarm: tls: %w", err)
	}
	f.tls = &embedded.ServerTLS{CertFile: certs.CertFile, KeyFile: certs.KeyFile, CAFile: certs.CAFile}
	f.caPEM = string(ca)
	return nil
}

// stopInfra stops what startInfra started, the reverse of its order; safe
// to call twice.
func (f *Farm) stopInfra() {
	// 1. farm up's own etcd client.
	if f.admin != nil {
		f.admin.Close()
		f.admin = nil
	}
	// 2. The S3 gateway child: in-flight uploads finish, then it exits.
	if f.s3 != nil {
		f.s3.Close()
	}
	if f.s3Log != nil {
		f.s3Log.Close()
		f.s3Log = nil
	}
	// 3. etcd: clients drained, raft stopped, backend closed.
	if f.etcd != nil {
		f.etcd.Close()
	}
	// 4. NATS: JetStream flushes its store.
	if f.nats != nil {
		f.nats.Shutdown()
	}
	// 5. Release the data dir.
	if f.unlock != nil {
		f.unlock()
		f.unlock = nil
		f.log.Info("farm stopped")
	}
}

func (f *Farm) path(elem ...string) string {
	return filepath.Join(append([]string{f.opts.Dir}, elem...)...)
}

// port is the port of a URL or of host:port.
func port(s string) string {
	if u, err := url.Parse(s); err == nil && u.Port() != "" {
		return u.Port()
	}
	_, p, _ := net.SplitHostPort(s)
	return p
}

// errStopped reports a part that stopped while the farm should run.
var errStopped = errors.New("localfarm: stopped unexpectedly")

// monitorAddr is the NATS monitoring address of a setting ("" when off).
func monitorAddr(setting string) string {
	if setting == NATSMonitorOff {
		return ""
	}
	return setting
}

// NATSMonitorURL is the base URL of NATS's monitoring endpoint ("" when
// off or before the farm runs).
func (f *Farm) NATSMonitorURL() string {
	if f.nats == nil {
		return ""
	}
	return f.nats.MonitorURL()
}
