package main

import (
	"context"
	"flag"
	"os"

	"github.com/latentfarm/latentfarm/embedded"
)

func init() {
	registerHidden("s3-gateway", runS3Gateway)
}

// runS3Gateway is the S3 gateway child that `farm up` starts. Its flags
// default to the environment StartS3 sets; the secret key should come from
// the environment, where other users cannot read it.
func runS3Gateway(ctx context.Context, args []string) error {
	env := embedded.GatewayConfigFromEnv()
	fs := flag.NewFlagSet("s3-gateway", flag.ContinueOnError)
	var cfg embedded.GatewayConfig
	fs.StringVar(&cfg.Dir, "root", env.Dir, "gateway data directory (buckets/ and meta/ inside)")
	fs.StringVar(&cfg.Addr, "listen", env.Addr, "host:port to serve S3 on")
	fs.StringVar(&cfg.AccessKey, "access-key", env.AccessKey, "the access key clients must use")
	fs.StringVar(&cfg.SecretKey, "secret-key", env.SecretKey, "the secret key (better: $"+embedded.EnvS3SecretKey+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	_ = os.Unsetenv(embedded.EnvS3SecretKey)
	return embedded.ServeGatewayChild(ctx, cfg)
}
