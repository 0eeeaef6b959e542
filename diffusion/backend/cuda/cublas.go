//go:build cuda

package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

// cuBLAS is opened with dlopen so a binary built against CUDA 11.8 runs
// with the cuBLAS of the GPU machine (13 in the Python wheels there). The
// prototypes below are cuBLAS's v2 ABI, stable since CUDA 11: enums are
// ints, handles and streams pointers.
typedef int (*lf_create_t)(void **handle);
typedef int (*lf_destroy_t)(void *handle);
typedef int (*lf_set_stream_t)(void *handle, void *stream);
typedef int (*lf_get_version_t)(void *handle, int *version);
typedef int (*lf_gemm_t)(void *handle, int transa, int transb, int m, int n, int k,
	const void *alpha, const void *A, int atype, int lda, long long stride_a,
	const void *B, int btype, int ldb, long long stride_b, const void *beta,
	void *C, int ctype, int ldc, long long stride_c, int batch, int compute, int algo);

typedef struct {
	void *lib;
	void *lt;
	void *handle;
	lf_destroy_t destroy;
	lf_gemm_t gemm;
	int version;
} lf_cublas;

// lf_cublas_open loads lib (and lt first, when given, so a libcublas
// without $ORIGIN in its run path finds libcublasLt), creates a handle bound
// to stream and returns NULL, or a message.
static const char *lf_cublas_open(lf_cublas *c, const char *lib, const char *lt, void *stream, int *status) {
	*status = 0;
	if (lt != NULL && lt[0] != 0) {
		c->lt = dlopen(lt, RTLD_NOW | RTLD_GLOBAL);
	}
	c->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (c->lib == NULL) return dlerror();
	lf_create_t create = (lf_create_t)dlsym(c->lib, "cublasCreate_v2");
	lf_set_stream_t set_stream = (lf_set_stream_t)dlsym(c->lib, "cublasSetStream_v2");
	lf_get_version_t get_version = (lf_get_version_t)dlsym(c->lib, "cublasGetVersion_v2");
	c->destroy = (lf_destroy_t)dlsym(c->lib, "cublasDestroy_v2");
	c->gemm = (lf_gemm_t)dlsym(c->lib, "cublasGemmStridedBatchedEx");
	if (!create || !set_stream || !get_version || !c->destroy || !c->gemm) return "missing cuBLAS v2 symbols";
	if ((*status = create(&c->handle)) != 0) return "cublasCreate failed";
	if ((*status = set_stream(c->handle, stream)) != 0) return "cublasSetStream failed";
	if ((*status = get_version(c->handle, &c->version)) != 0) return "cublasGetVersion failed";
	return NULL;
}

static int lf_cublas_close(lf_cublas *c) {
	int st = 0;
	if (c->handle) st = c->destroy(c->handle);
	c->handle = NULL;
	return st;
}

static int lf_gemm(lf_cublas *c, int transa, int transb, int m, int n, int k, float alpha,
	uintptr_t a, int lda, long long sa, uintptr_t b, int ldb, long long sb, float beta,
	uintptr_t cc, int ldc, long long sc, int batch, int dtype, int compute) {
	// CUBLAS_GEMM_DEFAULT = -1: cuBLAS picks the algorithm (tensor cores for
	// f16/bf16 inputs with f32 compute).
	return c->gemm(c->handle, transa, transb, m, n, k, &alpha, (const void *)a, dtype, lda, sa,
		(const void *)b, dtype, ldb, sb, &beta, (void *)cc, dtype, ldc, sc, batch, compute, -1);
}
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// cuBLAS enum values (cublas_api.h, library_types.h), unchanged from CUDA
// 11 to 13.
const (
	opN              = 0 // CUBLAS_OP_N
	opT              = 1 // CUBLAS_OP_T
	cudaR32F         = 0 // CUDA_R_32F
	cudaR16F         = 2 // CUDA_R_16F
	cudaR16BF        = 14
	cublasCompute32F = 68 // CUBLAS_COMPUTE_32F: f32 accumulation, no TF32
)

type cublas struct {
	c       C.lf_cublas
	path    string
	version int
}

// cublasCandidates lists the libraries to try, most specific first.
func cublasCandidates(explicit string) []string {
	var out []string
	if explicit != "" {
		return []string{explicit}
	}
	if env := os.Getenv("LATENTFARM_CUBLAS"); env != "" {
		return []string{env}
	}
	// The Python wheels (nvidia-cublas, torch's dependencies) and toolkit
	// folders; newest soname first.
	patterns := []string{
		"/opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib/libcublas.so.*",
		"/opt/*/lib/python3*/site-packages/nvidia/*/lib/libcublas.so.*",
		"/usr/local/lib/python3*/dist-packages/nvidia/*/lib/libcublas.so.*",
		"/usr/local/lib/python3*/site-packages/nvidia/*/lib/libcublas.so.*",
		"/usr/lib/python3*/dist-packages/nvidia/*/lib/libcublas.so.*",
		"/root/.local/lib/python3*/site-packages/nvidia/*/lib/libcublas.so.*",
		"/usr/local/cuda*/lib64/libcublas.so.*",
		"/usr/local/cuda*/targets/x86_64-linux/lib/libcublas.so.*",
	}
	if home, err := os.UserHomeDir(); err == nil {
		patterns = append(patterns, filepath.Join(home, ".local/lib/python3*/site-packages/nvidia/*/lib/libcublas.so.*"))
	}
	// Sonames the loader finds on its own path come first.
	out = append(out, "libcublas.so.13", "libcublas.so.12", "libcublas.so.11")
	var found []string
	for _, p := range patterns {
		m, _ := filepath.Glob(p)
		found = append(found, m...)
	}
	sort.Slice(found, func(i, j int) bool { return found[i] > found[j] })
	return append(out, found...)
}

// openCuBLAS loads the first cuBLAS that opens and binds a handle to stream.
func openCuBLAS(explicit string, stream unsafe.Pointer) (*cublas, error) {
	var tried []string
	for _, lib := range cublasCandidates(explicit) {
		b := &cublas{path: lib}
		lt := ""
		if strings.Contains(lib, "/") {
			lt = strings.Replace(lib, "libcublas.so", "libcublasLt.so", 1)
		}
		clib, clt := C.CString(lib), C.CString(lt)
		var status C.int
		msg := C.lf_cublas_open(&b.c, clib, clt, stream, &status)
		C.free(unsafe.Pointer(clib))
		C.free(unsafe.Pointer(clt))
		if msg == nil {
			b.version = int(b.c.version)
			return b, nil
		}
		tried = append(tried, fmt.Sprintf("%s: %s (status %d)", lib, C.GoString(msg), int(status)))
	}
	return nil, fmt.Errorf("cuda: no usable cuBLAS (set Options.CuBLAS or LATENTFARM_CUBLAS to libcublas.so's path); tried:\n  %s",
		strings.Join(tried, "\n  "))
}

func (b *cublas) close() error {
	if st := C.lf_cublas_close(&b.c); st != 0 {
		return fmt.Errorf("cublasDestroy: status %d", int(st))
	}
	return nil
}

// gemm is one cublasGemmStridedBatchedEx call in column-major terms:
// C = alpha * op(A) * op(B) (+ beta * C) with A, B and C all of type dt.
type gemmArgs struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a              cu.DevicePtr
	lda            int
	strideA        int
	b              cu.DevicePtr
	ldb            int
	strideB        int
	c              cu.DevicePtr
	ldc            int
	strideC        int
	batch          int
	dt             backend.DType
}

func (b *cublas) gemm(g gemmArgs) error {
	op := func(t bool) C.int {
		if t {
			return opT
		}
		return opN
	}
	dt := C.int(cudaR32F)
	switch g.dt {
	case backend.F16:
		dt = cudaR16F
	case backend.BF16:
		dt = cudaR16BF
	}
	st := C.lf_gemm(&b.c, op(g.transA), op(g.transB), C.int(g.m), C.int(g.n), C.int(g.k), C.float(g.alpha),
		C.uintptr_t(g.a), C.int(g.lda), C.longlong(g.strideA), C.uintptr_t(g.b), C.int(g.ldb), C.longlong(g.strideB),
		C.float(g.beta), C.uintptr_t(g.c), C.int(g.ldc), C.longlong(g.strideC), C.int(g.batch), dt, cublasCompute32F)
	if st != 0 {
		return fmt.Errorf("cublasGemmStridedBatchedEx %dx%dx%d batch %d %v: status %d", g.m, g.n, g.k, g.batch, g.dt, int(st))
	}
	return nil
}
