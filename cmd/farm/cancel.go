package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func newCancelCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cancel ID",
		Short: "cancel a job: pending tasks are dropped, rendering ones stop",
		Long:  "Cancels a job: its pending tasks are dropped and its rendering ones stop.\n\n" + precedence,
		Args:  oneArg("job id"),
	}
	api := addAPIFlags(newSettings(c.Flags()))
	out := addOutputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		cli, err := api.client()
		if err != nil {
			return err
		}
		j, err := cli.Cancel(c.Context(), args[0])
		if err != nil {
			return err
		}
		return printRecord(stdout, *out, j, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "%s cancelled: %d/%d frames were done\n", j.ID, j.FramesDone, j.FramesTotal)
			return err
		})
	}
	return c
}
