//go:build cuda

package cuda

import (
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// devBuf is the Data of a cuda tensor: a pooled device allocation. Views
// made by Reshape share it; its block goes back to the pool on Release or
// when the garbage collector finds no tensor referring to it. Reuse is safe
// without synchronising because every kernel, copy and cuBLAS call of the
// backend runs on its one stream, in order.
type devBuf struct {
	ptr     cu.DevicePtr
	class   int64
	cleanup runtime.Cleanup
}

// block is what the pool recycles; it never points back at the devBuf.
type block struct {
	ptr   cu.DevicePtr
	class int64
}

// pool keeps freed device blocks by size class for the next allocation of
// the same class: after the first denoising step every buffer a step needs
// comes from the pool, so steps make no cuMemAlloc calls.
type pool struct {
	mu       sync.Mutex
	free     map[int64][]cu.DevicePtr
	reserved int64 // bytes allocated from the driver
	live     int64 // bytes held by tensors
	peakRes  int64
	peakLive int64
	// gcEvery makes the pool ask for a garbage collection after this many
	// bytes of fresh driver allocations: the Go heap is small next to the
	// device memory it controls, so the collector would otherwise run late.
	gcEvery int64
	sinceGC int64
}

func newPool(total int64) *pool {
	return &pool{free: map[int64][]cu.DevicePtr{}, gcEvery: max(total/16, 256<<20)}
}

// sizeClass rounds n up to 512 bytes, then to 1/8 steps of its power of two,
// so a reused block wastes at most an eighth.
func sizeClass(n int64) int64 {
	if n <= 512 {
		return 512
	}
	n = (n + 511) &^ 511
	shift := bits.Len64(uint64(n)) - 4
	if shift <= 9 {
		return n
	}
	step := int64(1) << shift
	return (n + step - 1) &^ (step - 1)
}

// get returns a block of at least n bytes. It runs with the context current.
func (p *pool) get(n int64) block {
	class := sizeClass(n)
	if ptr, ok := p.pop(class); ok {
		return block{ptr, class}
	}
	p.mu.Lock()
	due := p.sinceGC > p.gcEvery
	p.mu.Unlock()
	if due {
		p.collect()
		if ptr, ok := p.pop(class); ok {
			return block{ptr, class}
		}
	}
	ptr, err := cu.MemAlloc(class)
	if err != nil {
		// Out of memory: collect unreachable tensors, return every idle
		// block to the driver and try once more.
		p.collect()
		if ptr, ok := p.pop(class); ok {
			return block{ptr, class}
		}
		if derr := p.drain(); derr != nil {
			panic(fmt.Sprintf("cuda: freeing idle buffers: %v", derr))
		}
		if ptr, err = cu.MemAlloc(class); err != nil {
			panic(fmt.Sprintf("cuda: allocating %d bytes: %v", class, err))
		}
	}
	p.mu.Lock()
	p.reserved += class
	p.sinceGC += class
	p.peakRes = max(p.peakRes, p.reserved)
	p.live += class
	p.peakLive = max(p.peakLive, p.live)
	p.mu.Unlock()
	return block{ptr, class}
}

func (p *pool) pop(class int64) (cu.DevicePtr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.free[class]
	if len(l) == 0 {
		return 0, false
	}
	ptr := l[len(l)-1]
	p.free[class] = l[:len(l)-1]
	p.live += class
	p.peakLive = max(p.peakLive, p.live)
	return ptr, true
}

// put returns a block; the garbage collector's cleanups call it too, so it
// makes no CUDA calls.
func (p *pool) put(b block) {
	p.mu.Lock()
	p.free[b.class] = append(p.free[b.class], b.ptr)
	p.live -= b.class
	p.mu.Unlock()
}

// collect runs the garbage collector and gives the cleanups of unreachable
// tensors a moment to return their blocks.
func (p *pool) collect() {
	p.mu.Lock()
	before := p.live
	p.sinceGC = 0
	p.mu.Unlock()
	runtime.GC()
	for range 20 {
		time.Sleep(time.Millisecond)
		p.mu.Lock()
		moved := p.live != before
		p.mu.Unlock()
		if moved {
			runtime.Gosched()
			return
		}
	}
}

// drain frees every idle block. cuMemFree waits for work that may still use
// the memory, so it is safe with queued kernels.
func (p *pool) drain() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	for class, l := range p.free {
		for _, ptr := range l {
			if err := cu.MemFree(ptr); err != nil && first == nil {
				first = err
			}
			p.reserved -= class
		}
		delete(p.free, class)
	}
	return first
}

func (p *pool) stats() (reserved, peakReserved, live, peakLive int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reserved, p.peakRes, p.live, p.peakLive
}

// elemSize is the size in bytes of one element of d.
func elemSize(d backend.DType) int64 {
	if d == backend.F32 {
		return 4
	}
	return 2
}

// alloc returns a new tensor of dtype d; its contents are undefined.
func (b *Backend) alloc(d backend.DType, shape ...int) *backend.Tensor {
	n := int64(backend.NumElements(shape))
	blk := b.pool.get(n * elemSize(d))
	buf := &devBuf{ptr: blk.ptr, class: blk.class}
	buf.cleanup = runtime.AddCleanup(buf, b.pool.put, blk)
	return backend.NewTensor(buf, d, shape...)
}

// buf returns a tensor's device buffer, panicking for foreign or released
// tensors.
func buf(op string, t *backend.Tensor) *devBuf {
	d, ok := t.Data.(*devBuf)
	if !ok {
		panic(fmt.Sprintf("cuda: %s: tensor %v does not belong to the cuda backend", op, t))
	}
	if d.ptr == 0 {
		panic(fmt.Sprintf("cuda: %s: tensor %v was released", op, t))
	}
	return d
}

func ptr(op string, t *backend.Tensor) cu.DevicePtr { return buf(op, t).ptr }

// release returns a temporary to the pool at once (stream order makes that
// safe even while kernels using it are queued).
func (b *Backend) release(t *backend.Tensor) {
	d := t.Data.(*devBuf)
	if d.ptr == 0 {
		return
	}
	d.cleanup.Stop()
	b.pool.put(block{d.ptr, d.class})
	d.ptr = 0
}

// FromFloat32 implements backend.Backend; the tensor has type Options.Uploads.
func (b *Backend) FromFloat32(data []float32, shape ...int) *backend.Tensor {
	if backend.NumElements(shape) != len(data) {
		panic(fmt.Sprintf("cuda: FromFloat32: %d values for shape %v", len(data), shape))
	}
	b.enter()
	defer b.exit()
	t := b.alloc(backend.F32, shape...)
	if len(data) > 0 {
		check("FromFloat32", cu.MemcpyHtoDAsync(ptr("FromFloat32", t), unsafe.Pointer(&data[0]), int64(4*len(data)), b.stream))
		// A copy from pageable memory is staged before the call returns; the
		// synchronisation also bounds how long data must stay alive.
		check("FromFloat32", b.stream.Synchronize())
		runtime.KeepAlive(data)
	}
	if b.opts.Uploads == backend.F32 {
		return t
	}
	out := b.convert(t, b.opts.Uploads)
	b.release(t)
	return out
}

// ToFloat32 implements backend.Backend.
func (b *Backend) ToFloat32(t *backend.Tensor) []float32 {
	b.enter()
	defer b.exit()
	src := t
	if t.DType != backend.F32 {
		src = b.convert(t, backend.F32)
		defer b.release(src)
	}
	out := make([]float32, t.Len())
	check("ToFloat32", b.stream.Synchronize())
	if len(out) > 0 {
		check("ToFloat32", cu.MemcpyDtoH(unsafe.Pointer(&out[0]), ptr("ToFloat32", src), int64(4*len(out))))
	}
	return out
}

// Zeros implements backend.Backend; the tensor has type Options.Uploads.
func (b *Backend) Zeros(shape ...int) *backend.Tensor {
	b.enter()
	defer b.exit()
	t := b.alloc(b.opts.Uploads, shape...)
	if n := int64(t.Len()) * elemSize(t.DType); n > 0 {
		check("Zeros", cu.MemsetD8Async(ptr("Zeros", t), 0, n, b.stream))
	}
	return t
}

// Release implements backend.Backend: the buffer goes back to the pool now.
func (b *Backend) Release(t *backend.Tensor) {
	if t == nil {
		return
	}
	if _, ok := t.Data.(*devBuf); !ok {
		panic(fmt.Sprintf("cuda: Release: tensor %v does not belong to the cuda backend", t))
	}
	b.enter()
	defer b.exit()
	b.release(t)
}

// Cast returns t converted to element type d (a copy, even when t already
// has that type).
func (b *Backend) Cast(t *backend.Tensor, d backend.DType) *backend.Tensor {
	b.enter()
	defer b.exit()
	return b.convert(t, d)
}

// convert is Cast for callers inside enter.
func (b *Backend) convert(t *backend.Tensor, d backend.DType) *backend.Tensor {
	out := b.alloc(d, t.Shape()...)
	b.launch1D("cast", t.Len(), ptr("Cast", out), d, ptr("Cast", t), t.DType, t.Len())
	return out
}

// as returns t in type d: t itself, or a temporary the caller releases with
// done (in stream order, right after the launches that read it).
func (b *Backend) as(t *backend.Tensor, d backend.DType) (*backend.Tensor, func()) {
	if t.DType == d {
		return t, func() {}
	}
	c := b.convert(t, d)
	return c, func() { b.release(c) }
}
