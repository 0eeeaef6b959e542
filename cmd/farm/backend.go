package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/node"
)

// backendFlags are --backend and --device, shared by farm node and farm
// render. Empty means neither the flag nor the environment set it.
type backendFlags struct {
	choice, device string
}

func (f *backendFlags) register(s *settings) {
	s.String(&f.choice, "backend",
		"auto (CUDA when this binary has it and a GPU is present, else the CPU), cpu or cuda (default auto)", "FARM_BACKEND")
	s.String(&f.device, "device", "GPU to render on, as a CUDA ordinal; run one node per GPU (default 0)", "FARM_DEVICE")
}

// fill sets what neither a flag nor the environment set from a config
// file's values (choice "" and device nil: not in the file).
func (f *backendFlags) fill(choice string, device *int) {
	if f.choice == "" {
		f.choice = choice
	}
	if f.device == "" && device != nil {
		f.device = strconv.Itoa(*device)
	}
}

// parse returns the backend choice and the device, or the problems with
// the flags, worded for a usage error.
func (f *backendFlags) parse() (choice string, device int, problems []string) {
	choice = strings.ToLower(strings.TrimSpace(f.choice))
	if choice == "" {
		choice = node.BackendAuto
	}
	valid := false
	for _, c := range node.BackendChoices {
		valid = valid || c == choice
	}
	if !valid {
		problems = append(problems, fmt.Sprintf("--backend %q: want %s", f.choice, alternatives(node.BackendChoices)))
	}
	device, err := strconv.Atoi(cmp.Or(strings.TrimSpace(f.device), "0"))
	if err != nil || device < 0 {
		problems = append(problems, fmt.Sprintf("--device %q: want a GPU number, 0 or more", f.device))
	}
	return choice, device, problems
}

// open opens the backend the flags ask for, for farm render, and says on
// log which one and why; release frees it.
func (f *backendFlags) open(log io.Writer) (b backend.Backend, release func(), err error) {
	choice, device, problems := f.parse()
	if len(problems) > 0 {
		return nil, nil, usagef("%s", strings.Join(problems, "; "))
	}
	b, _, line, err := node.SelectBackend(choice, device, nil, 0)
	if err != nil {
		return nil, nil, errors.New(strings.TrimPrefix(err.Error(), "node: "))
	}
	fmt.Fprintln(log, line)
	release = func() {}
	if c, ok := b.(io.Closer); ok {
		release = func() { _ = c.Close() }
	}
	return b, release, nil
}

// progressOut is where farm render writes progress: stderr, or nowhere.
func progressOut(quiet bool) io.Writer {
	if quiet {
		return io.Discard
	}
	return os.Stderr
}
