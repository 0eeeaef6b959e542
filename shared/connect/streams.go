package connect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamOptions tune the farm's streams and consumers. Everyone who calls
// EnsureStreams on one farm must pass the same values, or the consumers'
// configs flap; nodes should not call it and wait for the consumers instead.
type StreamOptions struct {
	// AckWait is how long a node may hold a task without an ack or an
	// in-progress signal before it is redelivered (default 30s).
	AckWait time.Duration
	// Replicas of each stream: 3 for a clustered JetStream (docs/CLUSTER.md).
	// Zero keeps the count an existing stream has (an operator may have
	// scaled it with the nats CLI) and creates a new one with 1.
	Replicas int
	// Memory keeps the streams in memory instead of files (benchmarks).
	Memory bool
	// DuplicateWindow is the Nats-Msg-Id de-duplication window (default 2m).
	DuplicateWindow time.Duration
	// CheckOnly tells the coordinator that an admin made the streams and
	// consumers and its login may not: it checks them (CheckStreams)
	// instead of calling EnsureStreams. farm up sets it.
	CheckOnly bool
}

// Errors of the streams' setup.
var (
	// ErrNotPermitted: the NATS login may not create or update the
	// streams or consumers (the coordinator's of farm up may not).
	ErrNotPermitted = errors.New("connect: this nats login may not create or update the farm's streams")
	// ErrStreamsNotReady: a stream or consumer the farm needs is missing
	// or unfit, and an admin must make it.
	ErrStreamsNotReady = errors.New("connect: the farm's streams are not set up")
)

func (o *StreamOptions) fill() {
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
}

// EnsureStreams creates or updates the TASKS and RESULTS streams, one
// durable pull consumer per (class, priority) on TASKS, and the
// coordinator's consumer on RESULTS: the admin's work. A login that may
// not gets an error wrapping ErrNotPermitted as soon as the server refuses
// it (a refused request is never answered: it would wait for ctx's end).
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) (err error) {
	o.fill()
	ctx, stop := endOnRefusal(ctx, js.Conn())
	defer func() {
		if cause := context.Cause(ctx); err != nil && errors.Is(cause, ErrNotPermitted) {
			err = cause
		}
		stop()
	}()
	storage := jetstream.FileStorage
	if o.Memory {
		storage = jetstream.MemoryStorage
	}
	for _, sc := range []jetstream.StreamConfig{
		{Name: wire.TasksStream, Subjects: []string{wire.TasksSubjects}, Retention: jetstream.WorkQueuePolicy,
			Storage: storage, Replicas: o.Replicas, Duplicates: o.DuplicateWindow,
			Description: "latentfarm render tasks by class and priority"},
		{Name: wire.ResultsStream, Subjects: []string{wire.ResultsSubjects}, Retention: jetstream.WorkQueuePolicy,
			Storage: storage, Replicas: o.Replicas, Duplicates: o.DuplicateWindow,
			Description: "latentfarm task results for the coordinator"},
	} {
		if sc.Replicas == 0 {
			r, err := streamReplicas(ctx, js, sc.Name)
			if err != nil {
				return err
			}
			sc.Replicas = r
		}
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("connect: stream %s: %w", sc.Name, err)
		}
	}
	for _, c := range wire.AllClasses() {
		for _, p := range wire.Priorities {
			cc := jetstream.ConsumerConfig{
				Durable:       wire.TaskConsumer(c, p),
				FilterSubject: wire.TaskFilter(c, p),
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       o.AckWait,
				MaxDeliver:    -1,
				MaxAckPending: 100000,
				MaxWaiting:    4096,
				Description:   fmt.Sprintf("tasks of class %s, priority %s", c, p),
			}
			if _, err := js.CreateOrUpdateConsumer(ctx, wire.TasksStream, cc); err != nil {
				return fmt.Errorf("connect: consumer %s: %w", cc.Durable, err)
			}
		}
	}
	rc := jetstream.ConsumerConfig{
		Durable:   wire.ResultsConsumer,
		AckPolicy: jetstream.AckExplicitPolicy,
		// Results a coordinator held when it died come back to the next
		// leader after the same wait as a dead node's tasks.
		AckWait:       o.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 100000,
		Description:   "the leading coordinator",
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, wire.ResultsStream, rc); err != nil {
		return fmt.Errorf("connect: consumer %s: %w", rc.Durable, err)
	}
	return nil
}

// endOnRefusal returns ctx, ended with a cause wrapping ErrNotPermitted
// when the server refuses nc a JetStream API request for lack of
// permission. stop restores nc's error handler (it still sees every
// error meanwhile).
func endOnRefusal(ctx context.Context, nc *nats.Conn) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), "$JS.API.") {
			cancel(fmt.Errorf("%w (%w)", ErrNotPermitted, err))
		}
		if prev != nil {
			prev(c, sub, err)
		}
	})
	return ctx, func() {
		nc.SetErrorHandler(prev)
		cancel(nil)
	}
}

// adminMust ends the errors of CheckStreams: what to do about them.
const adminMust = "an admin must set the streams up: farm up does at every start; against NATS of your own, " +
	"start farm coordinator once with a NATS login that may manage streams ($JS.API.>)"

// notReady is an ErrStreamsNotReady about what.
func notReady(format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrStreamsNotReady, fmt.Sprintf(format, a...), adminMust)
}

// CheckStreams checks, without changing anything, that the streams and
// consumers EnsureStreams makes exist with what the coordinator needs: the
// streams take the farm's subjects as work queues, each consumer filters
// its subjects and wants explicit acks. Their other settings (ack wait,
// replicas) are the admin's to choose. The error of a missing or unfit one
// wraps ErrStreamsNotReady and names it. It needs only the info requests
// of the coordinator's login.
func CheckStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, want := range []struct{ name, subjects string }{
		{wire.TasksStream, wire.TasksSubjects}, {wire.ResultsStream, wire.ResultsSubjects},
	} {
		s, err := js.Stream(ctx, want.name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return notReady("stream %s does not exist", want.name)
		}
		if err != nil {
			return fmt.Errorf("connect: stream %s: %w", want.name, err)
		}
		cfg := s.CachedInfo().Config
		if !slices.Contains(cfg.Subjects, want.subjects) || cfg.Retention != jetstream.WorkQueuePolicy {
			return notReady("stream %s takes subjects %v with retention %s, want %s with %s",
				want.name, cfg.Subjects, cfg.Retention, want.subjects, jetstream.WorkQueuePolicy)
		}
	}
	type consumer struct{ stream, name, filter string }
	want := []consumer{}
	for _, c := range wire.AllClasses() {
		for _, p := range wire.Priorities {
			want = append(want, consumer{wire.TasksStream, wire.TaskConsumer(c, p), wire.TaskFilter(c, p)})
		}
	}
	want = append(want, consumer{wire.ResultsStream, wire.ResultsConsumer, ""})
	for _, w := range want {
		cons, err := js.Consumer(ctx, w.stream, w.name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return notReady("consumer %s of stream %s does not exist", w.name, w.stream)
		}
		if err != nil {
			return fmt.Errorf("connect: consumer %s: %w", w.name, err)
		}
		cfg := cons.CachedInfo().Config
		if cfg.FilterSubject != w.filter || len(cfg.FilterSubjects) > 0 || cfg.AckPolicy != jetstream.AckExplicitPolicy {
			return notReady("consumer %s of stream %s filters %q%v with ack policy %s, want %q with %s",
				w.name, w.stream, cfg.FilterSubject, cfg.FilterSubjects, cfg.AckPolicy, w.filter, jetstream.AckExplicitPolicy)
		}
	}
	return nil
}

// streamReplicas is the replica count of stream name, or 1 when it does
// not exist yet.
func streamReplicas(ctx context.Context, js jetstream.JetStream, name string) (int, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("connect: stream %s: %w", name, err)
	}
	return max(s.CachedInfo().Config.Replicas, 1), nil
}

// WaitTaskConsumer returns the durable consumer of (c, p), waiting until the
// coordinator has created it or ctx ends.
func WaitTaskConsumer(ctx context.Context, js jetstream.JetStream, c wire.Class, p wire.Priority) (jetstream.Consumer, error) {
	for {
		cons, err := js.Consumer(ctx, wire.TasksStream, wire.TaskConsumer(c, p))
		if err == nil {
			return cons, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("connect: consumer %s: %w", wire.TaskConsumer(c, p), err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect: waiting for consumer %s: %w", wire.TaskConsumer(c, p), ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Backlog is the work of one class on the TASKS stream.
type Backlog struct {
	// Pending is tasks not yet handed to a node: what an autoscaler of the
	// class's pool reads.
	Pending uint64
	// Running is tasks handed to a node and not yet acknowledged.
	Running uint64
}

// ClassBacklog reads the backlog of every class from its three (class,
// priority) consumers. A class's Pending is exactly what KEDA's
// scalingModifiers formula "high + normal + low" over the class's three
// nats-jetstream triggers computes (k8s/README.md): the one number per GPU
// class an autoscaler reads.
func ClassBacklog(ctx context.Context, js jetstream.JetStream) (map[wire.Class]Backlog, error) {
	out := make(map[wire.Class]Backlog, len(wire.AllClasses()))
	for _, c := range wire.AllClasses() {
		var b Backlog
		for _, p := range wire.Priorities {
			cons, err := js.Consumer(ctx, wire.TasksStream, wire.TaskConsumer(c, p))
			if err != nil {
				return nil, fmt.Errorf("connect: consumer %s: %w", wire.TaskConsumer(c, p), err)
			}
			info := cons.CachedInfo()
			b.Pending += info.NumPending
			b.Running += uint64(info.NumAckPending)
		}
		out[c] = b
	}
	return out, nil
}
