package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ErrIDTaken is returned when another live node holds the node's id.
var ErrIDTaken = errors.New("node: id is registered by another live node")

// registry keeps the node's entry at wire.NodeKey under a lease that a
// concurrency.Session keeps alive. Changes are coalesced: at most one write
// per minWrite, plus a refresh every refresh interval.
type registry struct {
	cli      *clientv3.Client
	key      string
	ttl      int
	minWrite time.Duration
	refresh  time.Duration
	log      hclog.Logger
	// onRefresh runs before each periodic write (free memory, loaded models).
	onRefresh func(*wire.NodeInfo)
	// leaseFile, when set, records the session's lease, so that after a
	// crash this node revokes its old entry instead of waiting it out.
	leaseFile connect.LeaseFile

	mu      sync.Mutex
	info    wire.NodeInfo
	session *concurrency.Session
	dirty   chan struct{}
}

func newRegistry(cli *clientv3.Client, info wire.NodeInfo, ttl, refresh time.Duration, log hclog.Logger) *registry {
	return &registry{
		cli: cli, key: wire.NodeKey(info.ID), ttl: max(int(ttl/time.Second), 1),
		minWrite: time.Second, refresh: refresh, log: log,
		info: info, dirty: make(chan struct{}, 1),
	}
}

// snapshot returns a copy of the entry.
func (r *registry) snapshot() wire.NodeInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info
}

// update changes the entry; the write happens in run.
func (r *registry) update(fn func(*wire.NodeInfo)) {
	r.mu.Lock()
	fn(&r.info)
	r.mu.Unlock()
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// register opens a session and writes the entry, waiting up to wait for an
// entry of the same id left by a dead process to expire.
func (r *registry) register(ctx context.Context, wait time.Duration) error {
	r.revokeLast(ctx)
	s, err := concurrency.NewSession(r.cli, concurrency.WithTTL(r.ttl))
	if err != nil {
		return fmt.Errorf("node: etcd session: %w", err)
	}
	r.recordLease(s.Lease())
	deadline := time.Now().Add(wait)
	for waited := false; ; waited = true {
		data, err := r.encode()
		if err != nil {
			s.Close()
			return err
		}
		resp, err := r.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(r.key), "=", 0)).
			Then(clientv3.OpPut(r.key, string(data), clientv3.WithLease(s.Lease()))).
			Else(clientv3.OpGet(r.key)).Commit()
		if err != nil {
			s.Close()
			return fmt.Errorf("node: register %s: %w", r.key, err)
		}
		if resp.Succeeded {
			r.mu.Lock()
			r.session = s
			r.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			s.Close()
			return fmt.Errorf("%w: %s (choose another --id, or wait %ds for a dead node's entry to expire)", ErrIDTaken, r.key, r.ttl)
		}
		if !waited {
			r.log.Info("node id in use, waiting for the entry to expire", "key", r.key, "up_to", wait)
		}
		select {
		case <-ctx.Done():
			s.Close()
			return fmt.Errorf("node: register: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// revokeLast revokes the lease this node's previous process recorded: its
// entry goes at once.
func (r *registry) revokeLast(ctx context.Context) {
	if r.leaseFile == "" {
		return
	}
	revoked, err := r.leaseFile.RevokeLast(ctx, r.cli)
	if err != nil {
		r.log.Warn("revoking the entry of this node's last run failed", "error", err)
	}
	if revoked {
		r.log.Info("revoked the entry of this node's last run")
	}
}

// recordLease records the session's lease in leaseFile.
func (r *registry) recordLease(id clientv3.LeaseID) {
	if r.leaseFile == "" {
		return
	}
	if err := r.leaseFile.Record(id); err != nil {
		r.log.Warn("recording the entry's lease failed; a restart waits for the old entry to expire", "error", err)
	}
}

func (r *registry) encode() ([]byte, error) {
	r.mu.Lock()
	r.info.UpdatedAt = time.Now().UTC()
	data, err := json.Marshal(r.info)
	r.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("node: encode entry: %w", err)
	}
	return data, nil
}

// write puts the entry under the current session's lease.
func (r *registry) write(ctx context.Context) error {
	r.mu.Lock()
	s := r.session
	r.mu.Unlock()
	if s == nil {
		return errors.New("node: not registered")
	}
	data, err := r.encode()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.cli.Put(wctx, r.key, string(data), clientv3.WithLease(s.Lease())); err != nil {
		return fmt.Errorf("node: update %s: %w", r.key, err)
	}
	return nil
}

// run writes changes until ctx ends, and re-registers when the session is
// lost (etcd unreachable for longer than the lease).
func (r *registry) run(ctx context.Context) {
	tick := time.NewTicker(r.refresh)
	defer tick.Stop()
	for {
		r.mu.Lock()
		s := r.session
		r.mu.Unlock()
		if s == nil {
			// Deregistered while this loop re-registered (the node stops).
			return
		}
		done := s.Done()
		select {
		case <-ctx.Done():
			return
		case <-r.dirty:
		case <-tick.C:
			if r.onRefresh != nil {
				r.update(r.onRefresh)
			}
		case <-done:
			r.log.Warn("etcd session lost, registering again")
			r.reregister(ctx)
			continue
		}
		if err := r.write(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("node entry update failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.minWrite):
		}
	}
}

func (r *registry) reregister(ctx context.Context) {
	for delay := 250 * time.Millisecond; ctx.Err() == nil; delay = min(2*delay, 5*time.Second) {
		err := r.register(ctx, time.Duration(2*r.ttl)*time.Second)
		if err == nil {
			return
		}
		r.log.Error("register again failed", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
}

// deregister writes the final entry and revokes the lease, which deletes it.
func (r *registry) deregister() error {
	r.mu.Lock()
	s := r.session
	r.session = nil
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	// Close revokes the lease (bounded by the TTL); the entry goes with it.
	if err := s.Close(); err != nil {
		return fmt.Errorf("node: deregister: %w", err)
	}
	return nil
}

// prefixWatch mirrors the keys under an etcd prefix in memory: it lists them,
// then watches, and lists again when the watch is compacted or fails.
type prefixWatch struct {
	cli    *clientv3.Client
	prefix string
	log    hclog.Logger
	// onPut runs for every key present at a list and every later put.
	onPut func(key string, value []byte)

	mu   sync.Mutex
	keys map[string][]byte
}

func newPrefixWatch(cli *clientv3.Client, prefix string, log hclog.Logger, onPut func(string, []byte)) *prefixWatch {
	return &prefixWatch{cli: cli, prefix: prefix, log: log, onPut: onPut, keys: map[string][]byte{}}
}

// has reports whether key is present.
func (w *prefixWatch) has(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.keys[key]
	return ok
}

// load lists the prefix and returns the revision of the listing.
func (w *prefixWatch) load(ctx context.Context) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := w.cli.Get(lctx, w.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("node: list %s: %w", w.prefix, err)
	}
	keys := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys[string(kv.Key)] = kv.Value
	}
	w.mu.Lock()
	w.keys = keys
	w.mu.Unlock()
	for k, v := range keys {
		if w.onPut != nil {
			w.onPut(k, v)
		}
	}
	return resp.Header.Revision, nil
}

// run watches from rev+1 until ctx ends.
func (w *prefixWatch) run(ctx context.Context, rev int64) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := w.cli.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		rev = w.consume(ch, rev)
		cancel()
		if ctx.Err() != nil {
			return
		}
		// The watch ended (compaction, lost leader, closed client): list
		// again so no change is missed.
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
		r, err := w.load(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("watch relist failed", "prefix", w.prefix, "error", err)
			}
			continue
		}
		rev = r
	}
}

// consume applies watch events until the channel closes or fails; it returns
// the last revision seen.
func (w *prefixWatch) consume(ch clientv3.WatchChan, rev int64) int64 {
	for resp := range ch {
		if err := resp.Err(); err != nil {
			return rev
		}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			w.mu.Lock()
			if ev.Type == clientv3.EventTypeDelete {
				delete(w.keys, key)
			} else {
				w.keys[key] = ev.Kv.Value
			}
			w.mu.Unlock()
			if ev.Type != clientv3.EventTypeDelete && w.onPut != nil {
				w.onPut(key, ev.Kv.Value)
			}
		}
		rev = max(rev, resp.Header.Revision)
	}
	return rev
}

// lastToken is the part of key after its last slash.
func lastToken(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }
