package main

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/cobra"
)

// connConfig is the connection part of a server's --config file.
type connConfig struct {
	NATS connect.NATSConfig `json:"nats"`
	Etcd connect.EtcdConfig `json:"etcd"`
	S3   connect.S3Config   `json:"s3"`
}

func (c connConfig) connection() connection {
	return connection{NATS: c.NATS, Etcd: c.Etcd, S3: c.S3}
}

// nodeConfig is farm node's --config file (YAML or JSON): deploy/config/
// node.json sets every key and deploy/config/README.md explains them.
type nodeConfig struct {
	ID           string            `json:"id,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	PricePerHour price             `json:"price_per_hour,omitempty"`
	Currency     string            `json:"currency,omitempty"`
	connConfig
	ModelsDir       string   `json:"models_dir,omitempty"`
	CacheDir        string   `json:"cache_dir,omitempty"`
	Renderer        string   `json:"renderer,omitempty"`
	LoadTestDelay   duration `json:"loadtest_delay,omitempty"`
	VRAMGiB         gibSize  `json:"vram_gib,omitempty"`
	MaxLoadedModels int      `json:"max_loaded_models,omitempty"`
	FFmpeg          string   `json:"ffmpeg,omitempty"`
	MetricsListen   string   `json:"metrics_listen,omitempty"`
	Backend         string   `json:"backend,omitempty"`
	Device          *int     `json:"device,omitempty"`
	DrainTimeout    duration `json:"drain_timeout,omitempty"`
	LeaseTTL        duration `json:"lease_ttl,omitempty"`
}

// options are the node options the file sets (backend and device aside).
func (c *nodeConfig) options() node.Options {
	return node.Options{ID: c.ID, Labels: c.Labels, PricePerHour: float64(c.PricePerHour), Currency: c.Currency,
		ModelsDir: c.ModelsDir, CacheDir: c.CacheDir, RendererName: c.Renderer, LoadTestDelay: time.Duration(c.LoadTestDelay),
		VRAMBytes: int64(c.VRAMGiB), MaxLoadedModels: c.MaxLoadedModels, FFmpeg: c.FFmpeg, MetricsListen: c.MetricsListen,
		DrainTimeout: time.Duration(c.DrainTimeout), LeaseTTL: time.Duration(c.LeaseTTL)}
}

// nodeFlags are the flags of farm node: they write the options directly.
type nodeFlags struct {
	s        *settings
	conn     *connFlags
	o        node.Options
	joinFile string
	compute  backendFlags
	log      logFlags
}

// envJoinToken holds a join token itself, for where a file is awkward (a
// Kubernetes secret as an environment variable).
const envJoinToken = "FARM_JOIN_TOKEN"

func (f *nodeFlags) register(s *settings) {
	f.s = s
	f.conn = addConnFlags(s, toNATS|toEtcd|toS3, configFlag{env: "FARM_NODE_CONFIG",
		usage: "config file, YAML or JSON (deploy/config/node.json shows every key)"})
	s.String(&f.joinFile, "join-token-file", "join token file of farm up or farm token create: the farm's endpoints, CA and "+
		"this node's logins (or the token itself in $"+envJoinToken+")", "FARM_JOIN_TOKEN_FILE")
	_ = s.fs.SetAnnotation("join-token-file", flagGroup, []string{connectionGroup})
	o := &f.o
	s.String(&o.ID, "id", "node id (default: host name and a random suffix; with a join token, the token's name, "+
		"the host name and a random suffix)", "FARM_NODE_ID")
	s.Var((*labels)(&o.Labels), &o.Labels, "labels", "labels shown in farm nodes", "FARM_NODE_LABELS")
	s.Var((*price)(&o.PricePerHour), &o.PricePerHour, "price-per-hour",
		"cost of the node per hour, in --currency: jobs, frames and manifests show what they cost", "FARM_PRICE_PER_HOUR")
	s.String(&o.Currency, "currency", "currency of --price-per-hour (default "+node.DefaultCurrency+")", "FARM_CURRENCY")
	f.compute.register(s)
	s.String(&o.ModelsDir, "models", "local models folder: NAME/ (diffusers) or NAME.safetensors", "FARM_MODELS")
	s.String(&o.CacheDir, "cache", "folder for models fetched from the model store (default: the user cache dir)", "FARM_CACHE")
	s.String(&o.RendererName, "renderer", "engine (default) or loadtest: fixed time per image, tiny PNGs, for benchmarks", "FARM_RENDERER")
	s.Duration(&o.LoadTestDelay, "loadtest-delay", "time per image of the loadtest renderer (default 0)", "FARM_LOADTEST_DELAY")
	s.String(&o.MetricsListen, "metrics-listen", "address of /livez, /readyz and /metrics, e.g. :9100 (default off)", "FARM_METRICS_LISTEN")
	s.String(&o.FFmpeg, "ffmpeg", "ffmpeg for MP4 animations, or none (default: ffmpeg on PATH if any)", "FARM_FFMPEG")
	s.Var((*byteSize)(&o.VRAMBytes), &o.VRAMBytes, "vram",
		"memory the node offers to rendering, such as 8GiB or 512MiB (default: all of it)", "FARM_VRAM")
	s.Var((*gibSize)(&o.VRAMBytes), &o.VRAMBytes, "vram-gib", "--vram in GiB: 8 is 8GiB", "FARM_VRAM_GIB")
	s.Int(&o.MaxLoadedModels, "max-loaded-models", "models kept in memory (default 1)", "FARM_MAX_LOADED_MODELS")
	s.Duration(&o.DrainTimeout, "drain-timeout", "on SIGTERM, time to finish the current task before returning it (default 2m)", "FARM_DRAIN_TIMEOUT")
	s.Duration(&o.LeaseTTL, "lease-ttl", "etcd lease of the node's entry (default 10s)", "FARM_LEASE_TTL")
	s.Duration(&o.PollInterval, "poll-interval", "how often an idle node looks for work it was not told about (default 1s)", "FARM_POLL_INTERVAL")
	s.Duration(&o.RefreshInterval, "refresh-interval", "how often the node rewrites its entry (default 10s)", "FARM_REFRESH_INTERVAL")
	f.log.register(s)
}

// options merges flags, environment, the config file and farm up's
// credentials into node options, by the rule of precedence.
func (f *nodeFlags) options() (node.Options, error) {
	if err := f.s.apply(); err != nil {
		return node.Options{}, err
	}
	var cfg nodeConfig
	if err := f.conn.readConfig(&cfg); err != nil {
		return node.Options{}, err
	}
	join, err := f.joinToken(time.Now())
	if err != nil {
		return node.Options{}, err
	}
	if join != nil {
		nc, ec, sc := connect.JoinConfigs(*join)
		f.conn.join = &connection{NATS: nc, Etcd: ec, S3: sc}
	}
	conn, err := f.conn.resolve(cfg.connection())
	if err != nil {
		return node.Options{}, err
	}
	fromFile := cfg.options()
	f.s.fill(&f.o, &fromFile)
	o := f.o
	if join != nil {
		if o.ID == "" {
			o.ID = tokenNodeID(join.Name)
		} else if !join.AllowsNodeID(o.ID) {
			return o, usagef("--id %s: join token %s registers only the ids %s and %s-*", o.ID, join.Name, join.Name, join.Name)
		}
	}
	o.NATS, o.Etcd, o.S3 = conn.NATS, conn.Etcd, conn.S3
	f.compute.fill(cfg.Backend, cfg.Device)
	var problems []string
	o.Backend, o.Device, problems = f.compute.parse()
	if o.MaxLoadedModels < 0 || f.s.given(&f.o.MaxLoadedModels) && o.MaxLoadedModels < 1 {
		problems = append(problems, fmt.Sprintf("--max-loaded-models %d: want 1 or more", o.MaxLoadedModels))
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

// joinToken reads the join token of --join-token-file, or else of
// $FARM_JOIN_TOKEN; nil without either. An expired token is an error.
func (f *nodeFlags) joinToken(now time.Time) (*wire.JoinToken, error) {
	var (
		t   wire.JoinToken
		err error
	)
	switch env := strings.TrimSpace(os.Getenv(envJoinToken)); {
	case f.joinFile != "":
		t, err = wire.ReadJoinToken(f.joinFile)
	case env != "":
		if t, err = wire.ParseJoinToken(env); err != nil {
			err = fmt.Errorf("$%s: %w", envJoinToken, err)
		}
	default:
		return nil, nil
	}
	if err != nil {
		return nil, usagef("%v", err)
	}
	if t.Expired(now) {
		return nil, usagef("join token %s expired at %s: ask the farm's admin for a new one (farm token create)",
			t.Name, t.ExpiresAt().Local().Format(time.RFC3339))
	}
	return &t, nil
}

// tokenNodeID is a node id join token name allows: the name, this
// machine's name and a random suffix (two nodes of one machine differ).
func tokenNodeID(name string) string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	if len(host) > 20 {
		host = host[:20]
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return name + "-" + cmp.Or(host, "node") + "-" + hex.EncodeToString(b)
}

func newNodeCmd() *cobra.Command {
	c, _ := newNodeCmdFlags()
	return c
}

// newNodeCmdFlags returns farm node and its flags, for tests.
func newNodeCmdFlags() (*cobra.Command, *nodeFlags) {
	var f nodeFlags
	c := &cobra.Command{
		Use:   "node",
		Short: "run a render node: register, pull tasks it can run, render, upload frames",
		Long: "Runs a render node against NATS (JetStream), etcd and an S3 store. On SIGTERM the\n" +
			"node stops pulling, finishes or returns its task (after --drain-timeout), and\n" +
			"deregisters.\n\n" + precedence,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o, err := f.options()
			if err != nil {
				return err
			}
			if o.Logger, err = f.log.logger(); err != nil {
				return err
			}
			if o.ModelsDir != "" {
				if _, err := os.Stat(o.ModelsDir); errors.Is(err, os.ErrNotExist) {
					return usagef("--models %s: no such folder", o.ModelsDir)
				}
			}
			n, err := node.New(o)
			if err != nil {
				return usagef("%v", err)
			}
			return n.Run(c.Context())
		},
	}
	f.register(newSettings(c.Flags()))
	return c, &f
}
