//go:build !cuda

package cuda

import "github.com/latentfarm/latentfarm/diffusion/backend"

// Backend is the CUDA backend; in this build (no cuda tag) New always fails.
type Backend struct {
	backend.Backend
}

// New fails with ErrNoCUDA: this binary was built without -tags cuda.
func New(Options) (*Backend, error) { return nil, ErrNoCUDA }

// Devices fails with ErrNoCUDA: this binary was built without -tags cuda.
func Devices() ([]DeviceInfo, error) { return nil, ErrNoCUDA }

// Device fails with ErrNoCUDA.
func (b *Backend) Device() (DeviceInfo, error) { return DeviceInfo{}, ErrNoCUDA }

// Synchronize fails with ErrNoCUDA.
func (b *Backend) Synchronize() error { return ErrNoCUDA }

// Close does nothing.
func (b *Backend) Close() error { return nil }
