package main

import (
	"os"

	"github.com/latentfarm/latentfarm/embedded"
	"github.com/spf13/cobra"
)

// newS3GatewayCmd is the S3 gateway child that `farm up` starts, hidden. Its
// flags override the environment StartS3 sets; the secret key should come
// from the environment, where other users cannot read it.
func newS3GatewayCmd() *cobra.Command {
	var flags embedded.GatewayConfig
	c := &cobra.Command{
		Use:    "s3-gateway",
		Short:  "the S3 gateway child of farm up",
		Hidden: true,
		Args:   noArgs,
	}
	fs := c.Flags()
	fs.StringVar(&flags.Dir, "root", "", "gateway data directory (buckets/ and meta/ inside)")
	fs.StringVar(&flags.Addr, "listen", "", "host:port to serve S3 on")
	fs.StringVar(&flags.AccessKey, "access-key", "", "the access key clients must use")
	fs.StringVar(&flags.SecretKey, "secret-key", "", "the secret key (better: $"+embedded.EnvS3SecretKey+")")
	c.RunE = func(c *cobra.Command, _ []string) error {
		cfg := embedded.GatewayConfigFromEnv()
		for name, p := range map[string]struct{ dst, v *string }{
			"root": {&cfg.Dir, &flags.Dir}, "listen": {&cfg.Addr, &flags.Addr},
			"access-key": {&cfg.AccessKey, &flags.AccessKey}, "secret-key": {&cfg.SecretKey, &flags.SecretKey},
		} {
			if fs.Changed(name) {
				*p.dst = *p.v
			}
		}
		_ = os.Unsetenv(embedded.EnvS3SecretKey)
		return embedded.ServeGatewayChild(c.Context(), cfg)
	}
	return c
}
