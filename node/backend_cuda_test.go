//go:build cuda

package node

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// TestSelectBackend_CUDA_ThisMachine runs on a GPU machine (a cuda test
// binary cannot start without the CUDA driver: gorgonia.org/cu exits from
// init): auto opens device 0 and fingerprints it from NVML.
func TestSelectBackend_CUDA_ThisMachine(t *testing.T) {
	for _, choice := range []string{BackendAuto, BackendCUDA} {
		t.Run(choice, func(t *testing.T) {
			b, fp, line, err := SelectBackend(choice, 0, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer b.(io.Closer).Close()
			t.Log(line)
			if b.Name() != "cuda:0" || fp.engine != b || !strings.HasPrefix(line, "backend cuda: ") {
				t.Fatalf("backend %s, line %q; want cuda:0", b.Name(), line)
			}
			if len(fp.Devices) != 1 {
				t.Fatalf("devices = %+v; want the one rendered on", fp.Devices)
			}
			d := fp.Devices[0]
			if fp.Backend != wire.BackendCUDA || d.Name == "" || d.ComputeCapability == "" || d.TotalVRAM <= 0 ||
				d.FreeVRAM <= 0 || d.FreeVRAM > d.TotalVRAM || fp.UsableBytes >= d.FreeVRAM || len(fp.Classes()) == 0 {
				t.Errorf("fingerprint = %+v; want a described device, usable under free, some classes", fp)
			}
			if fp.Driver == "" || d.DriverVersion != fp.Driver {
				t.Errorf("driver %q, device's %q; want the driver version in both", fp.Driver, d.DriverVersion)
			}
			// A tensor of 512 MiB (f16 uploads) shows in the refreshed free memory.
			before := d.FreeVRAM
			x := b.Zeros(256, 1024, 1024)
			fp.refreshFree()
			if used := before - fp.Devices[0].FreeVRAM; used < 256<<20 {
				t.Errorf("free went from %d to %d after allocating 512 MiB", before, fp.Devices[0].FreeVRAM)
			}
			if held := fp.heldVRAM(); held < 256<<20 {
				t.Errorf("heldVRAM = %d after allocating 512 MiB; want the pool counted", held)
			}
			b.Release(x)
		})
	}
	if _, _, _, err := SelectBackend(BackendAuto, 99, nil, 0); err == nil || errors.Is(err, ErrCUDAUnavailable) {
		t.Errorf("device 99: err = %v; want an error naming the machine's GPUs, not a fallback", err)
	}
}
