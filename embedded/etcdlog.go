package embedded

import (
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdNoise are server warnings that hold nothing an operator can act on:
// the member serves gRPC and HTTP on its one client port by design, and
// simple auth tokens are random strings this single member keeps in
// memory (signing matters only for sharing them between members).
var etcdNoise = map[string]bool{
	"Running http and grpc server on single port. This is not recommended for production.": true,
	"simple token is not cryptographically signed":                                         true,
}

// etcdClosingNoise are the lines etcd logs when Close shuts its listeners:
// each serve loop reports "use of closed network connection" as an error.
var etcdClosingNoise = map[string]bool{
	"setting up serving from embedded etcd failed.": true,
	"stopping insecure grpc server due to error":    true,
	"stopped insecure grpc server due to error":     true,
	"stopping secure grpc server due to error":      true,
	"stopped secure grpc server due to error":       true,
}

// quietLogger wraps the server's logger: it drops etcdNoise always and
// etcdClosingNoise once closing is set.
func quietLogger(lg *zap.Logger, closing *atomic.Bool) *zap.Logger {
	return lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return quietCore{Core: c, closing: closing}
	}))
}

type quietCore struct {
	zapcore.Core
	closing *atomic.Bool
}

func (c quietCore) With(fields []zapcore.Field) zapcore.Core {
	return quietCore{Core: c.Core.With(fields), closing: c.closing}
}

func (c quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if etcdNoise[e.Message] || (etcdClosingNoise[e.Message] && c.closing.Load()) {
		return ce
	}
	return c.Core.Check(e, ce)
}
