package writegate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
	"github.com/eshopbox/token-refresher/internal/writegate"
)

type seen struct{ changes []bool }

func (s *seen) Writable(open bool) { s.changes = append(s.changes, open) }

func TestReportClosesOnlyOnRefusals(t *testing.T) {
	obs := &seen{}
	g := writegate.New(func(context.Context) error { return nil }, time.Hour, zap.NewNop(), obs)
	assert.True(t, g.Open())
	assert.NoError(t, g.Err())

	assert.False(t, g.Report(errors.New("MySQL error 1213 (SQLSTATE 40001)")), "a row's deadlock says nothing of the database")
	assert.True(t, g.Open())

	refusal := fmt.Errorf("store token of connection 3: %w: MySQL error 1290 (SQLSTATE HY000)", token.ErrUnwritable)
	assert.True(t, g.Report(refusal))
	assert.False(t, g.Open())
	var closed *writegate.ClosedError
	require.ErrorAs(t, g.Err(), &closed)
	assert.Contains(t, g.Err().Error(), "MySQL error 1290")
	assert.ErrorIs(t, g.Err(), token.ErrUnwritable)

	g.Report(nil)
	assert.True(t, g.Open(), "a write that succeeds opens it")
	assert.Equal(t, []bool{true, false, true}, obs.changes)
}

func TestProbeOpensTheGateAndWaitersGo(t *testing.T) {
	var refusing atomic.Bool
	refusing.Store(true)
	var probes atomic.Int64
	g := writegate.New(func(context.Context) error {
		probes.Add(1)
		if refusing.Load() {
			return errors.New("dial tcp 127.0.0.1:3306: connect: connection refused")
		}
		return nil
	}, 20*time.Millisecond, zap.NewNop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.Run(ctx)

	g.Report(fmt.Errorf("%w: driver: bad connection", token.ErrUnwritable))
	assert.False(t, g.Wait(ctx, 50*time.Millisecond), "still closed")
	testenv.Eventually(t, 5*time.Second, "the probe to run", func() bool { return probes.Load() > 0 })
	assert.Contains(t, g.Err().Error(), "connection refused", "a probe's error is the reason shown")

	opened := make(chan bool)
	go func() { opened <- g.Wait(ctx, 10*time.Second) }()
	refusing.Store(false)
	select {
	case ok := <-opened:
		assert.True(t, ok)
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter was not released when the probe succeeded")
	}
}

// TestAnIdleGateFindsARefusal: with no write to learn from, the open
// gate's own probe (every OpenProbeEvery intervals) closes it, so /readyz
// says so before the first task does.
func TestAnIdleGateFindsARefusal(t *testing.T) {
	g := writegate.New(func(context.Context) error {
		return fmt.Errorf("%w: the server is read-only (read_only=ON)", token.ErrUnwritable)
	}, 10*time.Millisecond, zap.NewNop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.Run(ctx)
	testenv.Eventually(t, 5*time.Second, "the gate to close by its own probe", func() bool { return !g.Open() })
	assert.Equal(t, 1, strings.Count(g.Err().Error(), "the database refuses writes"), "said once: %s", g.Err())
	assert.Contains(t, g.Err().Error(), "read_only=ON")
}
