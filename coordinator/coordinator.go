package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Coordinator is one coordinator process. Build it with New and start it
// with Run; only the elected leader accepts jobs.
type Coordinator struct {
	opts Options
	log  hclog.Logger

	etcd *clientv3.Client
	nc   *nats.Conn
	js   jetstream.JetStream
	s3   *connect.S3Client

	ready chan struct{}
	url   string

	persistMu sync.Mutex
	mu        sync.Mutex
	leading   bool
	leaderURL string
	fence     fence // the term this coordinator leads in (fence.go)
	jobs      map[string]*job
	failures  map[string]map[string][]time.Time // node -> failure kind -> times
	wake      chan struct{}                     // nudges the publisher
	metrics   *Metrics
}

// New checks opts and returns a Coordinator; it connects to nothing.
func New(opts Options) (*Coordinator, error) {
	opts.fill()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{
		opts:    opts,
		log:     opts.Logger.Named("coordinator").With("coordinator_id", opts.ID),
		ready:   make(chan struct{}),
		jobs:    map[string]*job{},
		wake:    make(chan struct{}, 1),
		metrics: NewMetrics(),
	}
	c.metrics.c = c
	return c, nil
}

// Ready is closed once the API listens.
func (c *Coordinator) Ready() <-chan struct{} { return c.ready }

// URL is the API's base URL; valid after Ready.
func (c *Coordinator) URL() string { return c.url }

// Leading reports whether this coordinator is the leader now.
func (c *Coordinator) Leading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

// Run connects, serves the API, and campaigns for leadership until ctx ends.
// It returns nil on a clean shutdown.
func (c *Coordinator) Run(ctx context.Context) error {
	if err := c.connect(ctx); err != nil {
		c.closeClients()
		return err
	}
	srv, ln, err := c.listen()
	if err != nil {
		c.closeClients()
		return err
	}
	serveErr := make(chan error, 1)
	go func() {
		var err error
		if c.opts.TLSCertFile != "" {
			err = srv.ServeTLS(ln, c.opts.TLSCertFile, c.opts.TLSKeyFile)
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("coordinator: api: %w", err)
		}
		close(serveErr)
	}()
	close(c.ready)
	c.log.Info("api listening", "url", c.url)

	runCtx, cancel := context.WithCancel(ctx)
	campaignErr := make(chan error, 1)
	go func() { campaignErr <- c.campaign(runCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = err
	case err := <-campaignErr:
		runErr = err
		campaignErr = nil
	}
	// Shutdown: 1. stop leading (the campaign loop resigns), 2. stop the
	// API, 3. close the clients.
	cancel()
	if campaignErr != nil {
		if err := <-campaignErr; err != nil && runErr == nil {
			runErr = err
		}
	}
	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if err := srv.Shutdown(shutCtx); err != nil {
		_ = srv.Close()
	}
	c.closeClients()
	c.log.Info("stopped")
	return runErr
}

func (c *Coordinator) connect(ctx context.Context) error {
	var err error
	if c.etcd, err = connect.Etcd(c.opts.Etcd, c.log.Named("etcd")); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	if c.nc, err = connect.NATS(c.opts.NATS, "farm-coordinator-"+c.opts.ID, c.log.Named("nats")); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	if c.js, err = jetstream.New(c.nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		return fmt.Errorf("coordinator: jetstream: %w", err)
	}
	if c.s3, err = connect.S3(c.opts.S3); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.setupStreams(setup); err != nil {
		return err
	}
	if err := connect.EnsureBucket(setup, c.s3, c.opts.S3.Bucket, c.opts.S3.Region); err != nil {
		var denied minio.ErrorResponse
		if errors.As(err, &denied) && denied.Code == "AccessDenied" {
			return fmt.Errorf("coordinator: %w: this S3 login may not make the bucket %s: an admin must (farm up does at every start)",
				err, c.opts.S3.Bucket)
		}
		return fmt.Errorf("coordinator: %w", err)
	}
	if _, err := c.etcd.Get(setup, wire.LeaderPrefix, clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("coordinator: etcd %v: %w", c.opts.Etcd.Endpoints, err)
	}
	return nil
}

// setupStreams creates or updates the streams and consumers, as a login
// allowed to (an admin's) does. Where an admin made them and this login may
// not (Streams.CheckOnly, or the server refuses it), it checks that they
// are there as the farm needs them.
func (c *Coordinator) setupStreams(ctx context.Context) error {
	if !c.opts.Streams.CheckOnly {
		err := connect.EnsureStreams(ctx, c.js, c.opts.Streams)
		if !errors.Is(err, connect.ErrNotPermitted) {
			if err != nil {
				return fmt.Errorf("coordinator: %w", err)
			}
			return nil
		}
		c.log.Warn("checking the streams an admin made instead of making them", "reason", err)
	}
	if err := connect.CheckStreams(ctx, c.js); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	return nil
}

func (c *Coordinator) closeClients() {
	if c.nc != nil {
		_ = c.nc.Drain()
	}
	if c.etcd != nil {
		_ = c.etcd.Close()
	}
}

func (c *Coordinator) listen() (*http.Server, net.Listener, error) {
	ln := c.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", c.opts.Listen); err != nil {
			return nil, nil, fmt.Errorf("coordinator: listen %s: %w", c.opts.Listen, err)
		}
	}
	scheme := "http"
	if c.opts.TLSCertFile != "" {
		scheme = "https"
	}
	c.url = c.opts.AdvertiseURL
	if c.url == "" {
		addr := ln.Addr().String()
		if strings.HasPrefix(addr, "[::]:") || strings.HasPrefix(addr, "0.0.0.0:") {
			addr = "127.0.0.1" + addr[strings.LastIndex(addr, ":"):]
		}
		c.url = scheme + "://" + addr
	}
	srv := &http.Server{
		Handler:           c.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
		ErrorLog:          c.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return srv, ln, nil
}

// campaign runs elections until ctx ends: wait to lead, lead until the
// session is lost, then campaign again.
func (c *Coordinator) campaign(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := c.campaignOnce(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("leadership lost", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

func (c *Coordinator) campaignOnce(ctx context.Context) error {
	if err := c.revokeLastTerm(ctx); err != nil {
		return err
	}
	sess, err := concurrency.NewSession(c.etcd, concurrency.WithTTL(int(c.opts.ElectionTTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("coordinator: election session: %w", err)
	}
	defer sess.Close()
	if err := c.recordTerm(sess.Lease()); err != nil {
		return err
	}
	el := concurrency.NewElection(sess, wire.LeaderPrefix)
	watchCtx, stopWatch := context.WithCancel(ctx)
	go c.observeLeader(watchCtx, el)
	c.log.Info("campaigning for leadership")
	err = el.Campaign(ctx, c.url)
	stopWatch()
	if err != nil {
		return fmt.Errorf("coordinator: campaign: %w", err)
	}
	c.log.Info("leading")
	leadCtx, stop := context.WithCancel(ctx)
	c.setFence(el, stop)
	go func() {
		select {
		case <-sess.Done():
		case <-leadCtx.Done():
		}
		stop()
	}()
	err = c.lead(leadCtx)
	stop()
	resignCtx, done := context.WithTimeout(context.Background(), 2*time.Second)
	defer done()
	_ = el.Resign(resignCtx)
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		err = errors.New("election session ended")
	}
	return err
}

// observeLeader keeps leaderURL current while this coordinator follows.
func (c *Coordinator) observeLeader(ctx context.Context, el *concurrency.Election) {
	for resp := range el.Observe(ctx) {
		if len(resp.Kvs) > 0 {
			c.mu.Lock()
			c.leaderURL = string(resp.Kvs[0].Value)
			c.mu.Unlock()
		}
	}
}

// lead does the leader's work until ctx ends.
func (c *Coordinator) lead(ctx context.Context) error {
	if err := c.load(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	c.leading = true
	c.leaderURL = c.url
	c.mu.Unlock()
	defer c.stepDown()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := c.nc.Subscribe(wire.ProgressAll, c.onProgress)
	if err != nil {
		return fmt.Errorf("coordinator: subscribe progress: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	for _, loop := range []func(context.Context) error{c.resultsLoop, c.publishLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loop(ctx); err != nil && ctx.Err() == nil {
				errc <- err
			}
		}()
	}
	c.finalizeReady()
	var leadErr error
	select {
	case <-ctx.Done():
	case leadErr = <-errc:
	}
	// The loops stop before the state is dropped.
	cancel()
	wg.Wait()
	return leadErr
}

// stepDown drops the leader's in-memory state and ends event streams.
func (c *Coordinator) stepDown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leading = false
	c.fence = fence{}
	for _, j := range c.jobs {
		j.closeListeners()
	}
	c.jobs = map[string]*job{}
	c.failures = nil
	c.log.Info("stepped down")
}
