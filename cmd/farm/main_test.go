package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// quietStderr sends the commands' usage text to /dev/null for the test.
func quietStderr(t *testing.T) {
	t.Helper()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = null
	t.Cleanup(func() {
		os.Stderr = old
		null.Close()
	})
}

// quietStdout sends what goes to os.Stdout (cobra's help) to /dev/null.
func quietStdout(t *testing.T) {
	t.Helper()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = null
	t.Cleanup(func() {
		os.Stdout = old
		null.Close()
	})
}

// allCommands walks the command tree, cobra's completion and help commands
// included, and returns the path of every command below the root.
func allCommands(t *testing.T) [][]string {
	t.Helper()
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(append([]string(nil), path...), sub.Name())
			paths = append(paths, p)
			walk(sub, p)
		}
	}
	walk(root, nil)
	return paths
}

// TestRun_HelpExitsZero asks every command of the tree for help, with
// --help and -h: that is never a usage error.
func TestRun_HelpExitsZero(t *testing.T) {
	quietStderr(t)
	quietStdout(t)
	cmds := allCommands(t)
	seen := map[string]bool{}
	for _, c := range cmds {
		seen[strings.Join(c, " ")] = true
	}
	for _, want := range []string{"up", "coordinator", "node", "submit", "jobs", "job", "watch", "cancel", "get", "nodes",
		"render", "png-info", "version", "model", "model init-tiny", "model push", "model list", "completion bash",
		"completion zsh", "completion fish", "s3-gateway"} {
		if !seen[want] {
			t.Errorf("no command farm %s in the tree", want)
		}
	}
	for _, cmd := range append(cmds, nil) { // nil: farm itself
		for _, h := range []string{"--help", "-h"} {
			args := append(append([]string(nil), cmd...), h)
			if code := run(args); code != 0 {
				t.Errorf("farm %s: exit code %d, want 0", strings.Join(args, " "), code)
			}
		}
	}
}

// TestRun_ExitCodes: usage errors exit 2 with a message saying what is
// wrong, failures 1.
func TestRun_ExitCodes(t *testing.T) {
	quietStderr(t)
	quietStdout(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "want a command"},
		{[]string{"bogus"}, 2, `unknown command "bogus" for "farm"`},
		{[]string{"model"}, 2, "want a subcommand: init-tiny, push or list"},
		{[]string{"model", "bogus"}, 2, `unknown model command "bogus": want init-tiny, push or list`},
		{[]string{"jobs", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"jobs", "extra"}, 2, `unexpected arguments ["extra"]`},
		{[]string{"job"}, 2, "want one job id"},
		{[]string{"coordinator", "-listen", ":8080"}, 2, "-listen: long flags take two dashes: --listen"},
		{[]string{"node", "-help"}, 2, "-help: long flags take two dashes: --help"},
		{[]string{"png-info", "/no/such/file.png"}, 1, "no such file"},
	} {
		err := execute(context.Background(), tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("farm %s: error %v, want one containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
		if code := run(tc.args); code != tc.code {
			t.Errorf("farm %s: exit code %d, want %d", strings.Join(tc.args, " "), code, tc.code)
		}
	}
}

// TestCompletion_Bash generates the bash completion script.
func TestCompletion_Bash(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"completion", "bash"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	script := out.String()
	for _, want := range []string{"# bash completion V2 for farm", "__start_farm", "complete -o default -F __start_farm farm"} {
		if !strings.Contains(script, want) {
			t.Errorf("bash completion script lacks %q", want)
		}
	}
	// The script asks the binary for completions: -o offers the formats.
	root = newRootCmd()
	out.Reset()
	root.SetOut(&out)
	root.SetArgs([]string{cobra.ShellCompRequestCmd, "jobs", "-o", ""})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "table\njson\nyaml\n") {
		t.Errorf("completions of jobs -o: %q", got)
	}
}
