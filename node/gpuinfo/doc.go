// Package gpuinfo reads what the machine's NVIDIA GPUs are — name, compute
// capability, total and free memory, driver version — through NVML, for a
// node's fingerprint.
//
// NVML (libnvidia-ml.so.1) is loaded with dlopen when Open runs, so a binary
// with this package starts on a machine without the library and Open fails
// with ErrNotFound. go-nvml needs cgo, so the package has code only in the
// cuda build (-tags cuda); the default build holds this comment alone. It
// must never open a CUDA context or import the engine: it is what lets a
// node look at its GPUs without touching them.
package gpuinfo
