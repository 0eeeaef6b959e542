package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
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

// modelSubcommands are farm model's subcommands, as its own error for an
// unknown one lists them ("want init-tiny, push or list").
func modelSubcommands(t *testing.T) []string {
	t.Helper()
	err := runModel(context.Background(), []string{"no-such-subcommand"})
	_, list, ok := strings.Cut(err.Error(), "want ")
	if !ok {
		t.Fatalf("farm model no-such-subcommand: %v, want an error listing the subcommands", err)
	}
	return strings.Split(strings.ReplaceAll(list, " or ", ", "), ", ")
}

// TestRun_HelpExitsZero asks every command, and every subcommand of farm
// model, for help: that is never a usage error.
func TestRun_HelpExitsZero(t *testing.T) {
	quietStderr(t)
	var cmds [][]string
	for name := range commands {
		cmds = append(cmds, []string{name})
	}
	subs := modelSubcommands(t)
	if !slices.Contains(subs, "init-tiny") || !slices.Contains(subs, "list") {
		t.Fatalf("farm model subcommands %q", subs)
	}
	for _, sub := range subs {
		cmds = append(cmds, []string{"model", sub})
	}
	cmds = append(cmds, nil) // farm itself
	for _, cmd := range cmds {
		for _, h := range []string{"--help", "-h", "-help"} {
			args := append(slices.Clone(cmd), h)
			if code := run(args); code != 0 {
				t.Errorf("farm %s: exit code %d, want 0", strings.Join(args, " "), code)
			}
		}
	}
	// A wrong subcommand is still a usage error.
	if code := run([]string{"model", "bogus"}); code != 2 {
		t.Errorf("farm model bogus: exit code %d, want 2", code)
	}
}
