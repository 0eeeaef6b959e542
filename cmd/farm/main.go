// Command farm is latentfarm's single binary: the all-in-one farm, the
// coordinator, GPU nodes, the user's CLI and the local renderer. Each
// subcommand lives in its own file, turns flags into its package's Options
// and calls Run; the logic lives in the packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"
)

// command is one subcommand. run parses args itself and returns an error;
// a *usageError makes the process exit with code 2.
type command struct {
	summary string
	hidden  bool
	run     func(ctx context.Context, args []string) error
}

// commands is filled by the init functions of the files in this folder.
var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

func registerHidden(name string, run func(ctx context.Context, args []string) error) {
	commands[name] = command{hidden: true, run: run}
}

// holdsModels names the commands that keep model weights in memory. The
// weights are long-lived heap: with Go's default GOGC=100 the heap grows to
// twice their size before a collection (SD1.5 in f32: 6.4 GiB peak instead of
// 4.4, see docs/PERF.md), so these commands collect earlier unless the user
// set GOGC.
var holdsModels = map[string]bool{"render": true, "node": true, "up": true}

const modelGCPercent = 25

// usageError marks bad flags or arguments: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// parseFlags parses args with fs, turning flag errors into usage errors.
// fs must use flag.ContinueOnError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error()}
	}
	return nil
}

func usage() {
	fmt.Fprintf(os.Stderr, "farm: a distributed render farm for Stable Diffusion\n\nusage: farm <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for name, c := range commands {
		if !c.hidden {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", name, commands[name].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'farm <command> -h' for the flags of a command.\n")
}

// helpFlags are the ways to ask a command for help.
var helpFlags = map[string]bool{"-h": true, "-help": true, "--help": true}

// commandHelp prints the summary of a command that has no flags to print.
func commandHelp(name string, c command) {
	fmt.Fprintf(os.Stderr, "usage: farm %s <command> [flags]\n\n%s\n\nRun 'farm %s <command> -h' for the flags of a command.\n", name, c.summary, name)
}

// stdin and stdout are the standard streams; tests replace them.
var (
	stdin  io.Reader = os.Stdin
	stdout io.Writer = os.Stdout
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || helpFlags[args[0]] || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "farm: unknown command %q\n\n", args[0])
		usage()
		return 2
	}
	if holdsModels[args[0]] && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(modelGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue) && len(args) > 1 && helpFlags[args[1]]:
		// A command of subcommands ("farm model") takes no flags of its own
		// and refuses -h as an unknown subcommand: asked for help, it gets
		// its summary, and each subcommand answers -h itself.
		commandHelp(args[0], c)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "farm %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "farm %s: %v\n", args[0], err)
		return 1
	}
}
