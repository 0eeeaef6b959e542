package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
)

func init() {
	register("model", "models: init-tiny DIR (make a small random model), push NAME PATH, list (the farm's store)", runModel)
}

func runModel(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("usage: farm model init-tiny DIR | farm model push NAME PATH | farm model list")
	}
	switch args[0] {
	case "init-tiny":
		return runModelInitTiny(ctx, args[1:])
	case "push":
		return runModelPush(ctx, args[1:])
	case "list":
		return runModelList(ctx, args[1:])
	}
	return usagef("unknown model command %q: want init-tiny, push or list", args[0])
}

// modelStore parses the S3 flags and opens the store.
func modelStore(ctx context.Context, fs *flag.FlagSet, args []string) (*minio.Client, connect.S3Config, error) {
	var f connFlags
	f.registerS3(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, connect.S3Config{}, err
	}
	var n connect.NATSConfig
	var e connect.EtcdConfig
	var s connect.S3Config
	if err := f.apply(&n, &e, &s); err != nil {
		return nil, s, err
	}
	cli, err := connect.S3(s)
	if err != nil {
		return nil, s, usagef("%v", err)
	}
	if err := connect.EnsureBucket(ctx, cli, s.Bucket, s.Region); err != nil {
		return nil, s, err
	}
	return cli, s, nil
}

func runModelPush(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("model push", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm model push [flags] NAME PATH\n\n"+
			"Uploads a model (a diffusers folder or a .safetensors file) to the farm's model store\n"+
			"as NAME. Nodes that lack NAME download it on first use and verify every file's SHA-256.\n\n")
		fs.PrintDefaults()
	}
	cli, s, err := modelStore(ctx, fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want NAME and PATH, got %q", fs.Args())
	}
	name, path := fs.Arg(0), fs.Arg(1)
	start := time.Now()
	man, err := node.PushModel(ctx, cli, s.Bucket, name, path)
	if err != nil {
		return err
	}
	var total int64
	for _, f := range man.Files {
		total += f.Size
	}
	fmt.Fprintf(os.Stderr, "pushed %s: %d files, %s in %.1fs\n", name, len(man.Files), wire.FormatBytes(total), time.Since(start).Seconds())
	return nil
}

func runModelList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("model list", flag.ContinueOnError)
	cli, s, err := modelStore(ctx, fs, args)
	if err != nil {
		return err
	}
	for obj := range cli.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: wire.ModelsPrefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("model list: %w", obj.Err)
		}
		if name, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, wire.ModelsPrefix), "/model.json"); ok && !strings.Contains(name, "/") {
			fmt.Println(name)
		}
	}
	return nil
}
