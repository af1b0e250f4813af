// Package logging builds the zap logger of both binaries and adapts it to
// asynq's logger interface.
package logging

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger at level ("debug", "info", "warn", "error") in
// format "json" (default) or "console".
func New(level, format string) (*zap.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	var cfg zap.Config
	switch strings.ToLower(format) {
	case "", "json":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "time"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "console":
		cfg = zap.NewDevelopmentConfig()
	default:
		return nil, fmt.Errorf("unknown log format %q (json or console)", format)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	cfg.DisableStacktrace = true
	return cfg.Build()
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
