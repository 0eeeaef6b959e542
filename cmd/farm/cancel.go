package main

import (
	"context"
	"flag"
	"fmt"
	"os"
)

func init() {
	register("cancel", "cancel a job: pending tasks are dropped, rendering ones stop", runCancel)
}

func runCancel(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cancel", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm cancel ID [flags]\n\n")
		fs.PrintDefaults()
	}
	id, cli, err := cf.jobArgs(fs, args)
	if err != nil {
		return err
	}
	j, err := cli.Cancel(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "%s cancelled: %d/%d frames were done\n", j.ID, j.FramesDone, j.FramesTotal)
	return nil
}
