package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/spf13/cobra"
)

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

func newVersionCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "version",
		Short: "print the version, commit and Go version this binary was built from",
		Long: "Prints the version this binary was built as (the one its images carry), its\n" +
			"module version, VCS revision and whether the tree had uncommitted changes, and\n" +
			"the Go version and platform.",
		Args: noArgs,
	}
	out := addOutputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		b := readBuildInfo()
		return printRecord(stdout, *out, b, func(w io.Writer) error { return printBuildInfo(w, b) })
	}
	return c
}

// printBuildInfo writes the human view of farm version.
func printBuildInfo(w io.Writer, b buildInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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
