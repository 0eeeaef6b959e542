package main

import (
	"fmt"

	"github.com/latentfarm/latentfarm/localfarm"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/cobra"
)

func newUpCmd() *cobra.Command {
	var (
		o      localfarm.Options
		log    logFlags
		useTLS bool
	)
	c := &cobra.Command{
		Use:   "up",
		Short: "run a whole farm on this machine: NATS, etcd, S3, coordinator and nodes",
		Long: "Runs embedded NATS with JetStream, etcd, an S3 gateway, the coordinator and\n" +
			"local nodes in one process, with all data under --data. The admin's credentials are\n" +
			"generated on first start into DATA/" + wire.CredentialsFile + " (mode 0600); the other\n" +
			"commands on this machine find the farm through them. Nodes on other machines join\n" +
			"with the join token in DATA/" + localfarm.JoinTokenFile + " (or one of farm token create):\n" +
			"farm node --join-token-file FILE. Every server serves TLS with the farm's own CA\n" +
			"(DATA/tls) unless --listen is loopback. See docs/SECURITY.md.",
		Args: noArgs,
	}
	s := newSettings(c.Flags())
	fs := c.Flags()
	o.Dir = wire.DefaultDataDir
	addDataFlag(s, &o.Dir, "data directory")
	fs.IntVar(&o.Nodes, "nodes", 1, "local nodes to run (0: only nodes from other machines)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1", "interface every server binds; 0.0.0.0 lets other machines join")
	fs.StringVar(&o.Advertise, "advertise", "", "host other machines reach this one at (default: from --listen)")
	fs.BoolVar(&useTLS, "tls", false, "serve NATS, etcd, S3 and the API over TLS with certificates of the farm's own CA in DATA/tls "+
		"(default: on unless --listen is loopback; --tls=false serves plain text anyway)")
	fs.StringSliceVar(&o.TLSSANs, "tls-san", nil, "further host names or addresses the servers' certificate names (a DNS name or NAT address nodes use)")
	fs.IntVar(&o.APIPort, "api-port", localfarm.DefaultAPIPort, "coordinator API port")
	fs.IntVar(&o.NATSPort, "nats-port", localfarm.DefaultNATSPort, "NATS client port")
	fs.IntVar(&o.EtcdPort, "etcd-port", localfarm.DefaultEtcdPort, "etcd client port")
	fs.IntVar(&o.EtcdPeerPort, "etcd-peer-port", localfarm.DefaultEtcdPeerPort, "etcd peer port (loopback only)")
	fs.IntVar(&o.S3Port, "s3-port", localfarm.DefaultS3Port, "S3 gateway port")
	fs.StringVar(&o.NATSMonitor, "nats-monitor", "", "host:port of NATS's monitoring endpoint, which KEDA's JetStream scaler reads, or "+localfarm.NATSMonitorOff+" (default "+localfarm.DefaultNATSMonitor+"; a free port with --random-ports)")
	fs.StringVar(&o.Bucket, "bucket", localfarm.DefaultBucket, "S3 bucket for frames, manifests and models")
	fs.StringVar(&o.Renderer, "renderer", localfarm.RendererEngine, "renderer of the local nodes: engine, or loadtest (fixed time per image, for benchmarks)")
	fs.StringVar(&o.ModelsDir, "models", "", "model directory of the local nodes (default DATA/models)")
	fs.BoolVar(&o.RandomPorts, "random-ports", false, "pick a free port for every port not given by a flag (when the defaults are taken)")
	log.register(s)
	c.RunE = func(c *cobra.Command, _ []string) error {
		if err := s.apply(); err != nil {
			return err
		}
		if o.RandomPorts {
			// Ports not given explicitly go to 0: localfarm then picks free ones.
			for name, p := range map[string]*int{"api-port": &o.APIPort, "nats-port": &o.NATSPort,
				"etcd-port": &o.EtcdPort, "etcd-peer-port": &o.EtcdPeerPort, "s3-port": &o.S3Port} {
				if !fs.Changed(name) {
					*p = 0
				}
			}
		}
		if fs.Changed("tls") {
			o.TLS = localfarm.TLSOff
			if useTLS {
				o.TLS = localfarm.TLSOn
			}
		}
		logger, err := log.logger()
		if err != nil {
			return err
		}
		o.Logger = logger
		farm, err := localfarm.New(o)
		if err != nil {
			return usagef("%v", err)
		}
		done := make(chan error, 1)
		go func() { done <- farm.Run(c.Context()) }()
		select {
		case err := <-done:
			return err
		case <-farm.Ready():
		}
		w := stdout
		fmt.Fprint(w, "\n"+localfarm.Summary(farm.Dir(), farm.Credentials()))
		if u := farm.NATSMonitorURL(); u != "" {
			fmt.Fprintf(w, "  nats monitoring  %s (no credentials: keep it on loopback or a private network)\n", u)
		}
		fmt.Fprint(w, "\nPress Ctrl-C to stop.\n\n")
		return <-done
	}
	return c
}
