package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Metrics are a node's Prometheus metrics.
type Metrics struct {
	tasks  *prometheus.CounterVec
	frames prometheus.Counter
	frame  prometheus.Histogram
	vram   *prometheus.Desc
	busy   *prometheus.Desc

	// n is set once the node exists; nil in a bare NewMetrics.
	n *Node
}

// NewMetrics returns a node's metrics, not yet registered.
func NewMetrics() *Metrics {
	return &Metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latentfarm_node_tasks_total", Help: "Tasks this node ended, by result (done, failed, returned to the queue).",
		}, []string{"result"}),
		frames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latentfarm_node_frames_total", Help: "Frames this node rendered and stored.",
		}),
		frame: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "latentfarm_node_frame_seconds", Help: "Time to render and store one frame.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		vram: prometheus.NewDesc("latentfarm_node_vram_bytes",
			"Memory of the node's device for rendering (a GPU's VRAM, or the memory a CPU node offers), by kind (free or total).",
			[]string{"kind", "device"}, nil),
		busy: prometheus.NewDesc("latentfarm_node_busy", "1 while the node renders a task.", nil, nil),
	}
}

// Collectors lists every collector of the node's metrics.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.tasks, m.frames, m.frame, (*nodeCollector)(m)}
}

// Task results as counted by latentfarm_node_tasks_total.
const (
	resultDone     = "done"
	resultFailed   = "failed"
	resultReturned = "returned"
)

// nodeCollector reads the device memory and state at scrape time.
type nodeCollector Metrics

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.vram
	ch <- c.busy
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	if n == nil {
		return
	}
	n.mu.Lock()
	devices := n.devices
	busy := 0.0
	if n.current != nil {
		busy = 1
	}
	n.mu.Unlock()
	for _, d := range devices {
		idx := fmt.Sprint(d.Index)
		ch <- prometheus.MustNewConstMetric(c.vram, prometheus.GaugeValue, float64(d.FreeVRAM), "free", idx)
		ch <- prometheus.MustNewConstMetric(c.vram, prometheus.GaugeValue, float64(d.TotalVRAM), "total", idx)
	}
	ch <- prometheus.MustNewConstMetric(c.busy, prometheus.GaugeValue, busy)
}

// serveMetrics serves /livez, /readyz and /metrics on addr until the
// returned stop is called. The endpoints need no token and say nothing
// secret.
func (n *Node) serveMetrics(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: metrics listener: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(n.metrics.Collectors()...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"alive"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", n.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.mu.Lock()
	n.metricsAddr = ln.Addr().String()
	n.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Warn("metrics server stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// liveFree is the least free memory of the node's devices as last refreshed.
func (n *Node) liveFree() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	free := int64(-1)
	for _, d := range n.devices {
		if free < 0 || d.FreeVRAM < free {
			free = d.FreeVRAM
		}
	}
	if free < 0 {
		return n.fp.UsableBytes
	}
	// The node's own weights and memory pool count as used on the card,
	// but they are what its next task renders with.
	return free + n.fp.heldVRAM()
}

// MetricsAddr is the address /metrics listens on (empty without
// Options.MetricsListen, or before Run starts it).
func (n *Node) MetricsAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.metricsAddr
}

// handleReady answers 200 when NATS, etcd and S3 answer and the node is
// registered and not draining, else 503.
func (n *Node) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	check := func(name string, err error) {
		if err != nil {
			checks[name], ok = err.Error(), false
			return
		}
		checks[name] = "ok"
	}
	if n.nc.Status() != nats.CONNECTED {
		check("nats", errors.New("not connected"))
	} else {
		check("nats", nil)
	}
	_, err := n.etc.Get(ctx, wire.NodeKey(n.opts.ID), clientv3.WithCountOnly())
	check("etcd", err)
	_, err = n.s3.BucketExists(ctx, n.opts.S3.Bucket)
	check("s3", err)
	n.mu.Lock()
	draining := n.drainReq
	n.mu.Unlock()
	if draining {
		check("state", errors.New("draining"))
	} else {
		check("state", nil)
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"ready": ok, "checks": checks})
}
