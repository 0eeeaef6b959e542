package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

func TestPrintNodes(t *testing.T) {
	const gib = int64(1) << 30
	nodes := []wire.NodeInfo{
		{ID: "gpu0", Host: "h100-1", Backend: "cuda", State: wire.NodeReady, Capabilities: []string{wire.CapabilityFFmpeg},
			GPUs: []wire.GPU{{Name: "NVIDIA H100 80GB HBM3", ComputeCapability: "9.0", TotalVRAM: 85_469_593_600,
				FreeVRAM: 75_268_571_136, DriverVersion: "550.54.15"}},
			Classes: []wire.Class{"cuda80", "vram80"}},
		{ID: "cpu0", Host: "laptop", Backend: "cpu", State: wire.NodeBusy, CurrentTask: "job1-0",
			GPUs:    []wire.GPU{{Name: "cpu: AMD EPYC 7B13", TotalVRAM: 8 * gib, FreeVRAM: 6 * gib}},
			Classes: []wire.Class{"cpu8", "vram8"}},
	}
	var out strings.Builder
	if err := printNodes(&out, nodes); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("output:\n%s\nwant a header and two nodes", out.String())
	}
	for i, want := range [][]string{
		{"NODE", "BACKEND", "GPU", "VRAM USED/TOTAL", "DRIVER", "CAPABILITIES", "LARGEST CLASS"},
		{"gpu0", "cuda", "NVIDIA H100 80GB HBM3", "9.5 GiB / 79.6 GiB", "550.54.15", "ffmpeg", "cuda80"},
		{"cpu0", "cpu", "cpu: AMD EPYC 7B13", "2.0 GiB / 8.0 GiB", "cpu8"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q: want %q in it", i, lines[i], w)
			}
		}
	}
	// A node without a known driver or capabilities shows dashes.
	if f := strings.Fields(lines[2]); !slices.Contains(f, "-") {
		t.Errorf("cpu line %q: want - for its driver and capabilities", lines[2])
	}
}
