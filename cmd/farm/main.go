// Command farm is latentfarm's single binary: the all-in-one farm, the
// coordinator, GPU nodes, the user's CLI and the local renderer. Each
// subcommand lives in its own file, turns flags, environment and config
// into its package's Options and calls Run; the logic lives in the packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// holdsModels names the commands that keep model weights in memory. The
// weights are long-lived heap: with Go's default GOGC=100 the heap grows to
// twice their size before a collection (SD1.5 in f32: 6.4 GiB peak instead of
// 4.4, see docs/PERF.md), so these commands collect earlier unless the user
// set GOGC.
var holdsModels = map[string]bool{"render": true, "node": true, "up": true}

const modelGCPercent = 25

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks bad flags or arguments: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// stdin and stdout are the standard streams; tests replace them.
var (
	stdin  io.Reader = os.Stdin
	stdout io.Writer = os.Stdout
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run runs farm with args under a context that SIGINT and SIGTERM cancel,
// prints the error if any and returns the exit code.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, err := executeC(ctx, args)
	if err == nil {
		return exitOK
	}
	path := "farm"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
	if isUsage(err) {
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", path)
		return exitUsage
	}
	return exitFailure
}

// execute runs farm with args and returns the command's error; tests call it.
func execute(ctx context.Context, args ...string) error {
	_, err := executeC(ctx, args)
	return err
}

func executeC(ctx context.Context, args []string) (*cobra.Command, error) {
	root := newRootCmd()
	root.SetArgs(args)
	// Commands print their records to stdout and read stdin, which tests
	// replace; cobra's own output stays on the standard streams: help on
	// stdout, warnings (a deprecated flag) on stderr.
	root.SetIn(stdin)
	root.SetErr(os.Stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return flagError(c, args, err) })
	if len(args) == 0 {
		// farm alone is a usage error, as it always was.
		root.SetOut(os.Stderr)
		_ = root.Help()
		return root, usagef("want a command")
	}
	return root.ExecuteContextC(ctx)
}

// isUsage reports whether err is a usage error: ours, or cobra's for an
// unknown command.
func isUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ")
}

// newRootCmd builds the command tree.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "farm",
		Short: "a distributed render farm for Stable Diffusion",
		Long: "farm: a distributed render farm for Stable Diffusion.\n\n" +
			"farm up runs a whole farm on this machine; farm submit, watch, jobs, job, get and\n" +
			"cancel use it; farm render renders locally with no farm at all.",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRun: func(c *cobra.Command, _ []string) {
			if holdsModels[c.Name()] && c.Parent() == c.Root() && os.Getenv("GOGC") == "" {
				debug.SetGCPercent(modelGCPercent)
			}
		},
	}
	cobra.AddTemplateFunc("flagUsages", flagUsages)
	root.SetUsageTemplate(usageTemplate)
	root.AddGroup(
		&cobra.Group{ID: "farm", Title: "Running a farm:"},
		&cobra.Group{ID: "jobs", Title: "Using a farm:"},
		&cobra.Group{ID: "local", Title: "Without a farm:"},
	)
	for _, c := range []struct {
		group string
		cmd   *cobra.Command
	}{
		{"farm", newUpCmd()},
		{"farm", newCoordinatorCmd()},
		{"farm", newNodeCmd()},
		{"farm", newModelCmd()},
		{"farm", newTokenCmd()},
		{"jobs", newSubmitCmd()},
		{"jobs", newWatchCmd()},
		{"jobs", newJobsCmd()},
		{"jobs", newJobCmd()},
		{"jobs", newCancelCmd()},
		{"jobs", newDeleteCmd()},
		{"jobs", newGetCmd()},
		{"jobs", newNodesCmd()},
		{"local", newRenderCmd()},
		{"local", newPNGInfoCmd()},
		{"", newVersionCmd()},
		{"", newS3GatewayCmd()},
	} {
		c.cmd.GroupID = c.group
		root.AddCommand(c.cmd)
	}
	return root
}
