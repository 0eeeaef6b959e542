package node

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// Device describes one compute device of a node: a GPU, or the host's memory
// on a CPU node.
type Device = wire.GPU

// Fingerprint is what a node knows about its compute. SelectBackend makes
// one; DetectCPU makes a CPU node's.
type Fingerprint struct {
	// Backend is cpu or cuda.
	Backend string
	// Devices lists the GPU the node renders on; a CPU node lists one
	// device standing for the host, whose "VRAM" is the memory it gives to
	// rendering.
	Devices     []Device
	CPUCores    int
	MemoryBytes int64
	// UsableBytes is the memory one task may use: on a CUDA node the
	// device's free VRAM at start less a headroom (cudaFingerprint), on a
	// CPU node the host's total or the posed size.
	UsableBytes int64
	// Driver is the NVIDIA driver version of a CUDA node, when known.
	Driver string

	// posed is set when the usable size was configured, not measured.
	posed bool
	// gpus refreshes a CUDA node's free VRAM.
	gpus GPUSource
	// engine is the backend SelectBackend opened for this compute; nil
	// leaves the engine its default (the CPU backend).
	engine backend.Backend
}

// Classes are the task classes a node with this fingerprint serves.
func (f Fingerprint) Classes() []wire.Class {
	return wire.ClassesForNode(f.Backend, f.UsableBytes)
}

// DetectCPU fingerprints the host as a CPU node. vram, when positive, is the
// memory the node offers to rendering (and claims as its "VRAM"); otherwise
// it offers the host's total memory.
func DetectCPU(vram int64) (Fingerprint, error) {
	total, avail, err := memInfo()
	if err != nil {
		return Fingerprint{}, err
	}
	usable := total
	if vram > 0 {
		usable = vram
	}
	free := min(avail, usable)
	if vram > 0 {
		// A posed size is a promise for tests and capacity planning: free
		// memory is reported inside it.
		free = usable
	}
	dev := Device{Index: 0, Name: cpuName(), TotalVRAM: usable, FreeVRAM: free}
	return Fingerprint{
		Backend:     wire.BackendCPU,
		Devices:     []Device{dev},
		CPUCores:    runtime.NumCPU(),
		MemoryBytes: total,
		UsableBytes: usable,
		posed:       vram > 0,
	}, nil
}

// memInfo reads MemTotal and MemAvailable from /proc/meminfo.
func memInfo() (total, avail int64, err error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0, fmt.Errorf("node: fingerprint: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, perr := strconv.ParseInt(fields[1], 10, 64)
		if perr != nil {
			continue
		}
		switch fields[0] {
		case "MemTotal:":
			total = kb << 10
		case "MemAvailable:":
			avail = kb << 10
		}
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("node: fingerprint: no MemTotal in /proc/meminfo")
	}
	if avail == 0 {
		avail = total
	}
	return total, avail, nil
}

// cpuName is the host's CPU model from /proc/cpuinfo, or "cpu".
func cpuName() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				return "cpu: " + strings.TrimSpace(v)
			}
		}
	}
	return "cpu: " + runtime.GOARCH
}

// refreshFree updates the free memory of the node's devices: a CUDA node's
// from its GPU source (the tier stays the one it joined at start), a CPU
// node's from /proc/meminfo. A failed read keeps the last value.
func (f *Fingerprint) refreshFree() {
	if f.Backend == wire.BackendCUDA {
		if f.gpus == nil {
			return
		}
		for i := range f.Devices {
			if free, err := f.gpus.Free(f.Devices[i].Index); err == nil {
				f.Devices[i].FreeVRAM = free
			}
		}
		return
	}
	if f.Backend != wire.BackendCPU || len(f.Devices) != 1 || f.posed {
		return
	}
	if _, avail, err := memInfo(); err == nil {
		f.Devices[0].FreeVRAM = min(avail, f.UsableBytes)
	}
}
