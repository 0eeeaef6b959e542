package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
)

func init() {
	register("node", "run a render node: register, pull tasks it can run, render, upload frames", runNode)
}

// nodeConfig is the --config file (JSON) of farm node; environment
// variables and flags override it.
type nodeConfig struct {
	ID              string             `json:"id,omitempty"`
	Labels          map[string]string  `json:"labels,omitempty"`
	PricePerHour    float64            `json:"price_per_hour,omitempty"`
	Currency        string             `json:"currency,omitempty"`
	NATS            connect.NATSConfig `json:"nats"`
	Etcd            connect.EtcdConfig `json:"etcd"`
	S3              connect.S3Config   `json:"s3"`
	ModelsDir       string             `json:"models_dir,omitempty"`
	CacheDir        string             `json:"cache_dir,omitempty"`
	Renderer        string             `json:"renderer,omitempty"`
	LoadTestDelay   string             `json:"loadtest_delay,omitempty"`
	VRAMGiB         float64            `json:"vram_gib,omitempty"`
	MaxLoadedModels int                `json:"max_loaded_models,omitempty"`
	FFmpeg          string             `json:"ffmpeg,omitempty"`
	MetricsListen   string             `json:"metrics_listen,omitempty"`
	Backend         string             `json:"backend,omitempty"`
	Device          *int               `json:"device,omitempty"`
	DrainTimeout    string             `json:"drain_timeout,omitempty"`
	LeaseTTL        string             `json:"lease_ttl,omitempty"`
}

// connFlags are the connection flags shared by farm node and farm model.
type connFlags struct {
	creds                                              string
	natsURL, natsUser, natsPass, natsToken, natsCreds  string
	etcd, etcdUser, etcdPass                           string
	s3Endpoint, s3Access, s3Secret, s3Bucket, s3Region string
	natsTLS, etcdTLS, s3TLS                            connect.TLSFiles
	s3UseTLS                                           bool
}

func (f *connFlags) registerS3(fs *flag.FlagSet) {
	fs.StringVar(&f.creds, "credentials", envOr("FARM_CREDENTIALS", ""),
		"farm data dir whose "+wire.CredentialsFile+" gives endpoints and secrets ($FARM_CREDENTIALS; default: $FARM_DATA or ./"+wire.DefaultDataDir+" when it has one)")
	fs.StringVar(&f.s3Endpoint, "s3-endpoint", envOr("FARM_S3_ENDPOINT", ""), "S3 endpoint, host:port or URL ($FARM_S3_ENDPOINT)")
	fs.StringVar(&f.s3Access, "s3-access-key", envOr("FARM_S3_ACCESS_KEY", ""), "S3 access key ($FARM_S3_ACCESS_KEY)")
	fs.StringVar(&f.s3Secret, "s3-secret-key", envOr("FARM_S3_SECRET_KEY", ""), "S3 secret key ($FARM_S3_SECRET_KEY)")
	fs.StringVar(&f.s3Bucket, "s3-bucket", envOr("FARM_S3_BUCKET", ""), "S3 bucket ($FARM_S3_BUCKET)")
	fs.StringVar(&f.s3Region, "s3-region", envOr("FARM_S3_REGION", ""), "S3 region ($FARM_S3_REGION)")
	fs.BoolVar(&f.s3UseTLS, "s3-tls", false, "use HTTPS for a host:port S3 endpoint")
	tlsFlags(fs, "s3", &f.s3TLS)
}

func (f *connFlags) registerAll(fs *flag.FlagSet) {
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
	f.registerS3(fs)
}

// apply fills n, s and e from the credentials file (the named one, or the
// default data dir's when it exists), then overrides them with the flags.
func (f *connFlags) apply(n *connect.NATSConfig, e *connect.EtcdConfig, s *connect.S3Config) error {
	dir := f.creds
	if dir == "" {
		if _, err := os.Stat(filepath.Join(wire.DataDir(), wire.CredentialsFile)); err == nil {
			dir = wire.DataDir()
		}
	}
	if dir != "" {
		c, err := wire.ReadCredentials(dir)
		if err != nil {
			return err
		}
		fillEmpty(&n.URL, c.NATSURL)
		fillEmpty(&n.User, c.NATSUser)
		fillEmpty(&n.Password, c.NATSPassword)
		fillEmpty(&n.Token, c.NATSToken)
		if len(e.Endpoints) == 0 {
			e.Endpoints = c.EtcdEndpoints
		}
		fillEmpty(&e.User, c.EtcdUser)
		fillEmpty(&e.Password, c.EtcdPassword)
		fillEmpty(&s.Endpoint, c.S3Endpoint)
		fillEmpty(&s.AccessKey, c.S3AccessKey)
		fillEmpty(&s.SecretKey, c.S3SecretKey)
		fillEmpty(&s.Bucket, c.S3Bucket)
		fillEmpty(&s.Region, c.S3Region)
		s.UseTLS = s.UseTLS || c.S3UseTLS
	}
	over := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	over(&n.URL, f.natsURL)
	over(&n.User, f.natsUser)
	over(&n.Password, f.natsPass)
	over(&n.Token, f.natsToken)
	over(&n.CredsFile, f.natsCreds)
	overTLS(&n.TLS, f.natsTLS)
	if f.etcd != "" {
		e.Endpoints = strings.Split(f.etcd, ",")
	}
	over(&e.User, f.etcdUser)
	over(&e.Password, f.etcdPass)
	overTLS(&e.TLS, f.etcdTLS)
	over(&s.Endpoint, f.s3Endpoint)
	over(&s.AccessKey, f.s3Access)
	over(&s.SecretKey, f.s3Secret)
	over(&s.Bucket, f.s3Bucket)
	over(&s.Region, f.s3Region)
	overTLS(&s.TLS, f.s3TLS)
	s.UseTLS = s.UseTLS || f.s3UseTLS
	return nil
}

// fillEmpty sets *dst to v when *dst is empty: a config file wins over the
// credentials file.
func fillEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// nodeFlags are the flags of farm node beyond the connections.
type nodeFlags struct {
	conn                                  connFlags
	configFile, id, labels, price         string
	modelsDir, cacheDir, renderer, ffmpeg string
	metricsListen                         string
	compute                               backendFlags
	loadtestDelay, drainTimeout, leaseTTL string
	vramGiB, maxLoaded                    string
	logLevel                              string
	logJSON                               bool
}

func (f *nodeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.configFile, "config", os.Getenv("FARM_NODE_CONFIG"), "JSON config file ($FARM_NODE_CONFIG)")
	fs.StringVar(&f.id, "id", envOr("FARM_NODE_ID", ""), "node id ($FARM_NODE_ID; default: host name and a random suffix)")
	fs.StringVar(&f.labels, "labels", envOr("FARM_NODE_LABELS", ""), "labels shown in farm nodes, k=v,k=v ($FARM_NODE_LABELS)")
	fs.StringVar(&f.price, "price-per-hour", envOr("FARM_PRICE_PER_HOUR", ""), "cost of the node per hour, in the config's currency (default USD): jobs, frames and manifests show what they cost ($FARM_PRICE_PER_HOUR)")
	f.conn.registerAll(fs)
	f.compute.register(fs)
	fs.StringVar(&f.modelsDir, "models", envOr("FARM_MODELS", ""), "local models folder: NAME/ (diffusers) or NAME.safetensors ($FARM_MODELS)")
	fs.StringVar(&f.cacheDir, "cache", envOr("FARM_CACHE", ""), "folder for models fetched from the model store ($FARM_CACHE; default: the user cache dir)")
	fs.StringVar(&f.renderer, "renderer", envOr("FARM_RENDERER", ""), "engine (default) or loadtest: fixed time per image, tiny PNGs, for benchmarks ($FARM_RENDERER)")
	fs.StringVar(&f.loadtestDelay, "loadtest-delay", envOr("FARM_LOADTEST_DELAY", ""), "time per image of the loadtest renderer ($FARM_LOADTEST_DELAY; default 0)")
	fs.StringVar(&f.metricsListen, "metrics-listen", envOr("FARM_METRICS_LISTEN", ""), "address of /livez, /readyz and /metrics, e.g. :9100 ($FARM_METRICS_LISTEN; default off)")
	fs.StringVar(&f.ffmpeg, "ffmpeg", envOr("FARM_FFMPEG", ""), "ffmpeg for MP4 animations, or none ($FARM_FFMPEG; default: ffmpeg on PATH if any)")
	fs.StringVar(&f.vramGiB, "vram-gib", envOr("FARM_VRAM_GIB", ""), "memory the node offers to rendering, in GiB ($FARM_VRAM_GIB; default: all of it)")
	fs.StringVar(&f.maxLoaded, "max-loaded-models", envOr("FARM_MAX_LOADED_MODELS", ""), "models kept in memory (default 1)")
	fs.StringVar(&f.drainTimeout, "drain-timeout", envOr("FARM_DRAIN_TIMEOUT", ""), "on SIGTERM, time to finish the current task before returning it ($FARM_DRAIN_TIMEOUT; default 2m)")
	fs.StringVar(&f.leaseTTL, "lease-ttl", envOr("FARM_LEASE_TTL", ""), "etcd lease of the node's entry ($FARM_LEASE_TTL; default 10s)")
	fs.StringVar(&f.logLevel, "log-level", envOr("FARM_LOG_LEVEL", "info"), "log level: trace, debug, info, warn, error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log as JSON")
}

// options merges the config file, the credentials file and the flags (whose
// defaults come from the environment) into node options.
func (f *nodeFlags) options() (node.Options, error) {
	var cfg nodeConfig
	if f.configFile != "" {
		data, err := os.ReadFile(f.configFile)
		if err != nil {
			return node.Options{}, fmt.Errorf("config: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return node.Options{}, fmt.Errorf("config %s: %w", f.configFile, err)
		}
	}
	if err := f.conn.apply(&cfg.NATS, &cfg.Etcd, &cfg.S3); err != nil {
		return node.Options{}, err
	}
	o := node.Options{
		ID: cfg.ID, Labels: cfg.Labels, PricePerHour: cfg.PricePerHour, Currency: cfg.Currency,
		NATS: cfg.NATS, Etcd: cfg.Etcd, S3: cfg.S3,
		ModelsDir: cfg.ModelsDir, CacheDir: cfg.CacheDir, RendererName: cfg.Renderer,
		MaxLoadedModels: cfg.MaxLoadedModels, FFmpeg: cfg.FFmpeg, MetricsListen: cfg.MetricsListen,
	}
	var problems []string
	str := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	dur := func(name string, dst *time.Duration, file, flagv string) {
		if flagv == "" {
			flagv = file
		}
		if flagv == "" {
			return
		}
		d, err := time.ParseDuration(flagv)
		if err != nil || d < 0 {
			problems = append(problems, fmt.Sprintf("--%s %q: want a duration such as 30s", name, flagv))
		}
		*dst = d
	}
	str(&o.ID, f.id)
	str(&o.ModelsDir, f.modelsDir)
	str(&o.CacheDir, f.cacheDir)
	str(&o.RendererName, f.renderer)
	str(&o.FFmpeg, f.ffmpeg)
	str(&o.MetricsListen, f.metricsListen)
	dur("loadtest-delay", &o.LoadTestDelay, cfg.LoadTestDelay, f.loadtestDelay)
	dur("drain-timeout", &o.DrainTimeout, cfg.DrainTimeout, f.drainTimeout)
	dur("lease-ttl", &o.LeaseTTL, cfg.LeaseTTL, f.leaseTTL)
	if f.labels != "" {
		labels, err := parseLabels(f.labels)
		if err != nil {
			problems = append(problems, err.Error())
		}
		o.Labels = labels
	}
	num := func(name, v string, dst *float64) {
		if v == "" {
			return
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x < 0 {
			problems = append(problems, fmt.Sprintf("--%s %q: want a number of 0 or more", name, v))
		}
		*dst = x
	}
	num("price-per-hour", f.price, &o.PricePerHour)
	f.compute.fill(cfg.Backend, cfg.Device)
	var bad []string
	o.Backend, o.Device, bad = f.compute.parse()
	problems = append(problems, bad...)
	vram := cfg.VRAMGiB
	num("vram-gib", f.vramGiB, &vram)
	o.VRAMBytes = int64(vram * (1 << 30))
	if f.maxLoaded != "" {
		n, err := strconv.Atoi(f.maxLoaded)
		if err != nil || n < 1 {
			problems = append(problems, fmt.Sprintf("--max-loaded-models %q: want 1 or more", f.maxLoaded))
		}
		o.MaxLoadedModels = n
	}
	if o.CacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			o.CacheDir = filepath.Join(d, "latentfarm")
		}
	}
	if len(problems) > 0 {
		return o, usagef("%s", strings.Join(problems, "; "))
	}
	return o, nil
}

// parseLabels reads k=v,k=v.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels %q: want k=v,k=v", s)
		}
		out[k] = v
	}
	return out, nil
}

func runNode(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm node [flags]\n\n"+
			"Runs a render node against NATS (JetStream), etcd and an S3 store. Each setting comes\n"+
			"from the first of: flags, environment variables, --config (JSON), and the credentials\n"+
			"file of a farm up data dir. On SIGTERM the node stops pulling, finishes or returns its\n"+
			"task (after --drain-timeout), and deregisters.\n\n")
		fs.PrintDefaults()
	}
	var f nodeFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	o, err := f.options()
	if err != nil {
		return err
	}
	logger, err := newLogger(f.logLevel, f.logJSON)
	if err != nil {
		return err
	}
	o.Logger = logger
	if o.ModelsDir != "" {
		if _, err := os.Stat(o.ModelsDir); errors.Is(err, os.ErrNotExist) {
			return usagef("--models %s: no such folder", o.ModelsDir)
		}
	}
	n, err := node.New(o)
	if err != nil {
		return usagef("%v", err)
	}
	return n.Run(ctx)
}
