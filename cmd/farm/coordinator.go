package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/coordinator"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
)

func init() {
	register("coordinator", "run the coordinator: job API, task publishing, results, leader election", runCoordinator)
}

// coordinatorConfig is the --config file (JSON); flags and environment
// variables override it.
type coordinatorConfig struct {
	Listen       string             `json:"listen,omitempty"`
	Advertise    string             `json:"advertise_url,omitempty"`
	Token        string             `json:"token,omitempty"`
	TLSCertFile  string             `json:"tls_cert_file,omitempty"`
	TLSKeyFile   string             `json:"tls_key_file,omitempty"`
	NATS         connect.NATSConfig `json:"nats"`
	Etcd         connect.EtcdConfig `json:"etcd"`
	S3           connect.S3Config   `json:"s3"`
	AckWait      string             `json:"ack_wait,omitempty"`
	MaxNodeFails int                `json:"max_node_failures,omitempty"`
}

// coordFlags are the flags of farm coordinator.
type coordFlags struct {
	configFile, listen, advertise, token, tlsCert, tlsKey, creds string
	natsURL, natsUser, natsPass, natsToken, natsCreds            string
	etcd, etcdUser, etcdPass                                     string
	s3Endpoint, s3Access, s3Secret, s3Bucket, s3Region           string
	natsTLS, etcdTLS, s3TLS                                      connect.TLSFiles
	s3UseTLS                                                     bool
	ackWait                                                      time.Duration
	maxNodeFails                                                 int
	logLevel                                                     string
	logJSON                                                      bool
}

func (f *coordFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.configFile, "config", os.Getenv("FARM_COORDINATOR_CONFIG"), "JSON config file ($FARM_COORDINATOR_CONFIG)")
	fs.StringVar(&f.creds, "credentials", "", "read endpoints and secrets from a farm up "+wire.CredentialsFile)
	fs.StringVar(&f.listen, "listen", envOr("FARM_LISTEN", ""), "API address ($FARM_LISTEN, default 127.0.0.1:8080)")
	fs.StringVar(&f.advertise, "advertise", envOr("FARM_ADVERTISE_URL", ""), "API URL as clients reach it ($FARM_ADVERTISE_URL)")
	fs.StringVar(&f.token, "token", envOr("FARM_TOKEN", ""), "API bearer token ($FARM_TOKEN)")
	fs.StringVar(&f.tlsCert, "tls-cert", envOr("FARM_TLS_CERT", ""), "serve the API over HTTPS with this certificate")
	fs.StringVar(&f.tlsKey, "tls-key", envOr("FARM_TLS_KEY", ""), "key of --tls-cert")
	fs.StringVar(&f.natsURL, "nats-url", envOr("FARM_NATS_URL", ""), "NATS URL ($FARM_NATS_URL)")
	fs.StringVar(&f.natsUser, "nats-user", envOr("FARM_NATS_USER", ""), "NATS user ($FARM_NATS_USER)")
	fs.StringVar(&f.natsPass, "nats-password", envOr("FARM_NATS_PASSWORD", ""), "NATS password ($FARM_NATS_PASSWORD)")
	fs.StringVar(&f.natsToken, "nats-token", envOr("FARM_NATS_TOKEN", ""), "NATS token ($FARM_NATS_TOKEN)")
	fs.StringVar(&f.natsCreds, "nats-creds", envOr("FARM_NATS_CREDS", ""), "NATS .creds file ($FARM_NATS_CREDS)")
	tlsFlags(fs, "nats", &f.natsTLS)
	fs.StringVar(&f.etcd, "etcd", envOr("FARM_ETCD_ENDPOINTS", ""), "comma-separated etcd endpoints ($FARM_ETCD_ENDPOINTS)")
	fs.StringVar(&f.etcdUser, "etcd-user", envOr("FARM_ETCD_USER", ""), "etcd user ($FARM_ETCD_USER)")
	fs.StringVar(&f.etcdPass, "etcd-password", envOr("FARM_ETCD_PASSWORD", ""), "etcd password ($FARM_ETCD_PASSWORD)")
	tlsFlags(fs, "etcd", &f.etcdTLS)
	fs.StringVar(&f.s3Endpoint, "s3-endpoint", envOr("FARM_S3_ENDPOINT", ""), "S3 endpoint, host:port or URL ($FARM_S3_ENDPOINT)")
	fs.StringVar(&f.s3Access, "s3-access-key", envOr("FARM_S3_ACCESS_KEY", ""), "S3 access key ($FARM_S3_ACCESS_KEY)")
	fs.StringVar(&f.s3Secret, "s3-secret-key", envOr("FARM_S3_SECRET_KEY", ""), "S3 secret key ($FARM_S3_SECRET_KEY)")
	fs.StringVar(&f.s3Bucket, "s3-bucket", envOr("FARM_S3_BUCKET", ""), "S3 bucket ($FARM_S3_BUCKET)")
	fs.StringVar(&f.s3Region, "s3-region", envOr("FARM_S3_REGION", ""), "S3 region ($FARM_S3_REGION)")
	fs.BoolVar(&f.s3UseTLS, "s3-tls", false, "use HTTPS for a host:port S3 endpoint")
	tlsFlags(fs, "s3", &f.s3TLS)
	fs.DurationVar(&f.ackWait, "ack-wait", 0, "how long a silent node keeps a task before redelivery (default 30s)")
	fs.IntVar(&f.maxNodeFails, "max-node-failures", 0, "fail a task after it failed on this many nodes (default 3)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log as JSON")
}

// config merges the config file, a credentials file, and flags (whose
// defaults come from the environment), later ones winning.
func (f *coordFlags) config() (coordinatorConfig, error) {
	var cfg coordinatorConfig
	if f.configFile != "" {
		data, err := os.ReadFile(f.configFile)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", f.configFile, err)
		}
	}
	if f.creds != "" {
		c, err := wire.ReadCredentials(f.creds)
		if err != nil {
			return cfg, err
		}
		cfg.Token = c.Token
		cfg.NATS = connect.NATSConfig{URL: c.NATSURL, User: c.NATSUser, Password: c.NATSPassword, Token: c.NATSToken}
		cfg.Etcd = connect.EtcdConfig{Endpoints: c.EtcdEndpoints, User: c.EtcdUser, Password: c.EtcdPassword}
		cfg.S3 = connect.S3Config{Endpoint: c.S3Endpoint, AccessKey: c.S3AccessKey, SecretKey: c.S3SecretKey,
			Bucket: c.S3Bucket, Region: c.S3Region, UseTLS: c.S3UseTLS}
	}
	over := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	over(&cfg.Listen, f.listen)
	over(&cfg.Advertise, f.advertise)
	over(&cfg.Token, f.token)
	over(&cfg.TLSCertFile, f.tlsCert)
	over(&cfg.TLSKeyFile, f.tlsKey)
	over(&cfg.NATS.URL, f.natsURL)
	over(&cfg.NATS.User, f.natsUser)
	over(&cfg.NATS.Password, f.natsPass)
	over(&cfg.NATS.Token, f.natsToken)
	over(&cfg.NATS.CredsFile, f.natsCreds)
	overTLS(&cfg.NATS.TLS, f.natsTLS)
	if f.etcd != "" {
		cfg.Etcd.Endpoints = strings.Split(f.etcd, ",")
	}
	over(&cfg.Etcd.User, f.etcdUser)
	over(&cfg.Etcd.Password, f.etcdPass)
	overTLS(&cfg.Etcd.TLS, f.etcdTLS)
	over(&cfg.S3.Endpoint, f.s3Endpoint)
	over(&cfg.S3.AccessKey, f.s3Access)
	over(&cfg.S3.SecretKey, f.s3Secret)
	over(&cfg.S3.Bucket, f.s3Bucket)
	over(&cfg.S3.Region, f.s3Region)
	overTLS(&cfg.S3.TLS, f.s3TLS)
	cfg.S3.UseTLS = cfg.S3.UseTLS || f.s3UseTLS
	if cfg.AckWait != "" && f.ackWait == 0 {
		d, err := time.ParseDuration(cfg.AckWait)
		if err != nil {
			return cfg, fmt.Errorf("config: ack_wait: %w", err)
		}
		f.ackWait = d
	}
	if f.maxNodeFails != 0 {
		cfg.MaxNodeFails = f.maxNodeFails
	}
	return cfg, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func runCoordinator(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm coordinator [flags]\n\n"+
			"Runs a coordinator against NATS (JetStream), etcd and an S3 store. Each setting comes\n"+
			"from the first of: flags, environment variables, the credentials file of --credentials\n"+
			"(a farm up data dir), and --config (JSON). Several coordinators may run: one leads,\n"+
			"the others wait and refer clients to it.\n\n")
		fs.PrintDefaults()
	}
	var f coordFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	logger, err := newLogger(f.logLevel, f.logJSON)
	if err != nil {
		return err
	}
	c, err := coordinator.New(coordinator.Options{
		NATS: cfg.NATS, Etcd: cfg.Etcd, S3: cfg.S3,
		Streams: connect.StreamOptions{AckWait: f.ackWait},
		Listen:  cfg.Listen, AdvertiseURL: cfg.Advertise, Token: cfg.Token,
		TLSCertFile: cfg.TLSCertFile, TLSKeyFile: cfg.TLSKeyFile,
		MaxNodeFailures: cfg.MaxNodeFails,
		Logger:          logger,
	})
	if err != nil {
		return usagef("%v", err)
	}
	return c.Run(ctx)
}

// tlsFlags registers --<prefix>-ca, -cert, -key and -tls.
func tlsFlags(fs *flag.FlagSet, prefix string, t *connect.TLSFiles) {
	up := strings.ToUpper(prefix)
	fs.StringVar(&t.CAFile, prefix+"-ca", envOr("FARM_"+up+"_CA", ""), prefix+" TLS CA file ($FARM_"+up+"_CA)")
	fs.StringVar(&t.CertFile, prefix+"-cert", envOr("FARM_"+up+"_CERT", ""), prefix+" TLS client certificate ($FARM_"+up+"_CERT)")
	fs.StringVar(&t.KeyFile, prefix+"-key", envOr("FARM_"+up+"_KEY", ""), prefix+" TLS client key ($FARM_"+up+"_KEY)")
	if prefix != "s3" {
		fs.BoolVar(&t.Enable, prefix+"-tls", false, "use TLS to "+prefix+" with the system roots")
	}
}

func overTLS(dst *connect.TLSFiles, v connect.TLSFiles) {
	if v.CAFile != "" {
		dst.CAFile = v.CAFile
	}
	if v.CertFile != "" {
		dst.CertFile, dst.KeyFile = v.CertFile, v.KeyFile
	}
	dst.Enable = dst.Enable || v.Enable
}
