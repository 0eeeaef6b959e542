package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/latentfarm/latentfarm/diffusion/pipeline"
)

func init() {
	register("version", "print the version, commit and Go version this binary was built from", runVersion)
}

// buildInfo is what farm version prints, from the build information the
// Go toolchain embeds.
type buildInfo struct {
	// Version is the one images carry in their parameters text.
	Version       string `json:"version"`
	Module        string `json:"module"`
	ModuleVersion string `json:"module_version"` // "(devel)" unless built from a tagged module
	Revision      string `json:"revision,omitempty"`
	Time          string `json:"time,omitempty"` // the revision's commit time
	Modified      bool   `json:"modified"`       // built from a tree with uncommitted changes
	Tags          string `json:"tags,omitempty"` // build tags: "cuda" has the CUDA backend
	Go            string `json:"go"`
	OS            string `json:"os"`
	Arch          string `json:"arch"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: pipeline.Version(), Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Module, b.ModuleVersion = bi.Main.Path, bi.Main.Version
	if bi.GoVersion != "" {
		b.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		case "-tags":
			b.Tags = s.Value
		}
	}
	return b
}

func runVersion(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm version [--json]\n\n"+
			"Prints the version this binary was built as (the one its images carry), its\n"+
			"module version, VCS revision and whether the tree had uncommitted changes, and\n"+
			"the Go version and platform.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	b := readBuildInfo()
	if *asJSON {
		return printJSON(stdout, b)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\n", b.Version)
	fmt.Fprintf(tw, "  module\t%s %s\n", b.Module, b.ModuleVersion)
	if b.Revision != "" {
		modified := ""
		if b.Modified {
			modified = " (modified)"
		}
		fmt.Fprintf(tw, "  revision\t%s%s\n", b.Revision, modified)
	}
	if b.Time != "" {
		fmt.Fprintf(tw, "  committed\t%s\n", b.Time)
	}
	if b.Tags != "" {
		fmt.Fprintf(tw, "  tags\t%s\n", b.Tags)
	}
	fmt.Fprintf(tw, "  go\t%s %s/%s\n", b.Go, b.OS, b.Arch)
	return tw.Flush()
}
