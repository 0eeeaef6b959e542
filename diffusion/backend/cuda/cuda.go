//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/kernels"
)

// Backend runs the backend.Backend operations on one GPU. It is safe for
// concurrent use (calls are serialised: one stream per backend); use one
// Backend per pipeline for overlap.
type Backend struct {
	opts   Options
	dev    cu.Device
	ctx    cu.CUContext
	stream cu.Stream
	fns    map[string]cu.Function
	mods   []cu.Module
	blas   *cublas
	pool   *pool
	info   DeviceInfo
	sms    int

	mu     sync.Mutex
	closed bool
}

var _ backend.Backend = (*Backend)(nil)

// minCompute is the lowest compute capability the PTX (compute_80) runs on.
const minCompute = 80

// New opens GPU opts.Device: it retains the primary context, creates the
// stream, loads the embedded PTX and cuBLAS. Close releases them.
func New(opts Options) (*Backend, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices: %w", err)
	}
	if opts.Device >= n {
		return nil, fmt.Errorf("cuda: device %d: this machine has %d GPU(s)", opts.Device, n)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b := &Backend{opts: opts, fns: map[string]cu.Function{}}
	if b.dev, err = cu.GetDevice(opts.Device); err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", opts.Device, err)
	}
	if b.info, err = deviceInfo(b.dev, opts.Device); err != nil {
		return nil, err
	}
	if cc := b.info.ComputeMajor*10 + b.info.ComputeMinor; cc < minCompute {
		return nil, fmt.Errorf("cuda: device %d (%s) has compute capability %s; the kernels need 8.0 or newer",
			opts.Device, b.info.Name, b.info.ComputeCapability())
	}
	if b.sms, err = b.dev.Attribute(cu.MultiprocessorCount); err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", opts.Device, err)
	}
	if b.ctx, err = b.dev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("cuda: device %d: primary context: %w", opts.Device, err)
	}
	if err := b.init(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// init runs with the OS thread locked: context, stream, kernels, cuBLAS.
func (b *Backend) init() error {
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return fmt.Errorf("cuda: set context: %w", err)
	}
	var err error
	if b.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return fmt.Errorf("cuda: stream: %w", err)
	}
	for _, fam := range kernels.Families() {
		ptx, err := kernels.PTX(fam)
		if err != nil {
			return fmt.Errorf("cuda: %w", err)
		}
		mod, err := cu.LoadData(ptx)
		if err != nil {
			return fmt.Errorf("cuda: loading kernels/%s.ptx: %w", fam, err)
		}
		b.mods = append(b.mods, mod)
		for _, name := range kernels.Entries(ptx) {
			fn, err := mod.Function(name)
			if err != nil {
				return fmt.Errorf("cuda: kernel %s in %s.ptx: %w", name, fam, err)
			}
			b.fns[name] = fn
		}
	}
	if b.blas, err = openCuBLAS(b.opts.CuBLAS, unsafe.Pointer(b.stream.C())); err != nil {
		return err
	}
	b.info.CuBLAS = b.blas.version
	b.pool = newPool(b.info.TotalBytes)
	return nil
}

// Close frees the pooled buffers, cuBLAS, the stream and the modules, and
// releases the primary context. Tensors of the backend are invalid after
// it; it is safe to call twice.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = fmt.Errorf("cuda: close: %w", err)
		}
	}
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return fmt.Errorf("cuda: close: %w", err)
	}
	// 1. Let queued work finish, 2. drop cuBLAS, 3. free idle buffers,
	// 4. unload kernels and the stream, 5. release the context.
	if b.stream != (cu.Stream{}) {
		keep(b.stream.Synchronize())
	}
	if b.blas != nil {
		keep(b.blas.close())
	}
	if b.pool != nil {
		keep(b.pool.drain())
	}
	for _, m := range b.mods {
		keep(m.Unload())
	}
	if b.stream != (cu.Stream{}) {
		keep(b.stream.Destroy())
	}
	keep(b.dev.ReleasePrimaryCtx())
	return first
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return fmt.Sprintf("cuda:%d", b.opts.Device) }

// Options returns the options the backend runs with, defaults filled in.
func (b *Backend) Options() Options { return b.opts }

// Device returns the GPU's name, compute capability and current free and
// total memory (cuMemGetInfo).
func (b *Backend) Device() (DeviceInfo, error) {
	b.enter()
	defer b.exit()
	free, total, err := cu.MemInfo()
	if err != nil {
		return DeviceInfo{}, fmt.Errorf("cuda: memory info: %w", err)
	}
	info := b.info
	info.FreeBytes, info.TotalBytes = free, total
	return info, nil
}

// Synchronize waits until the stream's queued work is done.
func (b *Backend) Synchronize() error {
	b.enter()
	defer b.exit()
	if err := b.stream.Synchronize(); err != nil {
		return fmt.Errorf("cuda: synchronize: %w", err)
	}
	return nil
}

// MemStats reports the pool: bytes allocated from the driver now and at
// most, and bytes held by live tensors now and at most.
func (b *Backend) MemStats() (reserved, peakReserved, live, peakLive int64) {
	return b.pool.stats()
}

// Devices lists every GPU with its memory, for a node's fingerprint.
func Devices() ([]DeviceInfo, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices: %w", err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	out := make([]DeviceInfo, 0, n)
	for i := range n {
		dev, err := cu.GetDevice(i)
		if err != nil {
			return nil, fmt.Errorf("cuda: device %d: %w", i, err)
		}
		info, err := deviceInfo(dev, i)
		if err != nil {
			return nil, err
		}
		ctx, err := dev.RetainPrimaryCtx()
		if err != nil {
			return nil, fmt.Errorf("cuda: device %d: primary context: %w", i, err)
		}
		if err = cu.SetCurrentContext(ctx); err == nil {
			info.FreeBytes, info.TotalBytes, err = cu.MemInfo()
		}
		if rerr := dev.ReleasePrimaryCtx(); err == nil {
			err = rerr
		}
		if err != nil {
			return nil, fmt.Errorf("cuda: device %d: memory info: %w", i, err)
		}
		out = append(out, info)
	}
	return out, nil
}

func deviceInfo(dev cu.Device, ordinal int) (DeviceInfo, error) {
	info := DeviceInfo{Ordinal: ordinal}
	var err error
	if info.Name, err = dev.Name(); err != nil {
		return info, fmt.Errorf("cuda: device %d: name: %w", ordinal, err)
	}
	if info.ComputeMajor, err = dev.Attribute(cu.ComputeCapabilityMajor); err != nil {
		return info, fmt.Errorf("cuda: device %d: compute capability: %w", ordinal, err)
	}
	if info.ComputeMinor, err = dev.Attribute(cu.ComputeCapabilityMinor); err != nil {
		return info, fmt.Errorf("cuda: device %d: compute capability: %w", ordinal, err)
	}
	if info.TotalBytes, err = dev.TotalMem(); err != nil {
		return info, fmt.Errorf("cuda: device %d: total memory: %w", ordinal, err)
	}
	return info, nil
}

// enter serialises a call and makes the context current on its OS thread.
func (b *Backend) enter() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		panic("cuda: backend used after Close")
	}
	runtime.LockOSThread()
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		runtime.UnlockOSThread()
		b.mu.Unlock()
		panic(fmt.Sprintf("cuda: set context: %v", err))
	}
}

func (b *Backend) exit() {
	runtime.UnlockOSThread()
	b.mu.Unlock()
}

// check panics with the op's name when a CUDA call failed: the Backend
// interface has no error results, and a failed launch leaves nothing usable.
func check(op string, err error) {
	if err != nil {
		panic(fmt.Sprintf("cuda: %s: %v", op, err))
	}
}

// threads is the block size of the elementwise kernels.
const threads = 256

// gridFor sizes a grid-stride launch over n elements.
func (b *Backend) gridFor(n int) int {
	g := (n + threads - 1) / threads
	return max(1, min(g, b.sms*32))
}

// launch runs kernel name on the stream. Each argument becomes one 8-byte
// slot, as gorgonia.org/cu's Launch reads them: integers as int64 (the
// kernels take long long), float32 in the low half, device pointers as is.
func (b *Backend) launch(name string, grid, gridY, block, shared int, args ...any) {
	fn, ok := b.fns[name]
	if !ok {
		panic(fmt.Sprintf("cuda: no kernel %q in the embedded PTX", name))
	}
	slots := make([]uint64, len(args))
	ptrs := make([]unsafe.Pointer, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case int:
			slots[i] = uint64(int64(v))
		case int64:
			slots[i] = uint64(v)
		case backend.DType:
			slots[i] = uint64(v)
		case bool:
			if v {
				slots[i] = 1
			}
		case float32:
			slots[i] = uint64(math.Float32bits(v))
		case cu.DevicePtr:
			slots[i] = uint64(v)
		default:
			panic(fmt.Sprintf("cuda: kernel %s: argument %d has type %T", name, i, a))
		}
		ptrs[i] = unsafe.Pointer(&slots[i])
	}
	check(name, fn.Launch(grid, gridY, 1, block, 1, 1, shared, b.stream, ptrs))
}

// launch1D runs a grid-stride kernel over n elements.
func (b *Backend) launch1D(name string, n int, args ...any) {
	if n == 0 {
		return
	}
	b.launch(name, b.gridFor(n), 1, threads, 0, args...)
}
