package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/latentfarm/latentfarm/client"
)

func init() {
	register("get", "download a finished job's frames and manifest", runGet)
}

func runGet(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	dir := fs.String("dir", "", "directory to write into (default ./ID)")
	proxy := fs.Bool("proxy", false, "download through the coordinator instead of presigned S3 URLs")
	parallel := fs.Int("parallel", 8, "downloads at once")
	sheet := fs.String("sheet", "", "also write the frames side by side into this PNG file")
	sheetCols := fs.Int("sheet-columns", 16, "frames a row in the --sheet image")
	sheetScale := fs.Int("sheet-scale", 0, "upscale factor of each frame in the --sheet image (default: to at least 96 px)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm get ID [--dir DIR] [flags]\n\nWrites DIR/manifest.json, DIR/frames/<index>.png and, for an animation,\nDIR/animation.gif and DIR/animation.mp4 (when a node had ffmpeg).\n\n")
		fs.PrintDefaults()
	}
	id, cli, err := cf.jobArgs(fs, args)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = id
	}
	tty := isTerminal(os.Stderr)
	m, err := cli.Download(ctx, id, *dir, client.DownloadOptions{Proxy: *proxy, Parallel: *parallel,
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
	fmt.Fprintf(os.Stdout, "%d frames and manifest.json in %s (%d failed frames listed in the manifest)\n",
		len(m.Frames), filepath.Clean(*dir), len(m.Failed))
	for _, o := range m.Outputs {
		fmt.Fprintf(os.Stdout, "%s in %s\n", o.Name, filepath.Join(filepath.Clean(*dir), o.Name))
	}
	for _, n := range m.Notes {
		fmt.Fprintf(os.Stdout, "note: %s\n", n)
	}
	if *sheet == "" {
		return nil
	}
	scale := *sheetScale
	if scale <= 0 {
		scale = max(1, (96+m.Spec.Width-1)/max(m.Spec.Width, 1))
	}
	if err := client.WriteContactSheet(*dir, m, *sheetCols, scale, *sheet); err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "contact sheet of the frames in %s\n", *sheet)
	return nil
}
