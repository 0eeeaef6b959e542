package main

import (
	"fmt"
	"os"

	"github.com/latentfarm/latentfarm/diffusion/tinymodel"
	"github.com/spf13/cobra"
)

func newModelInitTinyCmd() *cobra.Command {
	var o tinymodel.Options
	c := &cobra.Command{
		Use:   "init-tiny DIR",
		Short: "write a small random-weight model, for tests and benchmarks",
		Long: "Writes a small random-weight Stable Diffusion model (SD1.x architecture, diffusers layout,\n" +
			"its own tokenizer) to DIR, for tests and benchmarks. Its images are noise.",
		Args: oneArg("folder"),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := tinymodel.Write(args[0], o); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "wrote a tiny random model to %s\n", args[0])
			return nil
		},
	}
	c.Flags().Uint64Var(&o.Seed, "seed", 0, "seed of the random weights")
	c.Flags().BoolVar(&o.F16, "f16", false, "store the weights in float16")
	return c
}
