package connect

import (
	"sort"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ZapToHclog returns a zap logger that writes warnings and errors to log,
// with zap's fields as key/value pairs: etcd's client and server log
// through zap, the farm through hclog. Debug and info lines are dropped
// (etcd is chatty at those levels). A nil log gives a no-op logger.
func ZapToHclog(log hclog.Logger) *zap.Logger {
	if log == nil {
		return zap.NewNop()
	}
	return zap.New(&hclogCore{log: log})
}

// hclogCore is a zapcore.Core over an hclog.Logger.
type hclogCore struct {
	log    hclog.Logger
	fields []zapcore.Field
}

func (c *hclogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.WarnLevel }

func (c *hclogCore) With(fields []zapcore.Field) zapcore.Core {
	return &hclogCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fields...)}
}

func (c *hclogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *hclogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field(nil), c.fields...), fields...) {
		f.AddTo(enc)
	}
	args := make([]any, 0, 2*len(enc.Fields)+2)
	if e.LoggerName != "" {
		args = append(args, "component", e.LoggerName)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, k, enc.Fields[k])
	}
	if e.Level >= zapcore.ErrorLevel {
		c.log.Error(e.Message, args...)
	} else {
		c.log.Warn(e.Message, args...)
	}
	return nil
}

func (c *hclogCore) Sync() error { return nil }
