//go:build cuda

package node

import (
	"fmt"
	"strings"
	"sync"

	"gorgonia.org/cu"

	"github.com/latentfarm/latentfarm/diffusion/backend/cuda"
	"github.com/latentfarm/latentfarm/node/gpuinfo"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// cudaBuilt tells whether this binary has the CUDA backend.
const cudaBuilt = true

// DefaultGPUSource is the GPU source of a cuda build: NVML, and
// cuMemGetInfo through the CUDA driver for a device NVML cannot describe
// (no libnvidia-ml, as in a container without the utility capability, or
// a MIG instance, whose UUID NVML does not list among the GPUs).
func DefaultGPUSource() GPUSource { return &cudaGPUs{} }

// cudaGPUs is DefaultGPUSource in a cuda build.
type cudaGPUs struct {
	mu     sync.Mutex
	opened bool
	nv     *gpuinfo.NVML // nil when NVML did not open; nvErr says why
	nvErr  error
	// nvIndex maps CUDA ordinals to NVML indices: they differ when
	// CUDA_VISIBLE_DEVICES or CUDA_DEVICE_ORDER reorder the GPUs.
	nvIndex map[int]int
	// b is the backend SelectBackend opened; Free reads cuMemGetInfo
	// through it for a device NVML does not know.
	b *cuda.Backend
}

var (
	_ GPUSource = (*cudaGPUs)(nil)
	// heldVRAM reads the pool through this method.
	_ interface {
		MemStats() (reserved, peakReserved, live, peakLive int64)
	} = (*cuda.Backend)(nil)
)

// Devices implements GPUSource, matching CUDA devices to NVML's by UUID.
func (s *cudaGPUs) Devices() ([]wire.GPU, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opened {
		s.nv, s.nvErr = gpuinfo.Open()
		s.opened = true
	}
	n, err := cu.NumDevices()
	if err != nil {
		return nil, "", fmt.Errorf("cuda: counting devices: %w", err)
	}
	if n == 0 && s.nvErr != nil {
		return nil, "", s.nvErr
	}
	byUUID := map[string]gpuinfo.Device{}
	driver := ""
	if s.nv != nil {
		if nd, err := s.nv.Devices(); err == nil {
			for _, d := range nd {
				byUUID[strings.ToLower(d.UUID)] = d
			}
		}
		driver, _ = s.nv.Driver()
	}
	if driver == "" {
		driver = procDriverVersion()
	}
	s.nvIndex = map[int]int{}
	out := make([]wire.GPU, n)
	var viaCUDA []cuda.DeviceInfo
	for i := range n {
		if d, ok := byUUID[cudaUUID(i)]; ok {
			out[i] = wire.GPU{Index: i, Name: d.Name, ComputeCapability: d.ComputeCapability,
				TotalVRAM: d.TotalBytes, FreeVRAM: d.FreeBytes}
			s.nvIndex[i] = d.Index
			continue
		}
		if viaCUDA == nil {
			if viaCUDA, err = cuda.Devices(); err != nil {
				if s.nvErr != nil {
					err = fmt.Errorf("%v; %w", s.nvErr, err)
				}
				return nil, driver, err
			}
		}
		d := viaCUDA[i]
		out[i] = wire.GPU{Index: i, Name: d.Name, ComputeCapability: d.ComputeCapability(),
			TotalVRAM: d.TotalBytes, FreeVRAM: d.FreeBytes}
	}
	return out, driver, nil
}

// cudaUUID is CUDA device i's UUID as NVML spells it, lower-cased, or "".
func cudaUUID(i int) string {
	dev, err := cu.GetDevice(i)
	if err != nil {
		return ""
	}
	u, err := dev.UUID()
	if err != nil {
		return ""
	}
	return "gpu-" + strings.ToLower(u.String())
}

// Free implements GPUSource: NVML, else cuMemGetInfo in the open backend's
// context when it runs on device index.
func (s *cudaGPUs) Free(index int) (int64, error) {
	s.mu.Lock()
	nv, nvi, known, b := s.nv, 0, false, s.b
	if s.nvIndex != nil {
		nvi, known = s.nvIndex[index]
	}
	s.mu.Unlock()
	if known {
		if free, err := nv.Free(nvi); err == nil {
			return free, nil
		}
	}
	if b == nil || b.Options().Device != index {
		return 0, fmt.Errorf("node: device %d: NVML does not know it and no backend is open on it", index)
	}
	return backendFree(b)
}

// backendFree reads cuMemGetInfo through b. A backend closed at shutdown
// panics when used; the refresh that raced with it reads nothing.
func backendFree(b *cuda.Backend) (free int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("node: %v", r)
		}
	}()
	info, err := b.Device()
	if err != nil {
		return 0, err
	}
	return info.FreeBytes, nil
}

// bind gives Free the backend SelectBackend opened.
func (s *cudaGPUs) bind(b *cuda.Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = b
}
