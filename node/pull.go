package node

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pulled is one task message and where it came from.
type pulled struct {
	msg  jetstream.Msg
	from wire.Pull
	// ackWait is the consumer's ack wait (0 when unknown).
	ackWait time.Duration
}

// consumers caches the handles of the durable task consumers.
type consumers struct {
	js      jetstream.JetStream
	handles map[string]jetstream.Consumer
	// missing holds consumers not found, and when to look again.
	missing map[string]time.Time
}

func (c *consumers) get(ctx context.Context, name string) (jetstream.Consumer, error) {
	if h, ok := c.handles[name]; ok {
		return h, nil
	}
	if t, ok := c.missing[name]; ok && time.Now().Before(t) {
		return nil, nil
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h, err := c.js.Consumer(lctx, wire.TasksStream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		// Not created yet (no coordinator has run): look again later.
		c.missing[name] = time.Now().Add(2 * time.Second)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	delete(c.missing, name)
	c.handles[name] = h
	return h, nil
}

// forget drops a handle whose consumer went away.
func (c *consumers) forget(name string) { delete(c.handles, name) }

// pullOne tries the node's consumers in the order of wire.PullPlan and
// returns the first task message, or nil when there is none.
func (n *Node) pullOne(ctx context.Context, cs *consumers, tick uint64) (*pulled, error) {
	var firstErr error
	for _, p := range wire.PullPlan(n.classes, tick) {
		if ctx.Err() != nil {
			return nil, nil
		}
		name := p.Consumer()
		gen, skip := n.hints.check(name, time.Now(), n.opts.PollInterval)
		if skip {
			continue
		}
		h, err := cs.get(ctx, name)
		if err != nil {
			firstErr = cmpOr(firstErr, err)
			continue
		}
		if h == nil {
			continue
		}
		batch, err := h.FetchNoWait(1)
		if err != nil {
			firstErr = cmpOr(firstErr, err)
			continue
		}
		var msg jetstream.Msg
		for m := range batch.Messages() {
			msg = m
		}
		berr := batch.Error()
		if berr != nil {
			if errors.Is(berr, jetstream.ErrConsumerDeleted) || errors.Is(berr, jetstream.ErrConsumerNotFound) {
				cs.forget(name)
			}
			firstErr = cmpOr(firstErr, berr)
		}
		if msg == nil && berr == nil {
			n.hints.empty(name, gen, time.Now())
		}
		if msg != nil {
			var wait time.Duration
			if info := h.CachedInfo(); info != nil {
				wait = info.Config.AckWait
			}
			return &pulled{msg: msg, from: p, ackWait: wait}, nil
		}
	}
	return nil, firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// serve pulls and runs tasks, one at a time, until ctx ends. While a task
// renders its last frame, the next task is pulled (see aheadPull), so that a
// busy node starts its next task as soon as one ends.
func (n *Node) serve(ctx context.Context) {
	cs := &consumers{js: n.js, handles: map[string]jetstream.Consumer{}, missing: map[string]time.Time{}}
	var tick uint64
	idleSince := time.Now()
	errDelay := 100 * time.Millisecond
	var ahead *aheadPull
	defer func() { ahead.giveBack() }()
	for ctx.Err() == nil {
		if n.draining() {
			ahead.giveBack()
			<-ctx.Done()
			return
		}
		if d := n.pauseLeft(); d > 0 {
			sleepCtx(ctx, d)
			continue
		}
		var p *pulled
		var err error
		if ahead != nil {
			p, err = ahead.take()
			ahead = nil
		} else {
			p, err = n.pullOne(ctx, cs, tick)
		}
		if err != nil && ctx.Err() == nil {
			n.log.Warn("pull failed", "error", err)
			sleepCtx(ctx, errDelay)
			errDelay = min(2*errDelay, 5*time.Second)
		} else {
			errDelay = 100 * time.Millisecond
		}
		if p == nil {
			if n.opts.IdleExit > 0 && time.Since(idleSince) > n.opts.IdleExit {
				n.log.Info("idle, exiting", "idle", time.Since(idleSince).Round(time.Second))
				return
			}
			n.waitForWork(ctx)
			continue
		}
		tick++
		next := tick
		n.pullAhead = func() {
			if ahead == nil && backlogged(p) && !n.draining() {
				ahead = n.startAheadPull(ctx, cs, next)
			}
		}
		n.handle(ctx, p)
		n.pullAhead = nil
		idleSince = time.Now()
	}
}

// backlogged reports whether more tasks were waiting in p's consumer when p
// was delivered. Only then does the node pull ahead: with no backlog, an
// idle node may be waiting for the next task.
func backlogged(p *pulled) bool {
	meta, err := p.msg.Metadata()
	return err == nil && meta.NumPending > 0
}

// aheadPull is a pull started while the node finishes its current task. The
// task it got is kept alive with in-progress signals until the node takes it
// or gives it back.
type aheadPull struct {
	done  chan struct{} // closed when the pull returned
	taken chan struct{} // closed by take
	p     *pulled
	err   error
}

// startAheadPull pulls in the background. The caller must not use cs until
// take returns.
func (n *Node) startAheadPull(ctx context.Context, cs *consumers, tick uint64) *aheadPull {
	a := &aheadPull{done: make(chan struct{}), taken: make(chan struct{})}
	go func() {
		a.p, a.err = n.pullOne(ctx, cs, tick)
		close(a.done)
		if a.p == nil || n.opts.NoInProgressAcks {
			return
		}
		t := time.NewTicker(inProgressEvery(a.p.ackWait))
		defer t.Stop()
		for {
			select {
			case <-a.taken:
				return
			case <-t.C:
				_ = a.p.msg.InProgress()
			}
		}
	}()
	return a
}

// take waits for the pull and returns what it got.
func (a *aheadPull) take() (*pulled, error) {
	<-a.done
	close(a.taken)
	return a.p, a.err
}

// giveBack returns a task pulled ahead to the queue at once (the node is
// draining or stopping). Safe on nil.
func (a *aheadPull) giveBack() {
	if a == nil {
		return
	}
	select {
	case <-a.taken:
		return
	default:
	}
	if p, _ := a.take(); p != nil {
		_ = p.msg.Nak()
	}
}

// onWake handles the coordinator's announcement that tasks of a class and
// priority were published: their consumer has work again, and an idle node
// wakes at once.
func (n *Node) onWake(m *nats.Msg) {
	if c, p, ok := wire.ParseWakeSubject(m.Subject); ok {
		n.hints.published(wire.TaskConsumer(c, p))
	}
	n.signal()
}

// pullHints remembers which task consumers were found empty, so that a busy
// node asks the one consumer that has its work instead of every (class,
// priority) consumer before each task: each empty fetch is a round trip to
// the server. A consumer found empty is skipped until a task is published
// for it (the coordinator announces each batch on the wake subjects) or
// for one poll interval, after which redelivered and delayed tasks, which
// come without a publish, are found.
type pullHints struct {
	mu    sync.Mutex
	gen   map[string]uint64    // consumer -> publishes seen
	marks map[string]emptyMark // consumer -> found empty
}

type emptyMark struct {
	at  time.Time
	gen uint64
}

func newPullHints() pullHints {
	return pullHints{gen: map[string]uint64{}, marks: map[string]emptyMark{}}
}

func (h *pullHints) published(consumer string) {
	h.mu.Lock()
	h.gen[consumer]++
	h.mu.Unlock()
}

// check reports whether to skip consumer now, and the publish count to pass
// to empty after fetching from it.
func (h *pullHints) check(consumer string, now time.Time, ttl time.Duration) (gen uint64, skip bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	gen = h.gen[consumer]
	m, ok := h.marks[consumer]
	return gen, ok && m.gen == gen && now.Sub(m.at) < ttl
}

// empty records that consumer had no task at now, when gen publishes had
// been seen. A publish seen since (even one racing with the fetch) voids it.
func (h *pullHints) empty(consumer string, gen uint64, now time.Time) {
	h.mu.Lock()
	h.marks[consumer] = emptyMark{at: now, gen: gen}
	h.mu.Unlock()
}

// waitForWork blocks until a task is announced, the poll interval passes,
// or ctx ends.
func (n *Node) waitForWork(ctx context.Context) {
	t := time.NewTimer(n.opts.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-n.wake:
	case <-t.C:
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (n *Node) draining() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.drainReq
}

func (n *Node) pauseLeft() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return time.Until(n.pauseUntil)
}

// pause stops pulling for d after a failure of a backing system, so a node
// that cannot reach S3 does not churn through the queue.
func (n *Node) pause(d time.Duration) {
	n.mu.Lock()
	n.pauseUntil = time.Now().Add(d)
	n.mu.Unlock()
}

// onCancel handles a wire.Cancel message.
func (n *Node) onCancel(m *nats.Msg) {
	var c wire.Cancel
	if err := json.Unmarshal(m.Data, &c); err != nil || !wire.ValidID(c.JobID) {
		n.log.Warn("bad cancel message", "subject", m.Subject)
		return
	}
	reason := "cancelled"
	if c.Reason != "" {
		reason += ": " + c.Reason
	}
	n.cancelJob(c.JobID, reason)
}

// onControl handles a wire.NodeControl message.
func (n *Node) onControl(m *nats.Msg) {
	var c wire.NodeControl
	if err := json.Unmarshal(m.Data, &c); err != nil {
		n.log.Warn("bad control message", "error", err)
		return
	}
	switch c.Action {
	case "drain":
		n.log.Info("drain requested")
		n.Drain()
	case "resume":
		n.mu.Lock()
		n.drainReq = false
		n.mu.Unlock()
		n.reg.update(func(i *wire.NodeInfo) { i.State = wire.NodeReady })
		n.signal()
	default:
		n.log.Warn("unknown control action", "action", c.Action)
	}
}

// maxCancelSeen bounds the jobs remembered from cancel messages; etcd's
// cancelled keys remain the durable record.
const maxCancelSeen = 10000

// cancelJob remembers that job is cancelled and aborts its task if it runs.
func (n *Node) cancelJob(job, reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.cancelSeen) >= maxCancelSeen {
		n.cancelSeen = map[string]bool{}
	}
	n.cancelSeen[job] = true
	if n.current != nil && n.current.job == job {
		n.log.Info("aborting render", "job_id", job, "reason", reason)
		n.current.cancel(errJobCancelled)
	}
}

// isCancelled reports whether job was cancelled.
func (n *Node) isCancelled(job string) bool {
	n.mu.Lock()
	seen := n.cancelSeen[job]
	n.mu.Unlock()
	return seen || n.cancelled.has(wire.CancelledKey(job))
}
