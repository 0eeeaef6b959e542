package main

import (
	"time"

	"github.com/latentfarm/latentfarm/coordinator"
	"github.com/spf13/cobra"
)

// coordinatorConfig is farm coordinator's --config file (YAML or JSON):
// deploy/config/coordinator.json sets every key and deploy/config/README.md
// explains them.
type coordinatorConfig struct {
	Listen      string `json:"listen,omitempty"`
	Advertise   string `json:"advertise_url,omitempty"`
	Token       string `json:"token,omitempty"`
	TLSCertFile string `json:"tls_cert_file,omitempty"`
	TLSKeyFile  string `json:"tls_key_file,omitempty"`
	connConfig
	AckWait      duration `json:"ack_wait,omitempty"`
	MaxNodeFails int      `json:"max_node_failures,omitempty"`
}

// options are the coordinator options the file sets, connections aside.
func (c *coordinatorConfig) options() coordinator.Options {
	o := coordinator.Options{Listen: c.Listen, AdvertiseURL: c.Advertise, TLSCertFile: c.TLSCertFile, TLSKeyFile: c.TLSKeyFile,
		MaxNodeFailures: c.MaxNodeFails}
	o.Streams.AckWait = time.Duration(c.AckWait)
	return o
}

// coordFlags are the flags of farm coordinator: they write the options
// directly.
type coordFlags struct {
	s    *settings
	conn *connFlags
	o    coordinator.Options
	log  logFlags
}

func (f *coordFlags) register(s *settings) {
	f.s = s
	f.conn = addConnFlags(s, withToken|toNATS|toEtcd|toS3, configFlag{env: "FARM_COORDINATOR_CONFIG",
		usage: "config file, YAML or JSON (deploy/config/coordinator.json shows every key)"})
	o := &f.o
	s.String(&o.Listen, "listen", "API address (default 127.0.0.1:8080)", "FARM_LISTEN")
	s.String(&o.AdvertiseURL, "advertise", "API URL as clients reach it", "FARM_ADVERTISE_URL")
	s.String(&o.TLSCertFile, "tls-cert", "serve the API over HTTPS with this certificate", "FARM_TLS_CERT")
	s.String(&o.TLSKeyFile, "tls-key", "key of --tls-cert", "FARM_TLS_KEY")
	s.String(&o.StateDir, "state-dir", "a folder of this coordinator's own where it records its election lease, so that after a crash it leads again at once (default none: a restart waits out the lease)", "FARM_STATE_DIR")
	s.Duration(&o.Streams.AckWait, "ack-wait", "how long a silent node keeps a task before redelivery (default 30s)", "FARM_ACK_WAIT")
	s.Int(&o.MaxNodeFailures, "max-node-failures", "fail a task after it failed on this many nodes (default 3)", "FARM_MAX_NODE_FAILURES")
	f.log.register(s)
}

// options merges flags, environment, the config file and farm up's
// credentials into coordinator options, by the rule of precedence.
func (f *coordFlags) options() (coordinator.Options, error) {
	if err := f.s.apply(); err != nil {
		return coordinator.Options{}, err
	}
	var cfg coordinatorConfig
	if err := f.conn.readConfig(&cfg); err != nil {
		return coordinator.Options{}, err
	}
	conn, err := f.conn.resolve(connection{Token: cfg.Token, NATS: cfg.NATS, Etcd: cfg.Etcd, S3: cfg.S3})
	if err != nil {
		return coordinator.Options{}, err
	}
	fromFile := cfg.options()
	f.s.fill(&f.o, &fromFile)
	o := f.o
	o.Token, o.NATS, o.Etcd, o.S3 = conn.Token, conn.NATS, conn.Etcd, conn.S3
	if o.MaxNodeFailures < 0 {
		return o, usagef("--max-node-failures %d: want 1 or more", o.MaxNodeFailures)
	}
	return o, nil
}

func newCoordinatorCmd() *cobra.Command {
	var f coordFlags
	c := &cobra.Command{
		Use:   "coordinator",
		Short: "run the coordinator: job API, task publishing, results, leader election",
		Long: "Runs a coordinator against NATS (JetStream), etcd and an S3 store. Several\n" +
			"coordinators may run: one leads, the others wait and refer clients to it.\n\n" + precedence,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o, err := f.options()
			if err != nil {
				return err
			}
			if o.Logger, err = f.log.logger(); err != nil {
				return err
			}
			co, err := coordinator.New(o)
			if err != nil {
				return usagef("%v", err)
			}
			return co.Run(c.Context())
		},
	}
	f.register(newSettings(c.Flags()))
	return c
}
