package coordinator

import (
	"context"
	"net/http"
	"time"

	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the coordinator's Prometheus metrics: what it counts as
// results arrive, and what it reads on each scrape (the task backlog per
// class from JetStream, GPU-seconds of the open jobs).
type Metrics struct {
	frames    *prometheus.CounterVec
	duration  prometheus.Histogram
	failures  *prometheus.CounterVec
	pending   *prometheus.Desc
	running   *prometheus.Desc
	gpuSecs   *prometheus.Desc
	scrapeErr prometheus.Counter

	// c is set once the coordinator runs; nil in a bare NewMetrics.
	c *Coordinator
}

// NewMetrics returns the coordinator's metrics, not yet registered.
func NewMetrics() *Metrics {
	return &Metrics{
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latentfarm_frames_total", Help: "Frames the coordinator recorded, by result (done or failed).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "latentfarm_task_duration_seconds", Help: "Wall time of successful tasks on their node, from start to finish.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latentfarm_task_failures_total", Help: "Failed task runs reported by nodes, by error code.",
		}, []string{"reason"}),
		pending: prometheus.NewDesc("latentfarm_tasks_pending",
			"Tasks waiting for a node, per class: the number a GPU pool's autoscaler reads.", []string{"class"}, nil),
		running: prometheus.NewDesc("latentfarm_tasks_running",
			"Tasks handed to a node and not yet acknowledged, per class.", []string{"class"}, nil),
		gpuSecs: prometheus.NewDesc("latentfarm_gpu_seconds_total",
			"Device seconds spent on each job still open (finished jobs leave the series).", []string{"job_id"}, nil),
		scrapeErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latentfarm_coordinator_scrape_errors_total", Help: "Scrapes that could not read the task backlog from JetStream.",
		}),
	}
}

// Collectors lists every collector of the coordinator's metrics.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.frames, m.duration, m.failures, m.scrapeErr, (*scrapeCollector)(m)}
}

// result records one result of task t.
func (m *Metrics) result(t *wire.Task, r *wire.Result, gaveUp bool) {
	if r.OK() {
		m.frames.WithLabelValues("done").Add(float64(len(t.Frames)))
		if d := r.FinishedAt.Sub(r.StartedAt); d > 0 {
			m.duration.Observe(d.Seconds())
		}
		return
	}
	m.failures.WithLabelValues(string(r.Error.Code)).Inc()
	if gaveUp {
		m.frames.WithLabelValues("failed").Add(float64(len(t.Frames)))
	}
}

// scrapeCollector reads the numbers that live elsewhere at scrape time.
type scrapeCollector Metrics

// Describe implements prometheus.Collector.
func (s *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.pending
	ch <- s.running
	ch <- s.gpuSecs
}

// Collect implements prometheus.Collector.
func (s *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	c := s.c
	if c == nil || c.js == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	backlog, err := connect.ClassBacklog(ctx, c.js)
	if err != nil {
		s.scrapeErr.Inc()
		c.log.Warn("metrics: reading the task backlog failed", "error", err)
	}
	for class, b := range backlog {
		ch <- prometheus.MustNewConstMetric(s.pending, prometheus.GaugeValue, float64(b.Pending), string(class))
		ch <- prometheus.MustNewConstMetric(s.running, prometheus.GaugeValue, float64(b.Running), string(class))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.leading {
		return
	}
	for id, j := range c.jobs {
		if !wire.JobFinished(j.rec.State) {
			ch <- prometheus.MustNewConstMetric(s.gpuSecs, prometheus.CounterValue, j.rec.GPUSeconds, id)
		}
	}
}

// metricsHandler serves the coordinator's metrics and the Go process's.
func (c *Coordinator) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(c.metrics.Collectors()...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
