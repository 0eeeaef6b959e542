package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/cobra"
)

func newJobsCmd() *cobra.Command {
	var (
		state string
		limit = 50
	)
	c := &cobra.Command{
		Use:   "jobs",
		Short: "list jobs",
		Long:  "Lists the farm's jobs, newest first.\n\n" + precedence,
		Args:  noArgs,
	}
	api := addAPIFlags(newSettings(c.Flags()))
	out := addOutputFlag(c)
	c.Flags().StringVar(&state, "state", "", "only jobs in this state: queued, running, done, failed, cancelled")
	c.Flags().IntVar(&limit, "limit", limit, "at most this many jobs, newest first")
	c.RunE = func(c *cobra.Command, _ []string) error {
		cli, err := api.client()
		if err != nil {
			return err
		}
		jobs, err := cli.Jobs(c.Context(), state, limit)
		if err != nil {
			return err
		}
		return printRecord(stdout, *out, wire.JobList{Jobs: jobs}, func(w io.Writer) error {
			return printJobs(w, jobs, time.Now())
		})
	}
	return c
}

// printJobs writes the jobs as a table.
func printJobs(w io.Writer, jobs []wire.JobStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tFRAMES\tFAILED\tPRIORITY\tMODEL\tGPU-S\tCOST\tAGE\tNAME")
	for _, j := range jobs {
		cost := j.Cost.String()
		if cost == "" {
			cost = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%s\t%s\t%.1f\t%s\t%s\t%s\n", j.ID, j.State, j.FramesDone, j.FramesTotal,
			j.FramesFailed, j.Priority, j.Model, j.GPUSeconds, cost, age(now.Sub(j.CreatedAt)), j.Name)
	}
	return tw.Flush()
}

// age renders a duration coarsely: 45s, 12m, 3h, 2d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
