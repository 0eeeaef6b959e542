package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/latentfarm/latentfarm/client"
	"github.com/spf13/cobra"
)

func newGetCmd() *cobra.Command {
	var (
		dir, sheet          string
		proxy               bool
		parallel, sheetCols = 8, 16
		sheetScale          int
	)
	c := &cobra.Command{
		Use:   "get ID [--dir DIR]",
		Short: "download a finished job's frames and manifest",
		Long: "Downloads a finished job: DIR/manifest.json, DIR/frames/<index>.png and, for an\n" +
			"animation, DIR/animation.gif and DIR/animation.mp4 (when a node had ffmpeg).\n" +
			"-o json or -o yaml prints the manifest instead of the summary.\n\n" + precedence,
		Args: oneArg("job id"),
	}
	api := addAPIFlags(newSettings(c.Flags()))
	out := addOutputFlag(c)
	fs := c.Flags()
	fs.StringVar(&dir, "dir", "", "directory to write into (default ./ID)")
	fs.BoolVar(&proxy, "proxy", false, "download through the coordinator instead of presigned S3 URLs")
	fs.IntVar(&parallel, "parallel", parallel, "downloads at once")
	fs.StringVar(&sheet, "sheet", "", "also write the frames side by side into this PNG file")
	fs.IntVar(&sheetCols, "sheet-columns", sheetCols, "frames a row in the --sheet image")
	fs.IntVar(&sheetScale, "sheet-scale", 0, "upscale factor of each frame in the --sheet image (default: to at least 96 px)")
	c.RunE = func(c *cobra.Command, args []string) error {
		id := args[0]
		cli, err := api.client()
		if err != nil {
			return err
		}
		if dir == "" {
			dir = id
		}
		tty := isTerminal(os.Stderr)
		m, err := cli.Download(c.Context(), id, dir, client.DownloadOptions{Proxy: proxy, Parallel: parallel,
			Progress: func(done, total int) {
				if tty {
					fmt.Fprintf(os.Stderr, "\r\033[Kdownloaded %d/%d frames", done, total)
				}
			}})
		if tty {
			fmt.Fprintln(os.Stderr)
		}
		if err != nil {
			return err
		}
		if sheet != "" {
			scale := sheetScale
			if scale <= 0 {
				scale = max(1, (96+m.Spec.Width-1)/max(m.Spec.Width, 1))
			}
			whole, err := client.ReadManifestFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				return err
			}
			if err := client.WriteContactSheet(dir, whole, sheetCols, scale, sheet); err != nil {
				return err
			}
		}
		if *out != outputTable {
			// The manifest itself, whole: -o json|yaml holds it in memory.
			whole, err := client.ReadManifestFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				return err
			}
			return printRecord(stdout, *out, whole, nil)
		}
		fmt.Fprintf(stdout, "%d frames and manifest.json in %s (%d failed frames listed in the manifest)\n",
			m.FrameCount, filepath.Clean(dir), m.FailedCount)
		for _, o := range m.Outputs {
			fmt.Fprintf(stdout, "%s in %s\n", o.Name, filepath.Join(filepath.Clean(dir), o.Name))
		}
		for _, n := range m.Notes {
			fmt.Fprintf(stdout, "note: %s\n", n)
		}
		if sheet != "" {
			fmt.Fprintf(stdout, "contact sheet of the frames in %s\n", sheet)
		}
		return nil
	}
	return c
}
