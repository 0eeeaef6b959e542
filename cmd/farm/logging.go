package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
)

// logFlags are --log-level and --log-json of the long-running commands.
type logFlags struct {
	level  string
	asJSON bool
}

func (f *logFlags) register(s *settings) {
	f.level = "info"
	s.String(&f.level, "log-level", "log level: trace, debug, info, warn, error", "FARM_LOG_LEVEL")
	s.Bool(&f.asJSON, "log-json", "log as JSON", "FARM_LOG_JSON")
}

// logger is the root logger, on stderr; components name their own with Named.
func (f *logFlags) logger() (hclog.Logger, error) {
	l := hclog.LevelFromString(f.level)
	if l == hclog.NoLevel {
		return nil, usagef("--log-level %q: want trace, debug, info, warn or error", f.level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "farm", Level: l, JSONFormat: f.asJSON, Output: os.Stderr}), nil
}
