package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/api"
	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
	"github.com/eshopbox/token-refresher/internal/worker"
)

// allKinds is the three token flows at the sandbox, with call deadlines
// well over its latency.
const allKinds = `
providers:
  - integration_type: "16"
    kind: ajio
    base_url: SANDBOX_URL
    timeout: 15s
  - integration_type: "42"
    kind: oauth2_refresh
    token_url: SANDBOX_URL/oauth/token
    refresh_before: 10m
    timeout: 15s
    client_id: ` + sandbox.DefaultClientID + `
    client_secret: ` + sandbox.DefaultClientSecret + `
    allow_inline_secrets: true # the sandbox's public development secret
  - integration_type: "43"
    kind: unicommerce
    base_url: SANDBOX_URL
    token_ttl: 24h
    refresh_before: 2h
    timeout: 15s
`

// raceKind is one flow's due connection and the name the sandbox counts
// its calls under.
type raceKind struct {
	name string
	row  func(id int64) (testenv.Row, string)
}

var raceKinds = []raceKind{
	{"ajio", func(id int64) (testenv.Row, string) {
		u, p := seller(fmt.Sprintf("race-%d", id))
		exp := time.Now().UTC().Add(-time.Minute)
		return testenv.Row{ID: id, IntegrationType: "16", InputFields: creds(u, p), AccessToken: testenv.Str("old"), ExpiresAt: &exp}, u
	}},
	{"oauth2_refresh", func(id int64) (testenv.Row, string) {
		subject := fmt.Sprintf("race-%d", id)
		exp := time.Now().UTC().Add(time.Minute)
		return testenv.Row{ID: id, IntegrationType: "42", InputFields: testenv.Str(`{}`), AccessToken: testenv.Str("old"),
			RefreshToken: testenv.Str(sandbox.RefreshToken(subject)), ExpiresAt: &exp}, subject
	}},
	{"unicommerce", func(id int64) (testenv.Row, string) {
		u, p := seller(fmt.Sprintf("race-%d", id))
		return testenv.Row{ID: id, IntegrationType: "43", InputFields: creds(u, p)}, u
	}},
}

// onDemand serves the refresher's API over the bundle and returns a
// function that asks for a connection's refresh, answering the status.
func (b *bundle) onDemand(t *testing.T) func(id int64) int {
	t.Helper()
	a, err := api.New(api.Config{Token: "race-token", IntegrationTypes: []string{"16", "42", "43"}}, b.store, b.queue, nil, b.log)
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return func(id int64) int {
		req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v1/connections/%d/refresh", srv.URL, id), nil)
		if !assert.NoError(t, err) {
			return 0
		}
		req.Header.Set("Authorization", "Bearer race-token")
		resp, err := http.DefaultClient.Do(req)
		if !assert.NoError(t, err) {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
}

// allSettled reports whether neither the scan queue nor the urgent one
// holds a pending, active, scheduled or retrying task.
func (b *bundle) allSettled() bool {
	for _, q := range []string{b.env.Queue, task.UrgentQueue(b.env.Queue)} {
		info, err := b.inspector.GetQueueInfo(q)
		if err != nil {
			if strings.Contains(err.Error(), "does not exist") {
				continue
			}
			return false
		}
		if info.Pending+info.Active+info.Scheduled+info.Retry > 0 {
			return false
		}
	}
	return true
}

// outcomes counts the refresh outcomes the handler logged.
func (b *bundle) outcomes() map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(b.logs.String(), "\n") {
		var l struct {
			Msg     string `json:"msg"`
			Outcome string `json:"outcome"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Outcome != "" && strings.HasPrefix(l.Msg, "refresh") {
			out[l.Outcome]++
		}
	}
	return out
}

// TestOnDemandRacesScan — for each flow, an operator's on-demand refresh
// and a scan of the same due connection arrive within milliseconds of each
// other while the marketplace takes 2.5s to answer, in both orders. Pass
// condition: exactly one marketplace call, the row holds that call's token,
// and nothing is archived or refused. The OAuth server rotates refresh
// tokens with no grace and revokes the whole token family on reuse
// (RFC 9700 §4.14.2), so a second call would destroy the connection.
func TestOnDemandRacesScan(t *testing.T) {
	t.Parallel()
	for _, k := range raceKinds {
		for _, apiFirst := range []bool{true, false} {
			name := k.name + "/scan first"
			if apiFirst {
				name = k.name + "/on-demand first"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, options{providers: providersYAML(t, allKinds)})
				b.sandbox.SetFaults(sandbox.Faults{Latency: 2500 * time.Millisecond, Rotate: true, ReuseDetection: true})
				row, user := k.row(7)
				b.env.Insert(t, row)
				b.startRefresher(t)
				refresh := b.onDemand(t)

				var wg sync.WaitGroup
				var status, enqueued int
				onDemand := func() { status = refresh(7) }
				scanNow := func() {
					res, err := b.scanner(scan.Config{}).RunOnce(context.Background())
					assert.NoError(t, err)
					for _, r := range res {
						enqueued += r.Enqueued
					}
				}
				first, second := scanNow, onDemand
				if apiFirst {
					first, second = onDemand, scanNow
				}
				wg.Go(first)
				time.Sleep(3 * time.Millisecond)
				wg.Go(second)
				wg.Wait()
				require.Equal(t, http.StatusAccepted, status, "the on-demand refresh is accepted")
				require.Equal(t, 1, enqueued, "the scan queued its task too: both paths race")

				testenv.Eventually(t, 30*time.Second, "both tasks to finish", func() bool {
					return b.sandbox.Calls(user) >= 1 && b.allSettled()
				})
				assert.Equal(t, 1, b.sandbox.Calls(user), "one marketplace call for one due token")
				st := b.sandbox.Stats()
				assert.Equal(t, 1, st.Issued)
				assert.Equal(t, 1, st.PeakInFlightPerUser)
				assert.Zero(t, st.Rejected, "no invalid_grant, no refused login")
				assert.Zero(t, st.FamiliesRevoked)
				stored := b.env.Get(t, 7)
				require.NotNil(t, stored.AccessToken)
				owner, ok := b.sandbox.IssuedTo(*stored.AccessToken)
				assert.True(t, ok, "the row holds the token the call issued (and it is not revoked)")
				assert.Equal(t, user, owner)
				if k.name == "oauth2_refresh" {
					assert.True(t, b.sandbox.RefreshTokenValid(*stored.RefreshToken), "the stored refresh token is the live one")
				}
				assert.Empty(t, b.archived(t), "nothing failing")
				o := b.outcomes()
				assert.Equal(t, 1, o["refreshed"], "outcomes %v", o)
				assert.Equal(t, 1, o["not_due"]+o["satisfied"], "the other task found the token stored: %v", o)
				assert.Zero(t, o["permanent"]+o["transient"], "outcomes %v", o)
			})
		}
	}
}

// handlerPastExclusion builds a second refresh handler on the bundle's
// store and marketplaces whose leases live under another namespace: the
// test hook that lets two workers call for one connection at once, as a
// worker paused past its lease's expiry would.
func (b *bundle) handlerPastExclusion(t *testing.T, store refresh.Store, wrap func(token.Provider) token.Provider) *refresh.Handler {
	t.Helper()
	providers, err := worker.Marketplaces(b.providers, provider.NewHTTPClient(4), nil, b.env.Redis, b.env.Queue,
		breaker.Config{Failures: 5, Cooldown: time.Second}, os.Getenv, b.log)
	require.NoError(t, err)
	if wrap != nil {
		for it, p := range providers {
			p.Client = wrap(p.Client)
			providers[it] = p
		}
	}
	return refresh.New(store, lease.New(b.env.Redis, b.env.Queue+"-elsewhere-"+testenv.RandomID(), 0), providers,
		refresh.Config{SaveRetryFor: 5 * time.Second}, b.log, nil)
}

func refreshTaskOf(t *testing.T, p task.Payload) *asynq.Task {
	t.Helper()
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	return asynq.NewTask(task.TypeRefresh, raw)
}

// heldStore holds a worker's token write until released.
type heldStore struct {
	refresh.Store
	reached chan struct{}
	release chan struct{}
}

func (s *heldStore) Save(ctx context.Context, read token.Connection, t token.Token) error {
	close(s.reached)
	<-s.release
	return s.Store.Save(ctx, read, t)
}

// TestNewestIssuedWins — two workers get past the exclusion (the hook
// above), and their writes land in the reverse order of issuance: the older
// token is written last. Pass condition: the row ends with the newer token,
// and the late worker's outcome is stale, not a failure.
func TestNewestIssuedWins(t *testing.T) {
	t.Parallel()
	for _, k := range raceKinds[:2] { // ajio; oauth2 with rotation inside a grace
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, options{providers: providersYAML(t, allKinds)})
			b.sandbox.SetFaults(sandbox.Faults{Rotate: true, RotationGrace: time.Minute})
			row, user := k.row(9)
			b.env.Insert(t, row)
			p := task.Payload{ConnectionID: 9, IntegrationType: row.IntegrationType, DueExpiry: row.ExpiresAt}

			// Worker A calls first, then its write is held.
			held := &heldStore{Store: b.store, reached: make(chan struct{}), release: make(chan struct{})}
			a := b.handlerPastExclusion(t, held, nil)
			aDone := make(chan error, 1)
			go func() { aDone <- a.ProcessTask(context.Background(), refreshTaskOf(t, p)) }()
			<-held.reached
			older := b.sandbox.Stats().Issued
			require.Equal(t, 1, older)

			// Worker B calls a second later (a later obtained-at second)
			// and stores first.
			time.Sleep(1100 * time.Millisecond)
			bw := b.handlerPastExclusion(t, b.store, nil)
			require.NoError(t, bw.ProcessTask(context.Background(), refreshTaskOf(t, p)))
			newer := b.env.Get(t, 9)
			require.NotNil(t, newer.AccessToken)

			// A's older token lands last.
			close(held.release)
			require.NoError(t, <-aDone, "a stale write is not a failure")
			final := b.env.Get(t, 9)
			assert.Equal(t, *newer.AccessToken, *final.AccessToken, "the newer token stays")
			assert.True(t, newer.ExpiresAt.Equal(*final.ExpiresAt))
			owner, _ := b.sandbox.IssuedTo(*final.AccessToken)
			assert.Equal(t, user, owner)
			assert.Equal(t, 2, b.sandbox.Calls(user))
			assert.Equal(t, 1, b.outcomes()["stale"])
		})
	}
}

// gatedProvider holds a worker between its read of the row and its call.
type gatedProvider struct {
	token.Provider
	gate chan struct{}
}

func (g gatedProvider) Refresh(ctx context.Context, c token.Connection) (token.Token, error) {
	<-g.gate
	return g.Provider.Refresh(ctx, c)
}

// TestStaleRefusalIsNotAFailure — a worker past the exclusion presents a
// refresh token that another worker rotated away meanwhile (no grace): the
// server answers invalid_grant. Pass condition: the worker re-reads the row,
// sees the refresh token changed, and ends stale: no archive, no failure
// record, the connection not failing, the stored token untouched.
func TestStaleRefusalIsNotAFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, allKinds)})
	b.sandbox.SetFaults(sandbox.Faults{Rotate: true})
	row, subject := raceKinds[1].row(5)
	b.env.Insert(t, row)
	p := task.Payload{ConnectionID: 5, IntegrationType: "42", DueExpiry: row.ExpiresAt}

	gate := make(chan struct{})
	late := b.handlerPastExclusion(t, b.store, func(c token.Provider) token.Provider { return gatedProvider{c, gate} })
	lateDone := make(chan error, 1)
	go func() { lateDone <- late.ProcessTask(context.Background(), refreshTaskOf(t, p)) }()
	// The late worker has read the row and waits at its call; the other
	// refreshes and rotates the refresh token.
	testenv.Eventually(t, 10*time.Second, "the late worker to hold its lease", func() bool {
		n, _ := b.env.Redis.Keys(context.Background(), "token-refresher:{"+b.env.Queue+"-elsewhere-*").Result()
		return len(n) == 1
	})
	first := b.handlerPastExclusion(t, b.store, nil)
	require.NoError(t, first.ProcessTask(context.Background(), refreshTaskOf(t, p)))
	stored := b.env.Get(t, 5)
	close(gate)

	require.NoError(t, <-lateDone, "a refusal of a refresh token rotated meanwhile is no failure")
	assert.Equal(t, 1, b.sandbox.Stats().Rejected, "the late call was refused (invalid_grant)")
	assert.Equal(t, 2, b.sandbox.Calls(subject))
	assert.Equal(t, 1, b.outcomes()["stale"])
	assert.Zero(t, b.outcomes()["permanent"])
	final := b.env.Get(t, 5)
	assert.Equal(t, *stored.AccessToken, *final.AccessToken)
	assert.True(t, b.sandbox.RefreshTokenValid(*final.RefreshToken))
}
