// Package cuda is the CUDA backend of the engine: tensors in GPU memory
// (f16 storage with f32 accumulation by default, f32 or bf16 on request),
// our own kernels from kernels/ (PTX embedded in the binary, loaded through
// gorgonia.org/cu) and cuBLAS for the matrix products, all on one stream,
// with device buffers pooled and reused across denoising steps.
//
// It builds only with the build tag cuda; without it New returns an error
// that says so, and nothing in the default build needs cgo or a GPU driver
// (gorgonia.org/cu exits the process from init when it finds no driver, so
// only cuda-tagged files may import it). cuBLAS is loaded with dlopen at
// New, so a binary built against Debian's CUDA 11.8 uses whatever cuBLAS
// the GPU machine has. The package must never import model code or
// anything from the farm.
package cuda
