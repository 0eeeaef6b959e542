package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/cobra"
)

func newNodesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "nodes",
		Short: "list the registered nodes: backend, GPU, VRAM, driver, state, current task",
		Long:  "Lists the nodes registered with the farm: backend, GPUs, memory, driver, state and task.\n\n" + precedence,
		Args:  noArgs,
	}
	api := addAPIFlags(newSettings(c.Flags()))
	out := addOutputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		cli, err := api.client()
		if err != nil {
			return err
		}
		nodes, err := cli.Nodes(c.Context())
		if err != nil {
			return err
		}
		return printRecord(stdout, *out, wire.NodeList{Nodes: nodes}, func(w io.Writer) error { return printNodes(w, nodes) })
	}
	return c
}

// printNodes writes the nodes as a table: on a CUDA node VRAM is the GPU's
// (used = total - free, whoever uses it), on a CPU node the host memory it
// renders with.
func printNodes(w io.Writer, nodes []wire.NodeInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHOST\tBACKEND\tGPU\tVRAM USED/TOTAL\tDRIVER\tSTATE\tTASK\tDONE\tFAILED\tCAPABILITIES\tLARGEST CLASS")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", n.ID, n.Host, n.Backend, gpuNames(n), vramUse(n),
			driver(n), n.State, dash(n.CurrentTask), n.TasksDone, n.TasksFailed, dash(strings.Join(n.Capabilities, ",")), largestClass(n))
	}
	return tw.Flush()
}

// driver is the NVIDIA driver version of the node's GPUs, or "-".
func driver(n wire.NodeInfo) string {
	for _, g := range n.GPUs {
		if g.DriverVersion != "" {
			return g.DriverVersion
		}
	}
	return "-"
}

func gpuNames(n wire.NodeInfo) string {
	if len(n.GPUs) == 0 {
		return fmt.Sprintf("cpu (%d cores)", n.CPUCores)
	}
	names := make([]string, len(n.GPUs))
	for i, g := range n.GPUs {
		names[i] = g.Name
	}
	return strings.Join(names, ", ")
}

func vramUse(n wire.NodeInfo) string {
	total, free := n.VRAM()
	if total == 0 {
		return "- / " + gib(n.UsableBytes)
	}
	return gib(total-free) + " / " + gib(total)
}

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func largestClass(n wire.NodeInfo) string {
	if len(n.Classes) == 0 {
		return "-"
	}
	return string(n.Classes[0])
}
