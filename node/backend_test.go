package node

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// fakeGPUs is a GPUSource with set devices; Free returns the next of frees
// (the last one again when they run out) or freeErr.
type fakeGPUs struct {
	devs    []wire.GPU
	driver  string
	err     error
	mu      sync.Mutex
	frees   []int64
	freeErr error
	asked   []int
}

var _ GPUSource = (*fakeGPUs)(nil)

func (f *fakeGPUs) Devices() ([]wire.GPU, string, error) {
	return append([]wire.GPU(nil), f.devs...), f.driver, f.err
}

func (f *fakeGPUs) Free(index int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, index)
	if f.freeErr != nil {
		return 0, f.freeErr
	}
	free := f.frees[0]
	if len(f.frees) > 1 {
		f.frees = f.frees[1:]
	}
	return free, nil
}

const gib = int64(1) << 30

// card is a fake GPU with total and free GiB.
func card(index int, name string, total, free float64) wire.GPU {
	return wire.GPU{Index: index, Name: name, ComputeCapability: "8.9",
		TotalVRAM: int64(total * float64(gib)), FreeVRAM: int64(free * float64(gib))}
}

func TestCUDAFingerprint_ClassesFollowFreeVRAM(t *testing.T) {
	for _, tc := range []struct {
		name        string
		total, free float64
		vram        int64
		largest     wire.Class // "" for none
	}{
		{"idle 24 GiB card", 24, 23.5, 0, "cuda24"},
		{"24 GiB card with 20 GiB free", 24, 20, 0, "cuda16"},
		{"24 GiB card half used by another process", 24, 12, 0, "cuda8"},
		{"80 GiB card", 79.6, 79.1, 0, "cuda80"},
		{"capped by vram", 24, 23.5, 8 * gib, "cuda8"},
		{"vram above what is free changes nothing", 24, 20, 48 * gib, "cuda16"},
		{"almost nothing free", 24, 0.2, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := card(0, "NVIDIA GeForce RTX 4090", tc.total, tc.free)
			fp, _ := cudaFingerprint(dev, "550.54.15", dev.FreeVRAM, tc.vram, &fakeGPUs{})
			want := max(dev.FreeVRAM-vramHeadroom(dev.TotalVRAM), 0)
			if tc.vram > 0 {
				want = min(want, tc.vram)
			}
			if fp.UsableBytes != want {
				t.Errorf("usable = %s; want %s", wire.FormatBytes(fp.UsableBytes), wire.FormatBytes(want))
			}
			classes := fp.Classes()
			largest := wire.Class("")
			if len(classes) > 0 {
				largest = classes[0]
			}
			if largest != tc.largest {
				t.Errorf("largest class = %q; want %q (classes %v)", largest, tc.largest, classes)
			}
			if tc.largest != "" && !slices.Contains(classes, wire.Class("vram"+strings.TrimPrefix(string(tc.largest), "cuda"))) {
				t.Errorf("classes %v: want the any-backend class of the same tier", classes)
			}
			for _, c := range classes {
				if strings.HasPrefix(string(c), "cpu") {
					t.Errorf("classes %v: a CUDA node must not serve %s", classes, c)
				}
			}
		})
	}
}

func TestCUDAFingerprint_Fields(t *testing.T) {
	for _, tc := range []struct {
		name, driver, line string
	}{
		{"with driver", "550.54.15",
			"backend cuda: NVIDIA GeForce RTX 4090 (8.9) on device 1, 20.0 GiB free of 24.0 GiB, driver 550.54.15"},
		{"driver unknown", "",
			"backend cuda: NVIDIA GeForce RTX 4090 (8.9) on device 1, 20.0 GiB free of 24.0 GiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := card(1, "NVIDIA GeForce RTX 4090", 24, 21) // free before the backend opened
			src := &fakeGPUs{}
			fp, line := cudaFingerprint(dev, tc.driver, 20*gib, 0, src)
			if line != tc.line {
				t.Errorf("line = %q\nwant   %q", line, tc.line)
			}
			if fp.Backend != wire.BackendCUDA || fp.Driver != tc.driver || fp.gpus != src {
				t.Errorf("fingerprint = %+v; want backend cuda, driver %q and the source", fp, tc.driver)
			}
			want := dev
			want.FreeVRAM, want.DriverVersion = 20*gib, tc.driver
			if len(fp.Devices) != 1 || fp.Devices[0] != want {
				t.Errorf("devices = %+v; want [%+v]", fp.Devices, want)
			}
			if fp.CPUCores <= 0 || fp.MemoryBytes <= 0 {
				t.Errorf("host: %d cores, %d bytes; want both measured", fp.CPUCores, fp.MemoryBytes)
			}
		})
	}
}

func TestFingerprint_RefreshFree_CUDA(t *testing.T) {
	dev := card(2, "NVIDIA L4", 22, 20)
	src := &fakeGPUs{frees: []int64{20 * gib, 14 * gib, 9 * gib}}
	fp, _ := cudaFingerprint(dev, "", 20*gib, 0, src)
	usable, classes := fp.UsableBytes, fp.Classes()
	for _, want := range []int64{20 * gib, 14 * gib, 9 * gib} {
		fp.refreshFree()
		if got := fp.Devices[0].FreeVRAM; got != want {
			t.Errorf("free = %s; want %s", wire.FormatBytes(got), wire.FormatBytes(want))
		}
	}
	src.freeErr = errors.New("nvml: gpu is lost")
	fp.refreshFree()
	if got := fp.Devices[0].FreeVRAM; got != 9*gib {
		t.Errorf("after a failed read free = %s; want the last value, 9.0 GiB", wire.FormatBytes(got))
	}
	if !slices.Equal(src.asked, []int{2, 2, 2, 2}) {
		t.Errorf("Free asked for devices %v; want the node's device 2 each time", src.asked)
	}
	if fp.UsableBytes != usable || !slices.Equal(fp.Classes(), classes) {
		t.Errorf("usable %d, classes %v changed to %d, %v: the tier is fixed at start", usable, classes, fp.UsableBytes, fp.Classes())
	}
}

// pooled is an engine backend whose pool holds reserved bytes.
type pooled struct {
	backend.Backend
	reserved int64
}

func (p pooled) MemStats() (reserved, peakReserved, live, peakLive int64) {
	return p.reserved, p.reserved, p.reserved / 2, p.reserved / 2
}

func TestFingerprint_HeldVRAM(t *testing.T) {
	for _, tc := range []struct {
		name   string
		engine backend.Backend
		want   int64
	}{
		{"cuda backend with a pool", pooled{reserved: 3 * gib}, 3 * gib},
		{"cpu backend", cpu.New(), 0},
		{"no backend", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := Fingerprint{engine: tc.engine}
			if got := fp.heldVRAM(); got != tc.want {
				t.Errorf("heldVRAM = %d; want %d", got, tc.want)
			}
		})
	}
}

func TestPickDevice(t *testing.T) {
	l4 := card(0, "NVIDIA L4", 22, 20)
	for _, tc := range []struct {
		name        string
		src         *fakeGPUs
		device      int
		want        string // the device's name, or the error
		unavailable bool
	}{
		{"first", &fakeGPUs{devs: []wire.GPU{l4}, driver: "550.54.15"}, 0, "NVIDIA L4", false},
		{"second", &fakeGPUs{devs: []wire.GPU{l4, card(1, "NVIDIA A100", 80, 79)}}, 1, "NVIDIA A100", false},
		{"no NVML", &fakeGPUs{err: errors.New("nvml: libnvidia-ml.so.1 not found")}, 0,
			"node: backend cuda: no GPU found (nvml: libnvidia-ml.so.1 not found)", true},
		{"no GPU", &fakeGPUs{}, 0, "node: backend cuda: no GPU found", true},
		{"device not there", &fakeGPUs{devs: []wire.GPU{l4}}, 1,
			"node: device 1: this machine has 1 GPU(s) (0: NVIDIA L4)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, driver, err := pickDevice(tc.src, tc.device)
			if err != nil {
				if err.Error() != tc.want {
					t.Errorf("err = %q; want %q", err, tc.want)
				}
				if errors.Is(err, ErrCUDAUnavailable) != tc.unavailable {
					t.Errorf("errors.Is(%v, ErrCUDAUnavailable) = %v; want %v", err, !tc.unavailable, tc.unavailable)
				}
				return
			}
			if dev.Name != tc.want || driver != tc.src.driver {
				t.Errorf("device %q, driver %q; want %q, %q", dev.Name, driver, tc.want, tc.src.driver)
			}
		})
	}
}

func TestParseDriverVersion(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"proprietary", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  Wed Jul 23 19:41:05 UTC 2025\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n", "535.261.03"},
		{"open", "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  (dvs-builder@U16-I3-B03-4-3)  Tue Mar  5 22:15:33 UTC 2024\n", "550.54.15"},
		{"aarch64", "NVRM version: NVIDIA UNIX aarch64 Kernel Module  560.35.03  Fri Aug 16 21:21:48 UTC 2024\n", "560.35.03"},
		{"no NVRM line", "GCC version:  gcc version 12.2.0\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseDriverVersion(tc.in); got != tc.want {
				t.Errorf("parseDriverVersion = %q; want %q", got, tc.want)
			}
		})
	}
}
