package refresh

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
	"github.com/eshopbox/token-refresher/internal/writegate"
)

// readOnly is a store error as mysql.Store returns it for a read-only server.
var readOnly = fmt.Errorf("store token of connection 7: %w: MySQL error 1290 (SQLSTATE HY000)", token.ErrUnwritable)

// writes is a database whose writes fail while refusing is set; the row it
// holds changes only through Save.
type writes struct {
	refusing atomic.Bool
	probes   atomic.Int64
	mu       sync.Mutex
	row      token.Connection
	saves    int
}

func (w *writes) store(id int64) *FakeStore {
	return &FakeStore{
		LoadFn: func(context.Context, int64) (token.Connection, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			c := w.row
			c.ID = id
			return c, nil
		},
		ClaimFn: func(context.Context, token.Connection) error {
			if w.refusing.Load() {
				return readOnly
			}
			return nil
		},
		SaveFn: func(_ context.Context, read token.Connection, t token.Token) error {
			if w.refusing.Load() {
				return readOnly
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if read.RefreshToken != w.row.RefreshToken {
				return token.ErrStale
			}
			w.saves++
			w.row.RefreshToken = t.RefreshToken
			exp := t.ExpiresAt
			w.row.ExpiresAt = &exp
			return nil
		},
	}
}

func (w *writes) probe(context.Context) error {
	w.probes.Add(1)
	if w.refusing.Load() {
		return readOnly
	}
	return nil
}

func (w *writes) refresh() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.row.RefreshToken
}

// rotating is an OAuth server that rotates the refresh token on every call
// and refuses a retired one (invalid_grant), as RFC 9700 §4.14.2 allows.
type rotating struct {
	mu      sync.Mutex
	current string
	n       int
	refused int
}

func (r *rotating) Refresh(_ context.Context, c token.Connection) (token.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.RefreshToken != r.current {
		r.refused++
		return token.Token{}, token.Permanent("oauth2 token endpoint refused the refresh: invalid_grant (HTTP 400)")
	}
	r.n++
	r.current = fmt.Sprintf("rt-%d", r.n)
	return token.Token{AccessToken: fmt.Sprintf("at-%d", r.n), RefreshToken: r.current, ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Second)}, nil
}

type keepWorld struct {
	db     *writes
	market *rotating
	calls  *FakeProvider
	gate   *writegate.Gate
	h      *Handler
}

func newKeepWorld(t *testing.T, box outbox.Outbox, gated bool) *keepWorld {
	t.Helper()
	w := &keepWorld{db: &writes{}, market: &rotating{current: "rt-0"}}
	w.db.row = token.Connection{RefreshToken: "rt-0", InputFields: []byte(`{}`)}
	w.calls = &FakeProvider{RefreshFn: w.market.Refresh}
	cfg := Config{Outbox: box, GateWait: 50 * time.Millisecond}
	if gated {
		w.gate = writegate.New(w.db.probe, 20*time.Millisecond, zap.NewNop(), nil)
		cfg.Gate = w.gate
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go w.gate.Run(ctx)
	}
	w.h = New(w.db.store(7), testenv.Leases(t), map[string]Marketplace{"16": {
		Target: token.Target{IntegrationType: "16", Kind: "oauth2_refresh", RefreshBefore: 10 * time.Minute}, Client: w.calls,
		CallTimeout: time.Second,
	}}, cfg, zap.NewNop(), nil)
	return w
}

func TestNoCallWhileTheDatabaseRefusesWrites(t *testing.T) {
	t.Parallel()
	w := newKeepWorld(t, nil, true)
	w.db.refusing.Store(true)

	// The first task finds out by its claim: no call, the gate closes.
	err := w.h.ProcessTask(context.Background(), refreshTask(t))
	var d *DeferredError
	require.ErrorAs(t, err, &d)
	assert.False(t, IsFailure(err), "waiting for the database spends no retry")
	assert.False(t, w.gate.Open())
	assert.Contains(t, w.gate.Err().Error(), "MySQL error 1290")

	// The next ones wait at the gate, and are put back without a call.
	for range 3 {
		err = w.h.ProcessTask(context.Background(), refreshTask(t))
		require.ErrorAs(t, err, &d)
		assert.Contains(t, d.Reason, "refuses writes")
	}
	assert.Zero(t, w.calls.Calls.Load(), "no marketplace call while writes fail")

	// Writable again: the probe opens the gate by itself, work resumes.
	w.db.refusing.Store(false)
	testenv.Eventually(t, 5*time.Second, "the probe to open the gate", w.gate.Open)
	require.NoError(t, w.h.ProcessTask(context.Background(), refreshTask(t)))
	assert.EqualValues(t, 1, w.calls.Calls.Load())
	assert.Equal(t, "rt-1", w.db.refresh())
}

func TestAWaitingTaskRunsTheMomentWritesSucceed(t *testing.T) {
	t.Parallel()
	w := newKeepWorld(t, nil, true)
	w.h.cfg.GateWait = 5 * time.Second
	w.db.refusing.Store(true)
	w.gate.Report(readOnly)
	go func() {
		time.Sleep(200 * time.Millisecond)
		w.db.refusing.Store(false)
	}()
	start := time.Now()
	require.NoError(t, w.h.ProcessTask(context.Background(), refreshTask(t)), "waited in place, then refreshed")
	assert.Less(t, time.Since(start), 5*time.Second, "did not wait out GateWait")
	assert.EqualValues(t, 1, w.calls.Calls.Load())
}

func TestTokenInHandIsKeptUntilStored(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		box  func(t *testing.T) outbox.Outbox
	}{
		{"memory", func(*testing.T) outbox.Outbox { return nil }},
		{"durable", func(t *testing.T) outbox.Outbox {
			env := testenv.New(t)
			box, err := outbox.NewRedis(env.Redis, env.Queue, make([]byte, outbox.KeySize))
			require.NoError(t, err)
			return box
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newKeepWorld(t, tc.box(t), false)
			// The write is refused after the call: the claim went
			// through, then the server went read-only.
			w.db.row.RefreshToken = "rt-0"
			w.calls.RefreshFn = func(ctx context.Context, c token.Connection) (token.Token, error) {
				tok, err := w.market.Refresh(ctx, c)
				w.db.refusing.Store(true)
				return tok, err
			}
			require.NoError(t, w.h.ProcessTask(context.Background(), refreshTask(t)), "kept is not a failure")
			assert.Equal(t, "rt-0", w.db.refresh(), "nothing stored yet")

			// Every later task for the connection makes no call: the
			// retired refresh token in the row is never presented.
			w.calls.RefreshFn = w.market.Refresh
			for range 3 {
				require.NoError(t, w.h.ProcessTask(context.Background(), refreshTask(t)))
			}
			assert.EqualValues(t, 1, w.calls.Calls.Load(), "one call: the token in hand is the credential")
			inMemory, durable, err := w.h.Unstored(context.Background())
			require.NoError(t, err)
			assert.Equal(t, 1, len(inMemory)+durable, "kept once")

			// Writable again: the keeper stores it; the next task finds
			// a fresh row and makes no call.
			w.db.refusing.Store(false)
			assert.Zero(t, w.h.Replay(context.Background()))
			assert.Equal(t, "rt-1", w.db.refresh(), "the newest issued refresh token is stored")
			require.NoError(t, w.h.ProcessTask(context.Background(), refreshTask(t)))
			assert.EqualValues(t, 1, w.calls.Calls.Load())
			assert.Zero(t, w.market.refused, "no invalid_grant")
			inMemory, durable, _ = w.h.Unstored(context.Background())
			assert.Empty(t, inMemory)
			assert.Zero(t, durable)
		})
	}
}

func TestRotatedRefreshTokenIsWrittenAheadToTheOutbox(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	box, err := outbox.NewRedis(env.Redis, env.Queue, make([]byte, outbox.KeySize))
	require.NoError(t, err)
	w := newKeepWorld(t, box, false)
	var inBoxAtWrite atomic.Bool
	save := w.h.store.(*FakeStore).SaveFn
	w.h.store.(*FakeStore).SaveFn = func(ctx context.Context, read token.Connection, tok token.Token) error {
		has, err := box.Has(ctx, 7)
		inBoxAtWrite.Store(err == nil && has)
		return save(ctx, read, tok)
	}
	require.NoError(t, w.h.ProcessTask(context.Background(), refreshTask(t)))
	assert.True(t, inBoxAtWrite.Load(), "the rotated refresh token was in the durable outbox before its write began")
	n, err := box.Len(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n, "and removed once stored")
	assert.Equal(t, "rt-1", w.db.refresh())
}

// TestALoginMarketplacesRefreshTokenIsNotWrittenAhead: a marketplace whose
// call never sends the refresh token (Ajio logs in with inputFields, and
// answers with a refresh token it never asks for) has its token written
// straight to the row: no outbox round trips on the happy path. A write
// that is refused still keeps the token, as any other (a new refresh
// token until the row moves on).
func TestALoginMarketplacesRefreshTokenIsNotWrittenAhead(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	box, err := outbox.NewRedis(env.Redis, env.Queue, make([]byte, outbox.KeySize))
	require.NoError(t, err)
	w := newKeepWorld(t, box, false)
	m := w.h.markets["16"]
	m.Kind, m.IgnoresRefreshToken = "ajio", true
	w.h.markets["16"] = m
	var inBoxAtWrite atomic.Bool
	save := w.h.store.(*FakeStore).SaveFn
	w.h.store.(*FakeStore).SaveFn = func(ctx context.Context, read token.Connection, tok token.Token) error {
		has, err := box.Has(ctx, 7)
		inBoxAtWrite.Store(err != nil || has)
		return save(ctx, read, tok)
	}
	require.NoError(t, w.h.ProcessTask(context.Background(), refreshTask(t)))
	assert.False(t, inBoxAtWrite.Load(), "nothing written ahead")
	assert.Equal(t, "rt-1", w.db.refresh())

	// Refused: kept.
	w.db.row.ExpiresAt = nil
	w.calls.RefreshFn = func(ctx context.Context, c token.Connection) (token.Token, error) {
		tok, err := w.market.Refresh(ctx, c)
		w.db.refusing.Store(true)
		return tok, err
	}
	require.NoError(t, w.h.ProcessTask(context.Background(), refreshTask(t)), "kept is not a failure")
	e, ok, err := box.Get(context.Background(), 7)
	require.NoError(t, err)
	require.True(t, ok, "the token in hand is kept")
	assert.Equal(t, "rt-2", e.Token.RefreshToken)
	assert.Zero(t, e.Until, "kept until the row moves on, as before")
}

func TestAStaleClaimMakesNoCall(t *testing.T) {
	t.Parallel()
	w := newKeepWorld(t, nil, true)
	w.h.store.(*FakeStore).ClaimFn = func(context.Context, token.Connection) error { return token.ErrStale }
	err := w.h.ProcessTask(context.Background(), refreshTask(t))
	var d *DeferredError
	require.ErrorAs(t, err, &d, "read again soon")
	assert.Zero(t, w.calls.Calls.Load(), "a read the claim contradicts decides no call")
	assert.True(t, w.gate.Open(), "a changed row says nothing about the database")
}

func TestARowErrorDoesNotCloseTheGate(t *testing.T) {
	t.Parallel()
	w := newKeepWorld(t, nil, true)
	w.h.cfg.SaveRetryFor = 300 * time.Millisecond
	deadlock := errors.New("store token of connection 7: MySQL error 1213 (SQLSTATE 40001)")
	w.h.store.(*FakeStore).SaveFn = func(context.Context, token.Connection, token.Token) error { return deadlock }
	require.NoError(t, w.h.ProcessTask(context.Background(), refreshTask(t)), "kept after the in-place retries")
	assert.True(t, w.gate.Open(), "one row's deadlock is not the database refusing writes")
	inMemory, _, _ := w.h.Unstored(context.Background())
	assert.Equal(t, []int64{7}, inMemory, "the token in hand is kept, not dropped")
}

// TestAReplicaWithoutTheKeyMakesNoCallForASealedToken: a token another
// replica sealed in the durable outbox is the connection's newest
// credential; a replica without OUTBOX_KEY cannot open it, and still makes
// no call that would present the retired refresh token in the row.
func TestAReplicaWithoutTheKeyMakesNoCallForASealedToken(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	keyed, err := outbox.NewRedis(env.Redis, env.Queue, make([]byte, outbox.KeySize))
	require.NoError(t, err)
	require.NoError(t, keyed.Put(context.Background(), outbox.Entry{ConnectionID: 7, IntegrationType: "16",
		Token:    token.Token{AccessToken: "at-1", RefreshToken: "rt-1", ExpiresAt: time.Now().Add(time.Hour)},
		Read:     token.Connection{ID: 7, RefreshToken: "rt-0"},
		Obtained: time.Now()}))

	w := newKeepWorld(t, nil, false)
	w.h = New(w.db.store(7), testenv.Leases(t), w.h.markets, Config{Sealed: outbox.NewSealed(env.Redis, env.Queue)}, zap.NewNop(), nil)
	require.NoError(t, w.h.ProcessTask(context.Background(), refreshTask(t)), "kept, not a failure")
	assert.Zero(t, w.calls.Calls.Load(), "no call while another replica's sealed token waits")
	assert.Equal(t, "rt-0", w.db.refresh())
	assert.Equal(t, 1, w.h.Replay(context.Background()), "the sealed token counts as kept")
}
