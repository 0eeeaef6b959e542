package connect_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"go.uber.org/zap"
)

func testLog(buf *farmtest.SyncBuffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Info, DisableTime: true})
}

// TestNATS_LogsDisconnectAndReconnect restarts the real server under a
// connection and finds both events in the caller's log.
func TestNATS_LogsDisconnectAndReconnect(t *testing.T) {
	s := farmtest.RunJetStream(t)
	var buf farmtest.SyncBuffer
	nc, err := connect.NATS(connect.NATSConfig{URL: s.URL, User: s.User, Password: s.Password}, "logs-test", testLog(&buf))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s.Restart(t)
	farmtest.Eventually(t, 15*time.Second, func() bool { return strings.Contains(buf.String(), "nats reconnected") })
	if !strings.Contains(buf.String(), "[WARN]  nats disconnected") {
		t.Errorf("no disconnect in the log:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), s.Password) {
		t.Error("the log holds the NATS password")
	}
}

// TestZapToHclog: zap's warnings and errors reach hclog with their fields;
// debug and info lines are dropped.
func TestZapToHclog(t *testing.T) {
	var buf farmtest.SyncBuffer
	zl := connect.ZapToHclog(testLog(&buf))
	zl.Info("chatty", zap.String("k", "v"))
	zl.With(zap.String("endpoint", "e1")).Warn("retrying", zap.Int("attempt", 2))
	zl.Named("client").Error("lost", zap.Error(errString("boom")))
	out := buf.String()
	for _, want := range []string{"[WARN]  retrying: attempt=2 endpoint=e1", "[ERROR] lost: component=client error=boom"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "chatty") {
		t.Errorf("an info line got through:\n%s", out)
	}
	connect.ZapToHclog(nil).Warn("nowhere") // a nil logger gives a no-op logger
}

type errString string

func (e errString) Error() string { return string(e) }
