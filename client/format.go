package client

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// WriteJob writes the text view of `farm job`: the job's state, counts,
// why its waiting tasks wait, and a table of its tasks (at most 50 rows).
func WriteJob(w io.Writer, j wire.JobStatus) error {
	fmt.Fprintf(w, "job       %s %s\n", j.ID, j.Name)
	fmt.Fprintf(w, "state     %s\n", j.State)
	if j.Error != "" {
		fmt.Fprintf(w, "error     %s\n", j.Error)
	}
	fmt.Fprintf(w, "model     %s (class %s, about %s per task)\n", j.Model, j.Class, wire.FormatBytes(j.VRAMBytes))
	if j.Spec != nil {
		s := j.Spec
		fmt.Fprintf(w, "images    %dx%d, %d steps, cfg %g, %s/%s, priority %s\n", s.Width, s.Height, s.Steps, s.CFG(), s.Sampler, s.Schedule, s.Priority)
	}
	fmt.Fprintf(w, "frames    %d/%d done, %d failed\n", j.FramesDone, j.FramesTotal, j.FramesFailed)
	fmt.Fprintf(w, "tasks     %d total: %d done, %d running, %d waiting, %d failed\n", j.TasksTotal, j.TasksDone, j.TasksRunning, j.TasksWaiting, j.TasksFailed)
	fmt.Fprintf(w, "gpu time  %.1f s\n", j.GPUSeconds)
	if c := j.Cost.String(); c != "" {
		per := ""
		if j.FramesDone > 0 {
			per = fmt.Sprintf(", %.6f %s per image", j.Cost.Amount/float64(j.FramesDone), j.Cost.Currency)
		}
		fmt.Fprintf(w, "cost      %s%s\n", c, per)
	}
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
		return nil
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
	return tw.Flush()
}
