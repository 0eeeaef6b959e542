package localfarm

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/latentfarm/latentfarm/coordinator"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/nats-io/nats.go/jetstream"
)

// runServices runs the coordinator and the local nodes until ctx ends or
// one of them fails, then stops them: nodes first (they drain), then the
// coordinator. The servers they use stay up until it returns.
func (f *Farm) runServices(ctx context.Context) error {
	o := f.opts
	streams := connect.StreamOptions{}
	if err := f.ensureStreams(ctx, streams); err != nil {
		return err
	}
	// The coordinator's login may only check what the admin made.
	streams.CheckOnly = true
	ln, err := net.Listen("tcp", net.JoinHostPort(o.Listen, strconv.Itoa(o.APIPort)))
	if err != nil {
		return fmt.Errorf("localfarm: api listener: %w", err)
	}
	scheme, certs := "http", f.Certs()
	if f.tls != nil {
		scheme = "https"
	}
	apiURL := scheme + "://" + net.JoinHostPort(o.Advertise, port(ln.Addr().String()))
	creds := f.Credentials()
	nc, ec, sc := f.coordinatorConfigs()
	coord, err := coordinator.New(coordinator.Options{
		NATS: nc, Etcd: ec, S3: sc, Streams: streams,
		Listener: ln, AdvertiseURL: apiURL, Token: creds.Token, Logger: o.Logger,
		StateDir: f.path("coordinator"), TLSCertFile: certs.CertFile, TLSKeyFile: certs.KeyFile,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("localfarm: %w", err)
	}
	// The coordinator gets its own context so that it stops after the nodes.
	coordCtx, stopCoord := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCoord()
	coordDone := make(chan error, 1)
	go func() { coordDone <- coord.Run(coordCtx) }()
	select {
	case <-coord.Ready():
	case err := <-coordDone:
		return fmt.Errorf("localfarm: coordinator: %w", orStopped(err))
	case <-ctx.Done():
		stopCoord()
		return <-coordDone
	}

	creds.CoordinatorURL = apiURL
	f.mu.Lock()
	f.creds = creds
	f.mu.Unlock()
	if err := saveCredentials(o.Dir, creds); err != nil {
		stopCoord()
		<-coordDone
		return err
	}

	nodes, err := f.startNodes(ctx)
	if err != nil {
		stopCoord()
		<-coordDone
		return err
	}
	// "Up" means the API takes jobs: after a crash the coordinator waits
	// for its previous election lease to expire before it leads again.
	if stopped, err := f.waitLeading(ctx, coord, coordDone); err != nil {
		_ = nodes.stop()
		stopCoord()
		if !stopped {
			<-coordDone
		}
		return err
	}
	close(f.ready)
	f.log.Info("farm is up", "api", apiURL, "nodes", o.Nodes, "data", o.Dir)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-coordDone:
		coordDone = nil
		runErr = fmt.Errorf("localfarm: coordinator: %w", orStopped(err))
	case err := <-nodes.failed():
		runErr = err
	}
	// Shutdown: 1. nodes stop pulling, finish or return their tasks and
	// deregister; 2. the coordinator resigns and closes its API.
	f.log.Info("shutting down")
	if err := nodes.stop(); err != nil && runErr == nil {
		runErr = err
	}
	stopCoord()
	if coordDone != nil {
		select {
		case err := <-coordDone:
			if err != nil && runErr == nil {
				runErr = fmt.Errorf("localfarm: coordinator: %w", err)
			}
		case <-time.After(30 * time.Second):
			f.log.Warn("coordinator did not stop within 30s")
		}
	}
	return runErr
}

// coordinatorConfigs log in to NATS, etcd and S3 as the coordinator's own
// logins.
func (f *Farm) coordinatorConfigs() (connect.NATSConfig, connect.EtcdConfig, connect.S3Config) {
	nc, ec, sc := f.NATSConfig(), f.EtcdConfig(), f.S3Config()
	nc.User, nc.Password = coordinatorUser, f.coord.nats
	ec.User, ec.Password = coordinatorUser, f.coord.etcd
	sc.AccessKey, sc.SecretKey = f.coord.s3.AccessKey, f.coord.s3.SecretKey
	return nc, ec, sc
}

// ensureStreams creates or updates the streams and consumers with the
// admin login, as o says, before the coordinator starts: its own login may
// not (the bucket is made when the gateway starts).
func (f *Farm) ensureStreams(ctx context.Context, o connect.StreamOptions) error {
	nc, err := connect.NATS(f.NATSConfig(), "farm-up", f.log.Named("nats"))
	if err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("localfarm: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := connect.EnsureStreams(ctx, js, o); err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	return nil
}

// orStopped turns a nil error from a part that should still run into one.
func orStopped(err error) error {
	if err == nil {
		return errStopped
	}
	return err
}

// waitLeading returns once coord leads, or with an error when ctx ends or
// the coordinator stops first (stopped: its result was read from done).
func (f *Farm) waitLeading(ctx context.Context, coord *coordinator.Coordinator, done <-chan error) (stopped bool, err error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	told := false
	for !coord.Leading() {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case err := <-done:
			return true, fmt.Errorf("localfarm: coordinator: %w", orStopped(err))
		case <-tick.C:
		}
		if !told && time.Since(start) > time.Second {
			f.log.Info("waiting for the coordinator to lead (an earlier run's election lease must expire first)")
			told = true
		}
	}
	return false, nil
}
