// Package node is the farm's GPU node agent: it fingerprints its compute,
// registers in etcd under a lease, pulls from JetStream only the tasks its
// memory and backend can run, renders them, uploads every frame to S3 before
// reporting a result, and drains on shutdown.
//
// It must never decide job policy (retries, exclusions, job state belong to
// the coordinator), never acknowledge a task before its frames are in S3 and
// its result is published, and never import the coordinator.
package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Renderer names for Options.RendererName.
const (
	RendererEngine   = "engine"
	RendererLoadTest = "loadtest"
	// FFmpegNone as Options.FFmpeg runs the node without ffmpeg.
	FFmpegNone = "none"
	// DefaultCurrency is the currency of PricePerHour when none is given.
	DefaultCurrency = "USD"
)

// Options configure a node. Connections are given either as configs (the
// node opens and closes them) or as open clients (the caller owns them), so
// that many nodes can share connections in one process.
type Options struct {
	// ID names the node (default: host name and a random suffix).
	ID     string
	Labels map[string]string
	// PricePerHour is what an hour of this node costs, in Currency
	// (default USD): shown in its entry, and the farm prices the jobs it
	// renders with it.
	PricePerHour float64
	Currency     string
	Version      string

	NATS connect.NATSConfig
	Etcd connect.EtcdConfig
	// S3 configures the frame store and the model store; Bucket is always
	// required, the rest only without S3Client.
	S3 connect.S3Config

	NATSConn   *nats.Conn
	EtcdClient *clientv3.Client
	S3Client   *connect.S3Client

	// Renderer renders frames; when nil, RendererName picks one:
	// "engine" (default) or "loadtest".
	Renderer      Renderer
	RendererName  string
	LoadTestDelay time.Duration
	// NoInProgressAcks stops the in-progress signals that keep a running
	// task from being handed out again after the ack wait. Only for tests
	// that show the farm's exactly-once checks catch double renders.
	NoInProgressAcks bool
	// ModelsDir and CacheDir feed the engine's model lookup (see Models).
	// CacheDir also keeps the node's etcd lease, so that a node restarted
	// after a crash replaces its old entry at once.
	ModelsDir string
	CacheDir  string
	// MaxLoadedModels is how many models the engine keeps in memory.
	MaxLoadedModels int
	// MetricsListen, when set, is the address of /livez, /readyz and
	// /metrics (e.g. ":9100"; ":0" picks a port, see MetricsAddr).
	MetricsListen string
	// FFmpeg is the ffmpeg the node encodes MP4 animations with: empty
	// looks it up on PATH, "none" goes without. A node with it advertises
	// wire.CapabilityFFmpeg.
	FFmpeg string

	// Backend is what the node renders on: auto (the default: CUDA when
	// the binary has it and a GPU is present, else the CPU), cpu or cuda.
	// See SelectBackend.
	Backend string
	// Device is the CUDA ordinal of the GPU to render on (default 0); run
	// one node per GPU.
	Device int
	// GPUSource reports the machine's GPUs (default: DefaultGPUSource());
	// tests pass a fake.
	GPUSource GPUSource
	// Fingerprint overrides detection (tests); the engine then renders on
	// the CPU backend.
	Fingerprint *Fingerprint
	// VRAMBytes, when positive, poses a CPU node as having this much usable
	// memory, and caps a CUDA node's.
	VRAMBytes int64

	// LeaseTTL is the etcd lease of the entry (default 10s).
	LeaseTTL time.Duration
	// DrainTimeout bounds finishing the current task at shutdown; after it
	// the task is returned to the queue (default 2m).
	DrainTimeout time.Duration
	// PollInterval is how often an idle node looks for work it was not told
	// about (redeliveries, delayed retries) (default 1s).
	PollInterval time.Duration
	// RefreshInterval is how often the entry is rewritten (default 10s).
	RefreshInterval time.Duration
	// ExcludedRunAfter is the delivery count after which a node runs a task
	// that lists it in ExcludeNodes anyway, so a one-node farm still gets
	// its retries (default 5).
	ExcludedRunAfter int
	// IdleExit makes Run return once no work arrived for this long (0: never).
	IdleExit time.Duration

	Logger hclog.Logger
}

func (o *Options) fill() error {
	if o.ID == "" {
		host, _ := os.Hostname()
		o.ID = sanitizeID(host) + "-" + randomHex(3)
	}
	if o.RendererName == "" {
		o.RendererName = RendererEngine
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 2 * time.Minute
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Second
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = 10 * time.Second
	}
	if o.ExcludedRunAfter == 0 {
		o.ExcludedRunAfter = 5
	}
	if o.Currency == "" {
		o.Currency = DefaultCurrency
	}
	switch o.FFmpeg {
	case "":
		o.FFmpeg = media.FFmpeg()
	case FFmpegNone:
		o.FFmpeg = ""
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	// Picks the backend and fills o.Fingerprint when it is nil.
	return o.detect(o.Backend, o.Device, o.GPUSource)
}

func (o *Options) validate() error {
	var problems []string
	if !wire.ValidID(o.ID) {
		problems = append(problems, fmt.Sprintf("id %q: use 1-64 letters, digits, '-' or '_'", o.ID))
	}
	if o.NATSConn == nil {
		if err := o.NATS.Validate(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if o.EtcdClient == nil {
		if err := o.Etcd.Validate(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if o.S3Client == nil {
		if err := o.S3.Validate(); err != nil {
			problems = append(problems, err.Error())
		}
	} else if o.S3.Bucket == "" {
		problems = append(problems, "s3 bucket is required")
	}
	if o.Renderer == nil && o.RendererName != RendererEngine && o.RendererName != RendererLoadTest {
		problems = append(problems, fmt.Sprintf("renderer %q: want engine or loadtest", o.RendererName))
	}
	if o.Renderer == nil && o.RendererName == RendererEngine && o.ModelsDir == "" && o.CacheDir == "" {
		problems = append(problems, "the engine needs a models folder or a cache folder for the model store")
	}
	fp := o.Fingerprint
	if fp.Backend != wire.BackendCPU && fp.Backend != wire.BackendCUDA {
		problems = append(problems, fmt.Sprintf("backend %q: want cpu or cuda", fp.Backend))
	}
	if len(fp.Classes()) == 0 {
		problems = append(problems, fmt.Sprintf("usable memory %s is below the smallest tier (%s): the node could run nothing",
			wire.FormatBytes(fp.UsableBytes), wire.FormatBytes(wire.Tiers[0].TaskMaxBytes())))
	}
	for _, d := range []time.Duration{o.LeaseTTL, o.DrainTimeout, o.PollInterval, o.RefreshInterval} {
		if d < 0 {
			problems = append(problems, "durations must not be negative")
			break
		}
	}
	if o.FFmpeg != "" {
		if _, err := exec.LookPath(o.FFmpeg); err != nil {
			problems = append(problems, fmt.Sprintf("ffmpeg %q: %v (give a path, or none to go without)", o.FFmpeg, err))
		}
	}
	if o.LeaseTTL < time.Second {
		problems = append(problems, "lease ttl must be at least 1s")
	}
	if len(problems) > 0 {
		return fmt.Errorf("node: %s", strings.Join(problems, "; "))
	}
	return nil
}

// sanitizeID keeps the characters wire.ValidID allows.
func sanitizeID(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := b.String()
	if len(out) > 50 {
		out = out[:50]
	}
	if out == "" {
		out = "node"
	}
	return out
}

// Node is a running node agent.
type Node struct {
	opts    Options
	log     hclog.Logger
	fp      Fingerprint
	classes []wire.Class

	nc  *nats.Conn
	js  jetstream.JetStream
	etc *clientv3.Client
	s3  *connect.S3Client
	r   Renderer
	reg *registry

	metrics     *Metrics
	metricsAddr string
	// devices is the devices as last refreshed, for metrics (under mu).
	devices []Device

	cancelled  *prefixWatch // CancelledPrefix
	exclusions *prefixWatch // NodeExclusionsPrefix(id)

	mu         sync.Mutex
	cancelSeen map[string]bool // jobs cancelled by message
	current    *running
	drainReq   bool
	pauseUntil time.Time
	received   []string // ids of pulled task messages, the last maxReceived

	wake  chan struct{}
	hints pullHints
	ran   bool

	// settleSlot holds the one task being settled in the background (see
	// run); settling counts it, for Run to wait on.
	settleSlot chan struct{}
	settling   sync.WaitGroup
	// pullAhead, set by serve around each task, starts pulling the next
	// task; render calls it as the last frame begins.
	pullAhead func()
}

// running is the task being rendered.
type running struct {
	job    string
	cancel context.CancelCauseFunc
}

// New checks opts and returns a node; Run starts it.
func New(opts Options) (*Node, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	fp := *opts.Fingerprint
	fp.Devices = append([]Device(nil), fp.Devices...)
	n := &Node{
		opts: opts, log: opts.Logger.Named("node").With("node_id", opts.ID), fp: fp,
		classes: fp.Classes(), cancelSeen: map[string]bool{}, wake: make(chan struct{}, 1),
		hints: newPullHints(), metrics: NewMetrics(), devices: fp.Devices, settleSlot: make(chan struct{}, 1),
	}
	n.metrics.n = n
	return n, nil
}

// ID is the node's id.
func (n *Node) ID() string { return n.opts.ID }

// Classes are the task classes the node pulls, largest tier first.
func (n *Node) Classes() []wire.Class { return append([]wire.Class(nil), n.classes...) }

// maxReceived bounds the task ids Received remembers.
const maxReceived = 4096

// Received lists the ids of the task messages this node pulled, oldest
// first (at most the last 4096): the node's own record of what reached it,
// whatever became of each task.
func (n *Node) Received() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.received...)
}

func (n *Node) noteReceived(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.received) >= maxReceived {
		n.received = append(n.received[:0], n.received[len(n.received)-maxReceived/2:]...)
	}
	n.received = append(n.received, id)
}

// Drain makes the node stop pulling; the current task finishes, and the node
// stays registered as draining until Run's context ends.
func (n *Node) Drain() {
	n.mu.Lock()
	n.drainReq = true
	reg := n.reg
	n.mu.Unlock()
	if reg != nil {
		reg.update(func(i *wire.NodeInfo) { i.State = wire.NodeDraining })
	}
	n.signal()
}

// Run registers the node and serves tasks until ctx ends, then drains:
//  1. stop pulling;
//  2. mark the entry draining and finish the current task, or return it to
//     the queue after DrainTimeout;
//  3. revoke the lease, which deletes the entry;
//  4. close what the node opened.
//
// Run may be called once.
func (n *Node) Run(ctx context.Context) (err error) {
	if n.ran {
		return errors.New("node: Run called twice")
	}
	n.ran = true
	closeConns, err := n.connect()
	if err != nil {
		return err
	}
	defer closeConns()
	if n.r, err = n.renderer(); err != nil {
		return err
	}
	regCtx, stopReg := context.WithCancel(context.Background())
	defer stopReg()
	if err := n.start(ctx, regCtx); err != nil {
		return err
	}
	if n.opts.MetricsListen != "" {
		stopMetrics, err := n.serveMetrics(n.opts.MetricsListen)
		if err != nil {
			n.reg.deregister()
			return err
		}
		defer stopMetrics()
	}
	n.log.Info("node ready", "classes", n.classes, "renderer", n.r.Name(),
		"usable", wire.FormatBytes(n.fp.UsableBytes))

	subs, err := n.subscribe()
	if err != nil {
		n.reg.deregister()
		return err
	}
	n.serve(ctx)
	n.settling.Wait()

	// Shutdown. Step 1 happened when serve returned and the last task's
	// result was published and acked.
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	n.reg.update(func(i *wire.NodeInfo) { i.State = wire.NodeDraining; i.CurrentTask, i.CurrentJob = "", "" })
	wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = n.reg.write(wctx)
	cancel()
	stopReg()
	if err := n.reg.deregister(); err != nil {
		n.log.Warn("deregister failed; the entry expires with its lease", "error", err)
	}
	n.log.Info("node stopped")
	return nil
}

// connect opens the clients the caller did not pass; the returned func closes them.
func (n *Node) connect() (func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	o := &n.opts
	n.nc, n.etc, n.s3 = o.NATSConn, o.EtcdClient, o.S3Client
	var err error
	if n.nc == nil {
		if n.nc, err = connect.NATS(o.NATS, "latentfarm-node-"+o.ID, n.log.Named("nats")); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		closers = append(closers, func() { _ = n.nc.Drain() })
	}
	if n.etc == nil {
		if n.etc, err = connect.Etcd(o.Etcd, n.log.Named("etcd")); err != nil {
			closeAll()
			return nil, fmt.Errorf("node: %w", err)
		}
		closers = append(closers, func() { n.etc.Close() })
	}
	if n.s3 == nil {
		if n.s3, err = connect.S3(o.S3); err != nil {
			closeAll()
			return nil, fmt.Errorf("node: %w", err)
		}
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		closeAll()
		return nil, fmt.Errorf("node: jetstream: %w", err)
	}
	return closeAll, nil
}

func (n *Node) renderer() (Renderer, error) {
	o := &n.opts
	if o.Renderer != nil {
		return o.Renderer, nil
	}
	if o.RendererName == RendererLoadTest {
		return &LoadTest{Delay: o.LoadTestDelay}, nil
	}
	return NewEngine(EngineOptions{
		Backend:   n.fp.engine,
		Models:    &Models{Dir: o.ModelsDir, CacheDir: o.CacheDir, Store: n.s3, Bucket: o.S3.Bucket},
		MaxLoaded: o.MaxLoadedModels,
		Inputs:    n.input,
	})
}

// start loads the etcd views and registers the node.
func (n *Node) start(ctx, regCtx context.Context) error {
	n.cancelled = newPrefixWatch(n.etc, wire.CancelledPrefix, n.log, func(key string, _ []byte) {
		n.cancelJob(lastToken(key), "cancelled (etcd)")
	})
	n.exclusions = newPrefixWatch(n.etc, wire.NodeExclusionsPrefix(n.opts.ID), n.log, nil)
	for _, w := range []*prefixWatch{n.cancelled, n.exclusions} {
		rev, err := w.load(ctx)
		if err != nil {
			return err
		}
		go w.run(regCtx, rev)
	}
	now := time.Now().UTC()
	host, _ := os.Hostname()
	info := wire.NodeInfo{
		ID: n.opts.ID, Host: host, Backend: n.fp.Backend, GPUs: n.fp.Devices,
		CPUCores: n.fp.CPUCores, MemoryBytes: n.fp.MemoryBytes, UsableBytes: n.fp.UsableBytes,
		Classes: n.classes, Labels: n.opts.Labels, State: wire.NodeReady,
		PricePerHour: n.opts.PricePerHour, Currency: n.opts.Currency, Renderer: n.r.Name(), Version: n.opts.Version,
		StartedAt: now,
	}
	if n.opts.FFmpeg != "" {
		info.Capabilities = append(info.Capabilities, wire.CapabilityFFmpeg)
	}
	reg := newRegistry(n.etc, info, n.opts.LeaseTTL, n.opts.RefreshInterval, n.log)
	if n.opts.CacheDir != "" {
		reg.leaseFile = connect.LeaseFile(filepath.Join(n.opts.CacheDir, "node-"+n.opts.ID+".lease"))
	}
	reg.onRefresh = n.refreshInfo
	n.refreshInfo(&reg.info)
	n.mu.Lock()
	n.reg = reg
	if n.drainReq {
		reg.info.State = wire.NodeDraining
	}
	n.mu.Unlock()
	if err := n.reg.register(ctx, 2*n.opts.LeaseTTL+time.Second); err != nil {
		return err
	}
	go n.reg.run(regCtx)
	return nil
}

// refreshInfo updates what changes without an event: free memory, models.
func (n *Node) refreshInfo(i *wire.NodeInfo) {
	n.fp.refreshFree()
	i.GPUs = append(i.GPUs[:0], n.fp.Devices...)
	n.mu.Lock()
	n.devices = append([]Device(nil), n.fp.Devices...)
	n.mu.Unlock()
	if ml, ok := n.r.(ModelLister); ok {
		i.ModelsLoaded = ml.ModelsLoaded()
		i.ModelsOnDisk = ml.ModelsOnDisk()
	}
}

// subscribe listens for cancels, control messages and new tasks.
func (n *Node) subscribe() ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	add := func(subject string, h nats.MsgHandler) error {
		s, err := n.nc.Subscribe(subject, h)
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return fmt.Errorf("node: subscribe %s: %w", subject, err)
		}
		subs = append(subs, s)
		return nil
	}
	if err := add(wire.CancelAll, n.onCancel); err != nil {
		return nil, err
	}
	if err := add(wire.NodeControlSubject(n.opts.ID), n.onControl); err != nil {
		return nil, err
	}
	// The coordinator announces published tasks on the wake subjects: an
	// idle node wakes at once instead of polling every consumer.
	for _, c := range n.classes {
		if err := add(wire.WakeFilter(c), n.onWake); err != nil {
			return nil, err
		}
	}
	if err := n.nc.Flush(); err != nil {
		return nil, fmt.Errorf("node: nats: %w", err)
	}
	return subs, nil
}

func (n *Node) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}
