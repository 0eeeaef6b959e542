package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/shared/wire"
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
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one job id")
	}
	cli, err := cf.client()
	if err != nil {
		return err
	}
	mode := client.TasksUnfinished
	if *all {
		mode = client.TasksAll
	}
	j, err := cli.Job(ctx, pos[0], mode)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(os.Stdout, j)
	}
	printJob(j)
	return nil
}

func printJob(j wire.JobStatus) {
	w := os.Stdout
	fmt.Fprintf(w, "job       %s %s\n", j.ID, j.Name)
	fmt.Fprintf(w, "state     %s\n", j.State)
	if j.Error != "" {
		fmt.Fprintf(w, "error     %s\n", j.Error)
	}
	fmt.Fprintf(w, "model     %s (class %s, about %s per task)\n", j.Model, j.Class, wire.FormatBytes(j.VRAMBytes))
	if j.Spec != nil {
		s := j.Spec
		fmt.Fprintf(w, "images    %dx%d, %d steps, cfg %g, %s/%s, priority %s\n", s.Width, s.Height, s.Steps, s.CFGScale, s.Sampler, s.Schedule, s.Priority)
	}
	fmt.Fprintf(w, "frames    %d/%d done, %d failed\n", j.FramesDone, j.FramesTotal, j.FramesFailed)
	fmt.Fprintf(w, "tasks     %d total: %d done, %d running, %d waiting, %d failed\n", j.TasksTotal, j.TasksDone, j.TasksRunning, j.TasksWaiting, j.TasksFailed)
	fmt.Fprintf(w, "gpu time  %.1f s\n", j.GPUSeconds)
	fmt.Fprintf(w, "created   %s\n", j.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	if j.FinishedAt != nil {
		fmt.Fprintf(w, "finished  %s (%.1f s)\n", j.FinishedAt.Local().Format("2006-01-02 15:04:05"), j.FinishedAt.Sub(j.CreatedAt).Seconds())
	}
	if j.ManifestKey != "" {
		fmt.Fprintf(w, "manifest  %s\n", j.ManifestKey)
	}
	for i, why := range j.Waiting {
		label := "waiting"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(w, "%-9s %s\n", label, why)
	}
	if len(j.Tasks) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tFRAMES\tSTATE\tATTEMPT\tNODE\tFAILURES\tNOTE")
	const maxRows = 50
	for i, t := range j.Tasks {
		if i == maxRows {
			fmt.Fprintf(tw, "... %d more (farm job %s --json)\n", len(j.Tasks)-maxRows, j.ID)
			break
		}
		note := t.Why
		if t.Error != nil && note == "" {
			note = string(t.Error.Code) + ": " + t.Error.Message
		}
		fails := 0
		for _, n := range t.FailedNodes {
			fails += n
		}
		fmt.Fprintf(tw, "%s\t%d-%d\t%s\t%d\t%s\t%d\t%s\n", t.ID, t.Frames[0], t.Frames[1], t.State, t.Attempt, t.Node, fails, note)
	}
	_ = tw.Flush()
}
