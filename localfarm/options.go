// Package localfarm runs a whole farm in one process for one machine: an
// embedded NATS with JetStream, an embedded etcd, the S3 gateway as a child
// process, the coordinator and N local nodes, with all data under one
// directory so that a restart continues where the last run stopped. It is
// what `farm up` runs. It generates the farm's credentials on first start,
// keeps its CA and certificates (TLS on every server unless it listens on
// loopback), gives the coordinator and every join token a login of its own
// that allows only their work (docs/SECURITY.md), and must never start
// anything that listens without credentials or print a secret.
package localfarm

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// Default ports of `farm up`.
const (
	DefaultAPIPort      = 8080
	DefaultNATSPort     = 4222
	DefaultEtcdPort     = 2379
	DefaultEtcdPeerPort = 2380
	DefaultS3Port       = 7070
	// DefaultNATSMonitor is NATS's monitoring endpoint (what KEDA's
	// JetStream scaler reads): loopback unless asked otherwise.
	DefaultNATSMonitor = "127.0.0.1:8222"
	// NATSMonitorOff as Options.NATSMonitor turns the endpoint off.
	NATSMonitorOff = "off"
	// DefaultBucket holds frames, manifests and the model store.
	DefaultBucket = "farm"
)

// Renderers a local node may use.
const (
	RendererEngine   = "engine"
	RendererLoadTest = "loadtest"
)

// Options configure a local farm. Zero values take the documented defaults.
type Options struct {
	// Dir holds everything: credentials.json, nats/, etcd/, s3/, logs/
	// (default $FARM_DATA or ./farm-data).
	Dir string
	// Nodes is the number of local nodes (0 runs none: remote nodes only).
	Nodes int
	// Listen is the interface every server binds (default 127.0.0.1; 0.0.0.0
	// lets nodes on other machines join).
	Listen string
	// Advertise is the host others use to reach this machine (default:
	// Listen, or this machine's first non-loopback address when Listen is
	// unspecified).
	Advertise string
	// TLS says whether every server (NATS, etcd, S3, the API) serves TLS
	// with certificates of the farm's own CA, made in Dir/tls (default
	// TLSAuto: on unless Listen is loopback).
	TLS TLSMode
	// TLSSANs are further host names or addresses the servers' certificate
	// names, beyond loopback, Listen, Advertise, this machine's name and its
	// addresses: a DNS name or a NAT address nodes use.
	TLSSANs []string
	// Ports; 0 takes the default port, or a free one with RandomPorts.
	APIPort, NATSPort, EtcdPort, EtcdPeerPort, S3Port int
	// NATSMonitor is host:port of NATS's monitoring endpoint (default
	// DefaultNATSMonitor, or a free loopback port with RandomPorts;
	// NATSMonitorOff turns it off).
	NATSMonitor string
	// RandomPorts picks free ports for every port left at 0 (tests).
	RandomPorts bool
	// Bucket is the S3 bucket of the farm (default "farm").
	Bucket string
	// Renderer of the local nodes: "engine" (default) or "loadtest".
	Renderer string
	// ModelsDir is where local nodes find and cache models (default Dir/models).
	ModelsDir string
	// S3Command is the argv of the S3 gateway child (default: this
	// executable with the hidden subcommand "s3-gateway", i.e. the farm binary).
	S3Command []string
	// S3FromTestBinary re-executes this executable without a subcommand as
	// the gateway child instead (tests: TestMain must call
	// embedded.RunChildIfRequested). It overrides S3Command.
	S3FromTestBinary bool
	// ConfigureNode, when set, adjusts the options of local node i (0-based)
	// before it is built: load-test delay, fingerprint, drain timeout.
	ConfigureNode func(i int, o *node.Options)
	// Logger is the parent logger (default: hclog at info on stderr).
	Logger hclog.Logger
}

// TLSMode says whether a farm serves TLS.
type TLSMode string

// TLS modes.
const (
	// TLSAuto is TLSOn unless Options.Listen is a loopback address.
	TLSAuto TLSMode = ""
	TLSOn   TLSMode = "on"
	// TLSOff serves plain text even on a public interface (farm up warns).
	TLSOff TLSMode = "off"
)

// ErrOptions marks invalid Options.
var ErrOptions = errors.New("localfarm: options")

func (o *Options) fill() error {
	if o.Dir == "" {
		o.Dir = wire.DataDir()
	}
	// Absolute: the S3 gateway child reads files in it from its own
	// working folder.
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("localfarm: data dir: %w", err)
	}
	o.Dir = dir
	if o.Listen == "" {
		o.Listen = "127.0.0.1"
	}
	if o.Advertise == "" {
		o.Advertise = advertiseHost(o.Listen)
	}
	if o.TLS == TLSAuto {
		o.TLS = TLSOn
		if isLoopback(o.Listen) {
			o.TLS = TLSOff
		}
	}
	fixed := func(p *int, def int) {
		if *p == 0 && !o.RandomPorts {
			*p = def
		}
	}
	fixed(&o.APIPort, DefaultAPIPort)
	fixed(&o.NATSPort, DefaultNATSPort)
	fixed(&o.EtcdPort, DefaultEtcdPort)
	fixed(&o.EtcdPeerPort, DefaultEtcdPeerPort)
	fixed(&o.S3Port, DefaultS3Port)
	if o.NATSMonitor == "" {
		o.NATSMonitor = DefaultNATSMonitor
		if o.RandomPorts {
			o.NATSMonitor = "127.0.0.1:0"
		}
	}
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.Renderer == "" {
		o.Renderer = RendererEngine
	}
	if o.ModelsDir == "" {
		o.ModelsDir = o.Dir + string(os.PathSeparator) + "models"
	}
	if len(o.S3Command) == 0 && !o.S3FromTestBinary {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("%w: find own executable for the s3 gateway: %w", ErrOptions, err)
		}
		o.S3Command = []string{exe, "s3-gateway"}
	}
	if o.Logger == nil {
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "farm", Level: hclog.Info})
	}
	return nil
}

func (o *Options) validate() error {
	var errs []error
	if o.Nodes < 0 {
		errs = append(errs, fmt.Errorf("nodes: %d is negative", o.Nodes))
	}
	if net.ParseIP(o.Listen) == nil && o.Listen != "localhost" {
		errs = append(errs, fmt.Errorf("listen: %q is not an IP address", o.Listen))
	}
	for name, p := range map[string]int{"api port": o.APIPort, "nats port": o.NATSPort,
		"etcd port": o.EtcdPort, "etcd peer port": o.EtcdPeerPort, "s3 port": o.S3Port} {
		if p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s: %d out of range", name, p))
		}
	}
	if o.NATSMonitor != NATSMonitorOff {
		if _, _, err := net.SplitHostPort(o.NATSMonitor); err != nil {
			errs = append(errs, fmt.Errorf("nats monitor: %q: want host:port or %s", o.NATSMonitor, NATSMonitorOff))
		}
	}
	if o.TLS != TLSOn && o.TLS != TLSOff {
		errs = append(errs, fmt.Errorf("tls: %q is neither %q nor %q", o.TLS, TLSOn, TLSOff))
	}
	if o.Renderer != RendererEngine && o.Renderer != RendererLoadTest {
		errs = append(errs, fmt.Errorf("renderer: %q is neither %q nor %q", o.Renderer, RendererEngine, RendererLoadTest))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrOptions, errors.Join(errs...))
	}
	return nil
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// advertiseHost is the host others reach a server bound to listen on.
func advertiseHost(listen string) string {
	ip := net.ParseIP(listen)
	if ip == nil || !ip.IsUnspecified() {
		return listen
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "127.0.0.1"
}
