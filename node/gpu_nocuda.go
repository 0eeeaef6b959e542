//go:build !cuda

package node

// cudaBuilt tells whether this binary has the CUDA backend.
const cudaBuilt = false

// DefaultGPUSource is the GPU source of this build: without the cuda tag it
// reports that the binary was built without CUDA.
func DefaultGPUSource() GPUSource { return noCUDA{} }

// noCUDA is the GPU source of a build without the cuda tag.
type noCUDA struct{}

func (noCUDA) Devices() ([]Device, string, error) { return nil, "", errBuiltWithoutCUDA }
func (noCUDA) Free(int) (int64, error)            { return 0, errBuiltWithoutCUDA }
