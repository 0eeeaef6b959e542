package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/latentfarm/latentfarm/diffusion/tinymodel"
)

func runModelInitTiny(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("model init-tiny", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm model init-tiny [flags] DIR\n\n"+
			"Writes a small random-weight Stable Diffusion model (SD1.x architecture, diffusers layout,\n"+
			"its own tokenizer) to DIR, for tests and benchmarks. Its images are noise.\n\n")
		fs.PrintDefaults()
	}
	seed := fs.Uint64("seed", 0, "seed of the random weights")
	f16 := fs.Bool("f16", false, "store the weights in float16")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one folder, got %q", fs.Args())
	}
	if err := tinymodel.Write(fs.Arg(0), tinymodel.Options{Seed: *seed, F16: *f16}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote a tiny random model to %s\n", fs.Arg(0))
	return nil
}
