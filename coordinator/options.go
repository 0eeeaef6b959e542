// Package coordinator is the farm's job intake and bookkeeper: it serves the
// HTTP JSON API, validates job specs, splits jobs into tasks and publishes
// them to JetStream, follows the results stream, retries or fails tasks by
// policy, handles cancellation, keeps job state in etcd, writes a manifest
// per finished job to S3, and elects one leader among several coordinators.
//
// It must never render, import the engine, or hold state that is not also in
// etcd, JetStream or S3: a restarted or newly elected coordinator resumes
// from those alone.
package coordinator

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/connect"
)

// Options configure a Coordinator. Zero values take the documented defaults.
type Options struct {
	NATS connect.NATSConfig
	Etcd connect.EtcdConfig
	S3   connect.S3Config
	// Streams tunes the JetStream streams and consumers.
	Streams connect.StreamOptions

	// Listen is the API's address (default 127.0.0.1:8080).
	Listen string
	// Listener, when set, is used instead of Listen (tests pass 127.0.0.1:0).
	Listener net.Listener
	// Token is the bearer token every API request must carry. Required.
	Token string
	// TLSCertFile and TLSKeyFile serve the API over HTTPS.
	TLSCertFile, TLSKeyFile string
	// AdvertiseURL is the API's URL as others reach it, shown to clients of
	// followers (default: derived from the listener).
	AdvertiseURL string
	// ID names this coordinator in logs and the election (default host-pid).
	ID string

	// RetryBase and RetryMax bound the backoff before a failed task runs
	// again: RetryBase doubled per failure, at most RetryMax (2s, 1m).
	RetryBase, RetryMax time.Duration
	// MaxNodeFailures fails a task once it failed on this many distinct
	// nodes (default 3). A spec's max_retries bounds attempts in total.
	MaxNodeFailures int
	// ExcludeAfter failures of one kind of task on one node within
	// ExcludeWindow exclude the node from that kind for ExcludeFor
	// (defaults 3, 10m, 10m).
	ExcludeAfter              int
	ExcludeWindow, ExcludeFor time.Duration
	// ElectionTTL is the session TTL of the leader election (default 10s):
	// how long a dead leader keeps the lead.
	ElectionTTL time.Duration
	// StateDir, when set, is a folder of this coordinator's own (one
	// coordinator per folder) where it records its election lease, so that
	// after a crash it revokes its old term and leads again at once instead
	// of waiting out ElectionTTL (term.go).
	StateDir string
	// ResultBatch is how many results at most are written to etcd at once
	// (default 256; see resultsFlushEvery).
	ResultBatch int
	// PresignTTL is how long download URLs work (default 1h).
	PresignTTL time.Duration

	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger is the parent logger (default: hclog at info on stderr).
	Logger hclog.Logger
}

func (o *Options) fill() {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.ID == "" {
		host, _ := os.Hostname()
		o.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if o.RetryBase == 0 {
		o.RetryBase = 2 * time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = time.Minute
	}
	if o.MaxNodeFailures == 0 {
		o.MaxNodeFailures = 3
	}
	if o.ExcludeAfter == 0 {
		o.ExcludeAfter = 3
	}
	if o.ExcludeWindow == 0 {
		o.ExcludeWindow = 10 * time.Minute
	}
	if o.ExcludeFor == 0 {
		o.ExcludeFor = 10 * time.Minute
	}
	if o.ElectionTTL == 0 {
		o.ElectionTTL = 10 * time.Second
	}
	if o.ResultBatch == 0 {
		o.ResultBatch = 256
	}
	if o.PresignTTL == 0 {
		o.PresignTTL = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "farm", Level: hclog.Info})
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.Token == "" {
		errs = append(errs, errors.New("an API token is required"))
	}
	for _, err := range []error{o.NATS.Validate(), o.Etcd.Validate(), o.S3.Validate()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls cert file and key file go together"))
	}
	if o.RetryBase < 0 || o.RetryMax < o.RetryBase {
		errs = append(errs, errors.New("retry backoff: need 0 <= base <= max"))
	}
	if o.MaxNodeFailures < 1 || o.ExcludeAfter < 1 || o.ResultBatch < 1 {
		errs = append(errs, errors.New("max node failures, exclude-after and result batch must be at least 1"))
	}
	if o.ElectionTTL < time.Second {
		errs = append(errs, errors.New("election ttl must be at least 1s"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("coordinator: options: %w", errors.Join(errs...))
	}
	return nil
}
