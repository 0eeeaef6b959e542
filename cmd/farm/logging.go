package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
)

// newLogger is the root logger of the long-running commands, on stderr;
// components name their own with Named.
func newLogger(level string, asJSON bool) (hclog.Logger, error) {
	l := hclog.LevelFromString(level)
	if l == hclog.NoLevel {
		return nil, usagef("--log-level %q: want trace, debug, info, warn or error", level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "farm", Level: l, JSONFormat: asJSON, Output: os.Stderr}), nil
}
