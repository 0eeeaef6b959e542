package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/latentfarm/latentfarm/client"
)

func init() {
	register("job", "show one job, its unfinished tasks and why they wait", runJob)
}

func runJob(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("job", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "list every task, done ones too")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm job ID [flags]\n\n")
		fs.PrintDefaults()
	}
	id, cli, err := cf.jobArgs(fs, args)
	if err != nil {
		return err
	}
	mode := client.TasksUnfinished
	if *all {
		mode = client.TasksAll
	}
	j, err := cli.Job(ctx, id, mode)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(os.Stdout, j)
	}
	return client.WriteJob(os.Stdout, j)
}
