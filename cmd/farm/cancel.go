package main

import (
	"context"
	"fmt"
	"io"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/cobra"
)

func newCancelCmd() *cobra.Command {
	return jobActionCmd(&cobra.Command{
		Use:   "cancel ID",
		Short: "cancel a job: pending tasks are dropped, rendering ones stop",
		Long:  "Cancels a job: its pending tasks are dropped and its rendering ones stop.",
	}, (*client.Client).Cancel, func(j wire.JobStatus) string {
		return fmt.Sprintf("%s cancelled: %d/%d frames were done", j.ID, j.FramesDone, j.FramesTotal)
	})
}

func newDeleteCmd() *cobra.Command {
	return jobActionCmd(&cobra.Command{
		Use:   "delete ID",
		Short: "delete a finished job: its frames, outputs, manifest and record",
		Long: "Deletes a finished (done, failed or cancelled) job: every object under jobs/ID/ in S3\n" +
			"and its record. Uploaded inputs stay: they are shared between jobs. A running job\n" +
			"must be cancelled first.",
	}, (*client.Client).Delete, func(d wire.DeleteResponse) string {
		return fmt.Sprintf("%s deleted: %d objects removed", d.Job, d.Objects)
	})
}

// jobActionCmd completes c as a command that does one API call on the job
// named by its argument and prints the answer: line for a table, or the
// record with -o json|yaml.
func jobActionCmd[T any](c *cobra.Command, call func(*client.Client, context.Context, string) (T, error), line func(T) string) *cobra.Command {
	c.Long += "\n\n" + precedence
	c.Args = oneArg("job id")
	api := addAPIFlags(newSettings(c.Flags()))
	out := addOutputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		cli, err := api.client()
		if err != nil {
			return err
		}
		v, err := call(cli, c.Context(), args[0])
		if err != nil {
			return err
		}
		return printRecord(stdout, *out, v, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, line(v))
			return err
		})
	}
	return c
}
