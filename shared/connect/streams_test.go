package connect_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEnsureStreams_RefusedLogin_ChecksInstead: a login that may read the
// streams' and consumers' info but not manage them has EnsureStreams
// refused at once (not at its context's end), and CheckStreams names what
// an admin has yet to make; once the admin made it all, CheckStreams
// passes.
func TestEnsureStreams_RefusedLogin_ChecksInstead(t *testing.T) {
	s := farmtest.RunJetStream(t)
	if err := s.Server.SetUsers([]embedded.NATSUser{{Name: "reader", Password: "reader-password",
		Publish:   []string{"$JS.API.STREAM.INFO.*", "$JS.API.CONSUMER.INFO.>"},
		Subscribe: []string{wire.InboxAll}}}); err != nil {
		t.Fatal(err)
	}
	admin := s.JetStream(t)
	nc, err := connect.NATS(connect.NATSConfig{URL: s.URL, User: "reader", Password: "reader-password"}, "streams-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	errs := make(chan error, 16)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	reader, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	missing := func(want string) {
		t.Helper()
		err := connect.CheckStreams(ctx, reader)
		if !errors.Is(err, connect.ErrStreamsNotReady) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "an admin must") {
			t.Errorf("CheckStreams: %v, want %q and who must make it", err, want)
		}
	}
	refused := func() {
		t.Helper()
		start := time.Now()
		err := connect.EnsureStreams(ctx, reader, connect.StreamOptions{})
		if !errors.Is(err, connect.ErrNotPermitted) || !strings.Contains(err.Error(), "$JS.API.STREAM.") {
			t.Errorf("EnsureStreams as the reader: %v, want it refused naming the request", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("EnsureStreams took %v to see the refusal", d)
		}
		// The caller's handler saw the refusal too, and is back in place.
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("the caller's handler got %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("the caller's handler did not see the refusal")
		}
		if nc.ErrorHandler() == nil {
			t.Error("EnsureStreams left no error handler")
		}
	}

	refused()
	missing("stream TASKS does not exist")

	if err := connect.EnsureStreams(ctx, admin, connect.StreamOptions{}); err != nil {
		t.Fatalf("EnsureStreams as the admin: %v", err)
	}
	if err := connect.CheckStreams(ctx, reader); err != nil {
		t.Errorf("CheckStreams after the admin made them: %v", err)
	}
	refused()

	consumer := wire.TaskConsumer(wire.AllClasses()[0], wire.PriorityLow)
	if err := admin.DeleteConsumer(ctx, wire.TasksStream, consumer); err != nil {
		t.Fatal(err)
	}
	missing("consumer " + consumer + " of stream TASKS does not exist")
	if err := admin.DeleteStream(ctx, wire.ResultsStream); err != nil {
		t.Fatal(err)
	}
	missing("stream RESULTS does not exist")
}
