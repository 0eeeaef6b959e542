package main

import (
	"io"

	"github.com/latentfarm/latentfarm/client"
	"github.com/spf13/cobra"
)

func newJobCmd() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "job ID",
		Short: "show one job, its unfinished tasks and why they wait",
		Long:  "Shows one job: its state, counts, cost, and its unfinished tasks with why they wait.\n\n" + precedence,
		Args:  oneArg("job id"),
	}
	api := addAPIFlags(newSettings(c.Flags()))
	out := addOutputFlag(c)
	c.Flags().BoolVar(&all, "all", false, "list every task, done ones too")
	c.RunE = func(c *cobra.Command, args []string) error {
		cli, err := api.client()
		if err != nil {
			return err
		}
		mode := client.TasksUnfinished
		if all {
			mode = client.TasksAll
		}
		j, err := cli.Job(c.Context(), args[0], mode)
		if err != nil {
			return err
		}
		return printRecord(stdout, *out, j, func(w io.Writer) error { return client.WriteJob(w, j) })
	}
	return c
}
