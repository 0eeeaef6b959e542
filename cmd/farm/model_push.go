package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	"github.com/spf13/cobra"
)

func newModelCmd() *cobra.Command {
	subs := []*cobra.Command{newModelInitTinyCmd(), newModelPushCmd(), newModelListCmd()}
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.Name()
	}
	c := &cobra.Command{
		Use:   "model",
		Short: "models: init-tiny DIR (make a small random model), push NAME PATH, list (the farm's store)",
		Long: "Makes a small random model, or manages the farm's model store, from which nodes\n" +
			"fetch the models they lack.",
		DisableFlagsInUseLine: true,
		// A command of subcommands: without one, or with an unknown one,
		// it is a usage error.
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("want a subcommand: %s", alternatives(names))
			}
			return usagef("unknown model command %q: want %s", args[0], alternatives(names))
		},
	}
	c.AddCommand(subs...)
	return c
}

// storeFlags are the flags of the commands that use the model store: S3,
// from flags, environment, a node's config file and farm up's credentials.
type storeFlags struct{ conn *connFlags }

func addStoreFlags(c *cobra.Command) *storeFlags {
	return &storeFlags{conn: addConnFlags(newSettings(c.Flags()), toS3, configFlag{env: "FARM_NODE_CONFIG",
		usage: "a farm node config file (YAML or JSON), whose s3 section names the store"})}
}

// open resolves the S3 settings and opens the store.
func (f *storeFlags) open(ctx context.Context) (*connect.S3Client, connect.S3Config, error) {
	if err := f.conn.s.apply(); err != nil {
		return nil, connect.S3Config{}, err
	}
	var cfg nodeConfig
	if err := f.conn.readConfig(&cfg); err != nil {
		return nil, connect.S3Config{}, err
	}
	conn, err := f.conn.resolve(cfg.connection())
	if err != nil {
		return nil, conn.S3, err
	}
	s := conn.S3
	cli, err := connect.S3(s)
	if err != nil {
		return nil, s, usagef("%v", err)
	}
	if err := connect.EnsureBucket(ctx, cli, s.Bucket, s.Region); err != nil {
		return nil, s, err
	}
	return cli, s, nil
}

func newModelPushCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "push NAME PATH",
		Short: "upload a model to the farm's model store",
		Long: "Uploads a model (a diffusers folder or a .safetensors file) to the farm's model store\n" +
			"as NAME. Nodes that lack NAME download it on first use and verify every file's SHA-256.\n\n" + precedence,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("want NAME and PATH, got %q", args)
			}
			return nil
		},
	}
	store := addStoreFlags(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		cli, s, err := store.open(c.Context())
		if err != nil {
			return err
		}
		name, path := args[0], args[1]
		start := time.Now()
		man, err := node.PushModel(c.Context(), cli, s.Bucket, name, path)
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
	return c
}

// storedModel is a line of farm model list.
type storedModel struct {
	Name string `json:"name"`
}

func newModelListCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "list the models in the farm's model store",
		Long:  "Lists the models in the farm's model store.\n\n" + precedence,
		Args:  noArgs,
	}
	store := addStoreFlags(c)
	out := addOutputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		cli, s, err := store.open(c.Context())
		if err != nil {
			return err
		}
		models := []storedModel{}
		for obj := range cli.ListObjects(c.Context(), s.Bucket, minio.ListObjectsOptions{Prefix: wire.ModelsPrefix, Recursive: true}) {
			if obj.Err != nil {
				return fmt.Errorf("model list: %w", obj.Err)
			}
			if name, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, wire.ModelsPrefix), "/model.json"); ok && !strings.Contains(name, "/") {
				models = append(models, storedModel{Name: name})
			}
		}
		return printRecord(stdout, *out, models, func(w io.Writer) error {
			for _, m := range models {
				fmt.Fprintln(w, m.Name)
			}
			return nil
		})
	}
	return c
}
