//go:build cuda

package gpuinfo

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Library is the NVML library Open loads: the driver installs it, a
// container sees it when its NVIDIA_DRIVER_CAPABILITIES include utility.
const Library = "libnvidia-ml.so.1"

// ErrNotFound is returned by Open when NVML cannot be loaded.
var ErrNotFound = errors.New(Library + " not found")

// Device is one GPU as NVML sees it.
type Device struct {
	// Index is NVML's index (PCI bus order). It is not the CUDA ordinal,
	// which follows CUDA_DEVICE_ORDER and CUDA_VISIBLE_DEVICES: match the
	// two by UUID.
	Index int
	// UUID is "GPU-" and the device's UUID, as cuDeviceGetUuid gives it.
	UUID string
	Name string
	// ComputeCapability is "major.minor", e.g. "9.0".
	ComputeCapability string
	TotalBytes        int64
	FreeBytes         int64
}

// NVML is an initialised NVML library. It is safe for concurrent use.
type NVML struct {
	mu     sync.Mutex
	lib    nvml.Interface
	closed bool
}

// Open loads libnvidia-ml.so.1 and initialises NVML; Close shuts it down.
func Open() (*NVML, error) { return OpenLibrary("") }

// OpenLibrary is Open with the library at path (empty: Library, found by
// the dynamic loader).
func OpenLibrary(path string) (*NVML, error) {
	var opts []nvml.LibraryOption
	if path != "" {
		opts = append(opts, nvml.WithLibraryPath(path))
	}
	lib := nvml.New(opts...)
	switch ret := lib.Init(); ret {
	case nvml.SUCCESS:
		return &NVML{lib: lib}, nil
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		if path != "" {
			return nil, fmt.Errorf("nvml: %s: %w", path, ErrNotFound)
		}
		return nil, fmt.Errorf("nvml: %w", ErrNotFound)
	default:
		// The library is there but the driver is not usable: no kernel
		// module (ERROR_DRIVER_NOT_LOADED), a library of another driver
		// version (ERROR_LIB_RM_VERSION_MISMATCH), no permission...
		return nil, fmt.Errorf("nvml: init: %s", describe(ret))
	}
}

// Close shuts NVML down; it is safe to call twice.
func (n *NVML) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if ret := n.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml: shutdown: %s", describe(ret))
	}
	return nil
}

// Driver is the NVIDIA driver version, e.g. "550.54.15".
func (n *NVML) Driver() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return "", err
	}
	v, ret := n.lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return "", fmt.Errorf("nvml: driver version: %s", describe(ret))
	}
	return v, nil
}

// Devices lists every GPU NVML sees, by NVML index.
func (n *NVML) Devices() ([]Device, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return nil, err
	}
	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml: device count: %s", describe(ret))
	}
	out := make([]Device, 0, count)
	for i := range count {
		d, err := n.device(i)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Free is the free memory of the GPU at NVML index i now.
func (n *NVML) Free(i int) (int64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.usable(); err != nil {
		return 0, err
	}
	h, ret := n.lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return 0, fmt.Errorf("nvml: device %d: %s", i, describe(ret))
	}
	mem, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return 0, fmt.Errorf("nvml: device %d: memory info: %s", i, describe(ret))
	}
	return int64(mem.Free), nil
}

func (n *NVML) usable() error {
	if n.closed {
		return errors.New("nvml: used after Close")
	}
	return nil
}

// device reads GPU i; n.mu is held.
func (n *NVML) device(i int) (Device, error) {
	d := Device{Index: i}
	h, ret := n.lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return d, fmt.Errorf("nvml: device %d: %s", i, describe(ret))
	}
	if d.UUID, ret = h.GetUUID(); ret != nvml.SUCCESS {
		return d, fmt.Errorf("nvml: device %d: uuid: %s", i, describe(ret))
	}
	if d.Name, ret = h.GetName(); ret != nvml.SUCCESS {
		return d, fmt.Errorf("nvml: device %d: name: %s", i, describe(ret))
	}
	major, minor, ret := h.GetCudaComputeCapability()
	if ret != nvml.SUCCESS {
		return d, fmt.Errorf("nvml: device %d: compute capability: %s", i, describe(ret))
	}
	d.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	mem, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return d, fmt.Errorf("nvml: device %d: memory info: %s", i, describe(ret))
	}
	d.TotalBytes, d.FreeBytes = int64(mem.Total), int64(mem.Free)
	return d, nil
}

// describe is NVML's message for ret, lower-cased, with its code name when
// NVML gave only that ("ERROR_DRIVER_NOT_LOADED" before the library loads).
func describe(ret nvml.Return) string {
	s := nvml.ErrorString(ret)
	if strings.HasPrefix(s, "ERROR_") {
		return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s, "ERROR_"), "_", " "))
	}
	return strings.ToLower(s)
}
