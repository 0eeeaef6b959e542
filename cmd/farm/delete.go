package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func newDeleteCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "delete ID",
		Short: "delete a finished job: its frames, outputs, manifest and record",
		Long: "Deletes a finished (done, failed or cancelled) job: every object under jobs/ID/ in S3\n" +
			"and its record. Uploaded inputs stay: they are shared between jobs. A running job\n" +
			"must be cancelled first.\n\n" + precedence,
		Args: oneArg("job id"),
	}
	api := addAPIFlags(newSettings(c.Flags()))
	out := addOutputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		cli, err := api.client()
		if err != nil {
			return err
		}
		d, err := cli.Delete(c.Context(), args[0])
		if err != nil {
			return err
		}
		return printRecord(stdout, *out, d, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "%s deleted: %d objects removed\n", d.Job, d.Objects)
			return err
		})
	}
	return c
}
