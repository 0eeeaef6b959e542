package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/cobra"
)

func newWatchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "watch ID",
		Short: "follow a job: progress bar, frames done, rate and ETA",
		Long: "Follows a job until it ends: a progress bar, frames done, rate and ETA on stderr.\n" +
			"Exits 1 unless the job is done.\n\n" + precedence,
		Args: oneArg("job id"),
	}
	api := addAPIFlags(newSettings(c.Flags()))
	c.RunE = func(c *cobra.Command, args []string) error {
		cli, err := api.client()
		if err != nil {
			return err
		}
		final, err := watchJob(c.Context(), cli, args[0], os.Stderr)
		if err != nil {
			return err
		}
		return jobOutcome(final)
	}
	return c
}

// jobOutcome turns a finished job into the command's result.
func jobOutcome(j wire.JobStatus) error {
	switch j.State {
	case wire.JobDone:
		return nil
	case wire.JobFailed:
		return fmt.Errorf("job %s failed: %s", j.ID, j.Error)
	case wire.JobCancelled:
		return fmt.Errorf("job %s was cancelled", j.ID)
	}
	return nil
}

// watchJob draws a progress line on w until the job ends and prints a
// one-line summary.
func watchJob(ctx context.Context, cli *client.Client, id string, w io.Writer) (wire.JobStatus, error) {
	tty := isTerminal(w)
	var (
		last      wire.JobStatus
		startDone = -1
		start     time.Time
		lastPrint time.Time
		stepNote  string
		arrived   = map[int]bool{}
	)
	draw := func(force bool) {
		now := time.Now()
		if !force && now.Sub(lastPrint) < map[bool]time.Duration{true: 100 * time.Millisecond, false: 2 * time.Second}[tty] {
			return
		}
		lastPrint = now
		line := progressLine(last, startDone, start, now, stepNote)
		if strip := frameStrip(last, arrived); strip != "" {
			line += "\n" + strip
			if tty {
				line += "\033[1A\r"
			}
		}
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
	err := cli.Events(ctx, id, func(ev wire.JobEvent) error {
		switch {
		case ev.Job != nil:
			last = *ev.Job
			if startDone < 0 {
				startDone, start = last.FramesDone, time.Now()
			}
			draw(ev.Type == wire.EventEnd)
		case ev.Progress != nil && ev.Progress.Stage == wire.StageStep:
			stepNote = fmt.Sprintf("%s step %d/%d", ev.Progress.NodeID, ev.Progress.Step, ev.Progress.Steps)
			draw(false)
		case ev.Progress != nil && (ev.Progress.Stage == wire.StageFrame || ev.Progress.Stage == wire.StageDone):
			if note := markArrived(arrived, ev.Progress); note != "" {
				stepNote = note
			}
			draw(false)
		}
		return nil
	})
	if tty {
		fmt.Fprintln(w)
		if frameStrip(last, arrived) != "" {
			fmt.Fprintln(w)
		}
	}
	if err != nil {
		return last, err
	}
	if last.FinishedAt != nil {
		secs := last.FinishedAt.Sub(last.CreatedAt).Seconds()
		rate := 0.0
		if secs > 0 {
			rate = float64(last.FramesDone) / secs
		}
		fmt.Fprintf(w, "%s %s: %d images in %.1f s (%.2f images/s), %d failed, %.1f GPU-seconds\n",
			last.ID, last.State, last.FramesDone, secs, rate, last.FramesFailed, last.GPUSeconds)
	}
	return last, nil
}

// markArrived marks the frames that a frame event or a task's done event
// says are in, and returns a note naming the last of them ("" when the
// event names no frame: an animation's assembly).
func markArrived(arrived map[int]bool, p *wire.Progress) string {
	lo, hi, ok := p.FrameRange()
	if !ok {
		return ""
	}
	for i := lo; i <= hi; i++ {
		arrived[i] = true
	}
	return fmt.Sprintf("frame %d from %s", hi, p.NodeID)
}

// progressLine renders "[####....] 120/200 frames  6.1 img/s  ETA 13s ...".
func progressLine(j wire.JobStatus, startDone int, start, now time.Time, note string) string {
	const width = 30
	filled := 0
	if j.FramesTotal > 0 {
		filled = (j.FramesDone + j.FramesFailed) * width / j.FramesTotal
	}
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	s := fmt.Sprintf("[%s] %d/%d frames", bar, j.FramesDone, j.FramesTotal)
	elapsed := now.Sub(start).Seconds()
	if done := j.FramesDone - startDone; done > 0 && elapsed > 0 {
		rate := float64(done) / elapsed
		left := j.FramesTotal - j.FramesDone - j.FramesFailed
		s += fmt.Sprintf("  %.1f img/s  ETA %s", rate, (time.Duration(float64(left)/rate) * time.Second).Round(time.Second))
	}
	s += fmt.Sprintf("  %s, %d running", j.State, j.TasksRunning)
	if j.FramesFailed > 0 {
		s += fmt.Sprintf(", %d failed", j.FramesFailed)
	}
	if note != "" && !wire.JobFinished(j.State) {
		s += "  (" + note + ")"
	}
	return s
}

// maxStrip is the most frames frameStrip draws one character each.
const maxStrip = 120

// frameStrip shows which frames of a short job have landed, one character
// a frame ('#' landed, '.' not yet), so an animation rendered coarse to
// fine shows its keys and in-betweens filling in. Longer jobs get none.
func frameStrip(j wire.JobStatus, arrived map[int]bool) string {
	if j.FramesTotal == 0 || j.FramesTotal > maxStrip || len(arrived) == 0 {
		return ""
	}
	b := []byte(strings.Repeat(".", j.FramesTotal))
	for i := range arrived {
		if i >= 0 && i < len(b) {
			b[i] = '#'
		}
	}
	return "frames " + string(b)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
