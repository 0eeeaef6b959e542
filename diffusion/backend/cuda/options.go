package cuda

import (
	"errors"
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// ErrNoCUDA is returned by New and Devices in builds without the cuda tag.
var ErrNoCUDA = errors.New("cuda: built without CUDA support: rebuild with -tags cuda")

// Options configures New. The zero value renders on GPU 0 with f16 storage.
type Options struct {
	// Device is the GPU ordinal (farm node --device N).
	Device int
	// Storage is the element type of the tensors the compute ops (Linear,
	// MatMul, Conv2D, Attention) produce: F16 (the default, with f32
	// accumulation), F32 or BF16. Other ops keep the type of their input.
	Storage backend.DType
	// Uploads is the element type FromFloat32 and Zeros store. F32 (the
	// default) keeps host values exact, as the conformance suite expects;
	// a node rendering with f16 storage sets F16, which halves the VRAM the
	// weights take (they reach the backend through FromFloat32).
	Uploads backend.DType
	// CuBLAS is the path of libcublas.so to load; empty searches the usual
	// places (LATENTFARM_CUBLAS, the loader path, Python wheels, /usr/local/cuda).
	CuBLAS string
	// storageSet and uploadsSet tell an explicit F32 (zero) from "unset".
	storageSet, uploadsSet bool
}

// WithStorage returns o with Storage set to d (F32 is the zero DType, so
// setting it through the field alone would read as "default").
func (o Options) WithStorage(d backend.DType) Options {
	o.Storage, o.storageSet = d, true
	return o
}

// WithUploads returns o with Uploads set to d.
func (o Options) WithUploads(d backend.DType) Options {
	o.Uploads, o.uploadsSet = d, true
	return o
}

// withDefaults fills unset fields and validates the result.
func (o Options) withDefaults() (Options, error) {
	if !o.storageSet && o.Storage == backend.F32 {
		o.Storage = backend.F16
	}
	if o.Device < 0 {
		return o, fmt.Errorf("cuda: device %d: must be 0 or more", o.Device)
	}
	for _, f := range []struct {
		name string
		d    backend.DType
	}{{"storage", o.Storage}, {"uploads", o.Uploads}} {
		if f.d != backend.F32 && f.d != backend.F16 && f.d != backend.BF16 {
			return o, fmt.Errorf("cuda: %s type %v: want f32, f16 or bf16", f.name, f.d)
		}
	}
	return o, nil
}

// DeviceInfo is what a node reports about one GPU in its etcd record.
type DeviceInfo struct {
	Ordinal      int    `json:"ordinal"`
	Name         string `json:"name"`
	ComputeMajor int    `json:"compute_major"`
	ComputeMinor int    `json:"compute_minor"`
	FreeBytes    int64  `json:"free_bytes"`
	TotalBytes   int64  `json:"total_bytes"`
	// CuBLAS is the cuBLAS version the backend loaded (e.g. 130100), 0 when
	// the info came from Devices without a backend.
	CuBLAS int `json:"cublas,omitempty"`
}

// ComputeCapability formats the compute capability as "8.0".
func (d DeviceInfo) ComputeCapability() string {
	return fmt.Sprintf("%d.%d", d.ComputeMajor, d.ComputeMinor)
}
