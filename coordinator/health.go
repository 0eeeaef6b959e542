package coordinator

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// healthTimeout bounds each check of /readyz.
const healthTimeout = 2 * time.Second

// public serves what needs no token — liveness, readiness and metrics,
// which say nothing secret, the login and the dashboard's assets — and hands every other path to api.
func (c *Coordinator) public(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", c.handleReady)
	mux.Handle("GET /metrics", c.metricsHandler())
	mux.HandleFunc("POST /v1/session", c.handleLogin)
	c.mountWeb(mux)
	mux.Handle("/", api)
	return mux
}

// handleReady answers 200 when NATS, etcd and S3 answer and this
// coordinator leads or knows the leader, else 503; the body names each
// check's outcome.
func (c *Coordinator) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	checks := map[string]string{}
	ok := true
	set := func(name string, err error) {
		if err != nil {
			checks[name] = err.Error()
			ok = false
			return
		}
		checks[name] = "ok"
	}
	if c.nc == nil || c.nc.Status() != nats.CONNECTED {
		set("nats", errors.New("not connected"))
	} else {
		set("nats", nil)
	}
	if c.etcd == nil {
		set("etcd", errors.New("not connected"))
	} else {
		_, err := c.etcd.Get(ctx, wire.LeaderPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		set("etcd", err)
	}
	if c.s3 == nil {
		set("s3", errors.New("not connected"))
	} else {
		_, err := c.s3.BucketExists(ctx, c.opts.S3.Bucket)
		set("s3", err)
	}
	c.mu.Lock()
	leading, leader := c.leading, c.leaderURL
	c.mu.Unlock()
	switch {
	case leading:
		checks["leader"] = "this coordinator"
	case leader != "":
		checks["leader"] = leader
	default:
		set("leader", errors.New("no leader known yet"))
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ok, "checks": checks})
}
