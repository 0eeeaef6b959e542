package node

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/backend/cuda"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// Backend choices: what --backend asks for.
const (
	// BackendAuto renders on CUDA when the binary has it and a usable GPU
	// is present, else on the CPU, and says why.
	BackendAuto = "auto"
	BackendCPU  = wire.BackendCPU
	BackendCUDA = wire.BackendCUDA
)

// BackendChoices lists the values SelectBackend takes, for flag help.
var BackendChoices = []string{BackendAuto, BackendCPU, BackendCUDA}

// GPUSource reports the machine's GPUs: NVML with a cuMemGetInfo fallback
// in a cuda build (DefaultGPUSource), "built without CUDA" otherwise, a
// fake in tests.
type GPUSource interface {
	// Devices lists the GPUs by CUDA ordinal (what --device names): name,
	// compute capability, total and free memory; and the driver version
	// when it is known.
	Devices() (devs []wire.GPU, driver string, err error)
	// Free is the free memory of the GPU with CUDA ordinal index, now.
	Free(index int) (int64, error)
}

// ErrCUDAUnavailable is what SelectBackend's error matches (errors.Is) when
// --backend cuda cannot be honoured on this machine or by this binary.
var ErrCUDAUnavailable = errors.New("node: cuda unavailable")

// unavailableError says why CUDA cannot be used; auto falls back on it.
type unavailableError struct{ why string }

func (e *unavailableError) Error() string        { return "node: backend cuda: " + e.why }
func (e *unavailableError) Is(target error) bool { return target == ErrCUDAUnavailable }

func unavailable(format string, args ...any) error {
	return &unavailableError{why: fmt.Sprintf(format, args...)}
}

// SelectBackend opens the backend choice asks for (BackendChoices; empty is
// auto) on CUDA device device, and returns it with the node's fingerprint
// and one line saying what was chosen and why, for the log:
//
//	backend cpu: this binary was built without CUDA (build with -tags cuda)
//	backend cpu: no GPU found (nvml: libnvidia-ml.so.1 not found)
//	backend cuda: NVIDIA H100 80GB HBM3 (9.0) on device 0, 79.1 GiB free of 79.6 GiB, driver 550.54.15
//
// src nil is DefaultGPUSource(). vram, when positive, caps the memory the
// node offers (on a CPU node it poses it, see DetectCPU). "auto" falls back
// to the CPU whenever CUDA is unavailable; "cuda" then fails with an error
// matching ErrCUDAUnavailable. A device the machine does not have is an
// error for both: the operator named a GPU that is not there.
func SelectBackend(choice string, device int, src GPUSource, vram int64) (backend.Backend, Fingerprint, string, error) {
	switch choice {
	case "", BackendAuto, BackendCPU, BackendCUDA:
	default:
		return nil, Fingerprint{}, "", fmt.Errorf("node: backend %q: want auto, cpu or cuda", choice)
	}
	if device < 0 {
		return nil, Fingerprint{}, "", fmt.Errorf("node: device %d: must be 0 or more", device)
	}
	if choice == BackendCPU {
		return selectCPU(vram, "as asked (--backend cpu)")
	}
	if src == nil {
		src = DefaultGPUSource()
	}
	b, fp, line, err := selectCUDA(device, src, vram)
	var u *unavailableError
	if err != nil && choice != BackendCUDA && errors.As(err, &u) {
		return selectCPU(vram, u.why)
	}
	return b, fp, line, err
}

func selectCPU(vram int64, why string) (backend.Backend, Fingerprint, string, error) {
	fp, err := DetectCPU(vram)
	if err != nil {
		return nil, Fingerprint{}, "", err
	}
	b := cpu.New()
	fp.engine = b
	return b, fp, "backend cpu: " + why, nil
}

// selectCUDA opens device and fingerprints it. Its errors that match
// ErrCUDAUnavailable are what auto falls back on.
func selectCUDA(device int, src GPUSource, vram int64) (backend.Backend, Fingerprint, string, error) {
	if !cudaBuilt {
		return nil, Fingerprint{}, "", unavailable("%s", errBuiltWithoutCUDA)
	}
	dev, driver, err := pickDevice(src, device)
	if err != nil {
		return nil, Fingerprint{}, "", err
	}
	b, err := cuda.New(cuda.Options{Device: device}.WithUploads(backend.F16))
	if err != nil {
		return nil, Fingerprint{}, "", unavailable("device %d (%s) cannot run the CUDA backend: %v", device, dev.Name, err)
	}
	if bs, ok := src.(interface{ bind(*cuda.Backend) }); ok {
		bs.bind(b)
	}
	// Free memory now, with the backend's context, kernels and cuBLAS
	// handle open: what is left for the models and the activations.
	free, err := src.Free(device)
	if err != nil {
		free = dev.FreeVRAM
	}
	fp, line := cudaFingerprint(dev, driver, free, vram, src)
	fp.engine = b
	return b, fp, line, nil
}

// pickDevice returns GPU device of src and the driver version. No GPU is
// ErrCUDAUnavailable; a device the machine does not have is another error.
func pickDevice(src GPUSource, device int) (wire.GPU, string, error) {
	devs, driver, err := src.Devices()
	switch {
	case err != nil:
		return wire.GPU{}, "", unavailable("no GPU found (%v)", err)
	case len(devs) == 0:
		return wire.GPU{}, "", unavailable("no GPU found")
	case device >= len(devs):
		return wire.GPU{}, "", fmt.Errorf("node: device %d: this machine has %d GPU(s) (%s)", device, len(devs), gpuList(devs))
	}
	return devs[device], driver, nil
}

// cudaFingerprint describes a CUDA node that renders on dev, which has free
// bytes free now. The node lists that one device (a node renders on one
// GPU; run one node per GPU), and its memory tier follows what is really
// free, not the card's size: UsableBytes is free minus vramHeadroom (capped
// at vram when positive), so a card half used by another process joins a
// smaller tier. The tier is fixed at start; src keeps FreeVRAM current
// (refreshFree) for farm nodes and the metrics.
func cudaFingerprint(dev wire.GPU, driver string, free, vram int64, src GPUSource) (Fingerprint, string) {
	dev.FreeVRAM = free
	dev.DriverVersion = driver
	usable := max(free-vramHeadroom(dev.TotalVRAM), 0)
	if vram > 0 && vram < usable {
		usable = vram
	}
	host, _, _ := memInfo()
	fp := Fingerprint{
		Backend: wire.BackendCUDA, Devices: []Device{dev}, CPUCores: runtime.NumCPU(),
		MemoryBytes: host, UsableBytes: usable, Driver: driver, gpus: src,
	}
	line := fmt.Sprintf("backend cuda: %s (%s) on device %d, %s free of %s",
		dev.Name, dev.ComputeCapability, dev.Index, wire.FormatBytes(free), wire.FormatBytes(dev.TotalVRAM))
	if driver != "" {
		line += ", driver " + driver
	}
	return fp, line
}

// vramHeadroom is the memory a CUDA node keeps out of what it offers: free
// is measured with the node's context, kernels and cuBLAS handle already
// open, so this covers what comes later outside the engine's pool — the
// cuBLAS workspace, modules the driver loads lazily — and the pool's
// rounding of blocks to size classes. 2% of the card, at least 256 MiB:
// 0.5 GiB on a 24 GiB card, 1.6 GiB on an 80 GiB one.
func vramHeadroom(total int64) int64 { return max(256<<20, total/50) }

// heldVRAM is the device memory the node's own backend holds now — loaded
// weights and the pool of idle blocks it keeps for the next step — or 0 on
// a CPU node. Free VRAM (NVML, refreshFree) counts it as used, but the next
// task reuses or evicts it, so the memory a task can have on this node is
// the device's free VRAM plus heldVRAM: only other processes take memory
// away. Safe for concurrent use.
func (f *Fingerprint) heldVRAM() int64 {
	if m, ok := f.engine.(interface {
		MemStats() (reserved, peakReserved, live, peakLive int64)
	}); ok {
		reserved, _, _, _ := m.MemStats()
		return reserved
	}
	return 0
}

// gpuList spells devices as "0: NVIDIA L4, 1: NVIDIA L4".
func gpuList(devs []wire.GPU) string {
	s := ""
	for i, d := range devs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d: %s", i, d.Name)
	}
	return s
}

// detect fills o.Fingerprint, when it is nil, with the compute
// SelectBackend picks for choice on device, keeps the opened backend in it
// for the engine (Fingerprint.engine), and logs why it was chosen. New's
// fill calls it with Options.Backend, Device and GPUSource.
func (o *Options) detect(choice string, device int, src GPUSource) error {
	if o.Fingerprint != nil {
		return nil
	}
	_, fp, line, err := SelectBackend(choice, device, src, o.VRAMBytes)
	if err != nil {
		return err
	}
	if o.Logger != nil {
		o.Logger.Named("node").With("node_id", o.ID).Info(line)
	}
	o.Fingerprint = &fp
	return nil
}
