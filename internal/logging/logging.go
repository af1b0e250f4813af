// Package logging builds the zap logger of the binaries and adapts it to
// asynq's and go-redis's logger interfaces.
package logging

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger writing to standard error at level ("debug",
// "info", "warn", "error") in format "json" (default) or "console".
func New(level, format string) (*zap.Logger, error) {
	return NewTo(os.Stderr, level, format)
}

// NewTo is New writing to w.
func NewTo(w io.Writer, level, format string) (*zap.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	var enc zapcore.Encoder
	switch strings.ToLower(format) {
	case "", "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.TimeKey = "time"
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return nil, fmt.Errorf("unknown log format %q (json or console)", format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core, zap.AddCaller()), nil
}

// ParseLevel parses a zap level name; "" is info.
func ParseLevel(s string) (zapcore.Level, error) {
	if s == "" {
		return zapcore.InfoLevel, nil
	}
	var l zapcore.Level
	if err := l.UnmarshalText([]byte(strings.ToLower(s))); err != nil {
		return l, fmt.Errorf("unknown log level %q (debug, info, warn, error)", s)
	}
	return l, nil
}

// Asynq adapts a zap logger to asynq.Logger.
type Asynq struct{ L *zap.SugaredLogger }

// Debug implements asynq.Logger.
func (a Asynq) Debug(args ...any) { a.L.Debug(args...) }

// Info implements asynq.Logger.
func (a Asynq) Info(args ...any) { a.L.Info(args...) }

// Warn implements asynq.Logger.
func (a Asynq) Warn(args ...any) { a.L.Warn(args...) }

// Error implements asynq.Logger.
func (a Asynq) Error(args ...any) { a.L.Error(args...) }

// Fatal implements asynq.Logger. asynq calls it on unrecoverable errors;
// it is logged as an error and left to the caller, which sees Run fail.
func (a Asynq) Fatal(args ...any) { a.L.Error(args...) }

// RouteRedis sends go-redis's own lines (connection pool dial failures and
// the like, printed unstructured to standard error by default) to l at
// debug level, process-wide. The binaries report a Redis failure
// themselves, naming REDIS_URL (start-up) or the operation that failed;
// LOG_LEVEL=debug shows go-redis's detail too.
func RouteRedis(l *zap.Logger) {
	redis.SetLogger(redisLogger{l.Named("redis").WithOptions(zap.AddCallerSkip(1)).Sugar()})
}

type redisLogger struct{ l *zap.SugaredLogger }

// Printf implements go-redis's internal.Logging.
func (r redisLogger) Printf(_ context.Context, format string, v ...any) { r.l.Debugf(format, v...) }
