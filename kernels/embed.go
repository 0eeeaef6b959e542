// Package kernels embeds the CUDA kernels of the CUDA backend as PTX: one
// .cu source per op family in this folder, compiled by `make kernels` with
// Debian's nvcc 11.8 for compute_80 (JIT-compiled by newer drivers for
// newer GPUs). Kernels are looked up by their extern "C" name. This package
// is plain Go with no cgo: it must never import gorgonia.org/cu or any
// backend, so importing it cannot tie a build to CUDA.
package kernels

import (
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

//go:embed *.ptx
var ptxFS embed.FS

// Families lists the op families with compiled PTX ("attention", "conv", ...).
func Families() []string {
	ents, _ := fs.Glob(ptxFS, "*.ptx")
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e, ".ptx"))
	}
	sort.Strings(out)
	return out
}

// PTX returns the PTX text of one family.
func PTX(family string) (string, error) {
	b, err := ptxFS.ReadFile(family + ".ptx")
	if err != nil {
		return "", fmt.Errorf("kernels: no PTX for family %q: %w", family, err)
	}
	return string(b), nil
}

var entryRE = regexp.MustCompile(`(?m)^\.visible \.entry ([A-Za-z_][A-Za-z0-9_]*)\(`)

// Entries returns the kernel names a PTX text defines, in order.
func Entries(ptx string) []string {
	var out []string
	for _, m := range entryRE.FindAllStringSubmatch(ptx, -1) {
		out = append(out, m[1])
	}
	return out
}
