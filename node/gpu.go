package node

import (
	"errors"
	"os"
	"strings"
)

// errBuiltWithoutCUDA is why a binary without the cuda tag renders on the CPU.
var errBuiltWithoutCUDA = errors.New("this binary was built without CUDA (build with -tags cuda)")

// procDriverVersion is the NVIDIA kernel module's version from
// /proc/driver/nvidia/version, or "" where there is none: the driver
// version of a node whose NVML is missing.
func procDriverVersion() string {
	data, err := os.ReadFile("/proc/driver/nvidia/version")
	if err != nil {
		return ""
	}
	return parseDriverVersion(string(data))
}

// parseDriverVersion reads the first version number ("550.54.15") of the
// NVRM line, which reads "NVRM version: NVIDIA UNIX x86_64 Kernel Module
// 550.54.15  Tue ..." or "... Open Kernel Module for x86_64  550.54.15 ...".
func parseDriverVersion(s string) string {
	for _, line := range strings.Split(s, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "NVRM version:")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if isVersion(f) {
				return f
			}
		}
	}
	return ""
}

// isVersion reports whether s is dotted digits with at least one dot.
func isVersion(s string) bool {
	dots := 0
	for i, r := range s {
		switch {
		case r == '.' && i > 0 && i < len(s)-1 && s[i-1] != '.':
			dots++
		case r < '0' || r > '9':
			return false
		}
	}
	return dots > 0
}
