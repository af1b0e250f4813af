package fault

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// The database-fault tests: each owns a private MariaDB (testenv.StartMariaDB)
// so it can turn the server read-only or fail it over, which the shared
// server must never be. The product's processes connect as the server's app
// user (no SUPER), whose writes read_only really refuses; the test seeds and
// reads through root, which read_only lets write.

// oauthKind is the OAuth provider of these tests: the sandbox rotates the
// refresh token on every refresh.
var oauthKind = kind{IntegrationType: "42", Kind: "oauth2_refresh"}

// rotateNoGrace makes the sandbox rotate refresh tokens with no grace and
// revoke the whole family when a retired one comes back: a token in hand
// that is dropped, or an old one presented again, shows as invalid_grant.
func rotateNoGrace(latency time.Duration) sandbox.Faults {
	return sandbox.Faults{Latency: latency, Rotate: true, ReuseDetection: true}
}

// newPrivateSystem is newSystem over a private MariaDB: the wms and ie
// databases are created on m (on a replication pair, call it once the
// replica replicates), the binaries get the app user's DSNs, the test's own
// pools (s.env.WMS, s.env.IE) are root's. Redis is the shared one, under a
// queue of the test's own.
func newPrivateSystem(t testing.TB, m *testenv.MariaDB, kinds ...kind) *system {
	t.Helper()
	wms, ie := m.CreateSchema(t)
	e := &testenv.Env{WMSDB: wms, IEDB: ie, WMSDSN: m.AppDSN(wms), IEDSN: m.AppDSN(ie), Queue: "t_" + testenv.RandomID()}
	e.WMS = sqlx.MustOpen("mysql", m.RootDSN(wms))
	e.IE = sqlx.MustOpen("mysql", m.RootDSN(ie))
	e.Redis = redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	e.RedisURL = "redis://" + testenv.RedisAddr() + "/0"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.Redis.Ping(ctx).Err(), "Redis at %s", testenv.RedisAddr())
	t.Cleanup(func() {
		ctx := context.Background()
		testenv.DropQueueKeys(ctx, e.Redis, e.Queue)
		if keys, _ := e.Redis.Keys(ctx, "rate:token-refresher:{"+e.Queue+"}:*").Result(); len(keys) > 0 {
			e.Redis.Del(ctx, keys...)
		}
		e.Redis.Close()
		e.WMS.Close()
		e.IE.Close()
	})
	s := &system{t: t, env: e, market: startSandbox(t), dir: t.TempDir(), kinds: kinds}
	s.redisURL = e.RedisURL
	s.ieDSN = e.IEDSN
	return s
}

// seedOAuth seeds n OAuth connections with ids from first, each with a
// refresh token of its own subject and its token expiring at expires, and
// returns their subjects (the sandbox's username for them) by id.
func (s *system) seedOAuth(first int64, n int, expires time.Time) map[int64]string {
	s.t.Helper()
	subjects := make(map[int64]string, n)
	var rows []testenv.Row
	for i := range int64(n) {
		id := first + i
		subject := fmt.Sprintf("db%d-%s", id, s.env.Queue)
		subjects[id] = subject
		rows = append(rows, testenv.Row{ID: id, IntegrationType: oauthKind.IntegrationType,
			InputFields:  testenv.Str(`{"client_id":"` + sandbox.DefaultClientID + `","client_secret":"` + sandbox.DefaultClientSecret + `"}`),
			RefreshToken: testenv.Str(sandbox.RefreshToken(subject)), ExpiresAt: &expires,
			AccessToken: testenv.Str(fmt.Sprintf("seed-%d", id))})
	}
	s.env.Insert(s.t, rows...)
	return subjects
}

// fullRow is a connection's stored token, refresh token included.
type fullRow struct {
	ID           int64      `db:"id"`
	AccessToken  *string    `db:"accessToken"`
	RefreshToken *string    `db:"refreshToken"`
	ExpiresAt    *time.Time `db:"accessTokenExpiryAt"`
}

func fullRows(t testing.TB, db *sqlx.DB) map[int64]fullRow {
	t.Helper()
	var rs []fullRow
	require.NoError(t, db.Select(&rs, `SELECT id, accessToken, refreshToken, accessTokenExpiryAt FROM ie_appinstall_connection`))
	out := make(map[int64]fullRow, len(rs))
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

// storedCount is how many of ids hold a token other than their seed.
func storedCount(t testing.TB, db *sqlx.DB, ids map[int64]string) int {
	t.Helper()
	rows := fullRows(t, db)
	n := 0
	for id := range ids {
		if r, ok := rows[id]; ok && r.AccessToken != nil && !strings.HasPrefix(*r.AccessToken, "seed-") {
			n++
		}
	}
	return n
}

// refreshWorks presents a refresh token to the sandbox's token endpoint,
// as the seller's next refresh would, and reports whether it is accepted.
// It spends the token (rotation): call it last.
func (m *marketplace) refreshWorks(refreshToken string) bool {
	m.t.Helper()
	resp, err := control.PostForm(m.url+"/oauth/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
		"client_id": {sandbox.DefaultClientID}, "client_secret": {sandbox.DefaultClientSecret},
	})
	require.NoError(m.t, err)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// requireNothingLost checks that every connection of subjects, as db holds
// it, has the newest access token the sandbox issued to its subject, live,
// and a refresh token of its own subject other than the seed that the
// sandbox accepts (so the newest one: rotation keeps no grace). It returns
// how many connections are lost (fail any of it). It spends the stored
// refresh tokens: call it last, after reading the sandbox's counters.
func (s *system) requireNothingLost(db *sqlx.DB, subjects map[int64]string) (lost int) {
	s.t.Helper()
	t := s.t
	rows := fullRows(t, db)
	var tokens []string
	for id := range subjects {
		if r := rows[id]; r.AccessToken != nil {
			tokens = append(tokens, *r.AccessToken)
		}
	}
	gens := s.market.generations(tokens)
	// No latency, no reuse detection: the probe only asks.
	s.market.setFaults(sandbox.Faults{Rotate: true})
	for id, subject := range subjects {
		r := rows[id]
		ok := r.AccessToken != nil && r.RefreshToken != nil && r.ExpiresAt != nil
		if ok {
			tok, issued := gens.Tokens[*r.AccessToken]
			ok = assert.True(t, issued, "connection %d holds a token the sandbox issued", id) &&
				assert.Equal(t, subject, tok.User, "connection %d holds its own subject's token", id) &&
				assert.Equal(t, gens.Users[subject].Issued, tok.Seq, "connection %d holds the newest token issued to it", id) &&
				assert.True(t, r.ExpiresAt.After(time.Now()), "connection %d's token is live", id) &&
				assert.NotEqual(t, sandbox.RefreshToken(subject), *r.RefreshToken, "connection %d's refresh token was rotated", id) &&
				assert.True(t, strings.HasPrefix(*r.RefreshToken, sandbox.GeneratedRefreshPrefix+subject+"~"), "connection %d's refresh token is its subject's", id) &&
				assert.True(t, s.market.refreshWorks(*r.RefreshToken), "connection %d's stored refresh token is the live one (the marketplace accepts it)", id)
		} else {
			assert.Fail(t, "connection has no token", "connection %d: %+v", id, r)
		}
		if !ok {
			lost++
		}
	}
	return lost
}

// oauthInFlight is how many OAuth calls are being answered: started and
// not yet answered (the sandbox's InFlight counts the Ajio and declarative
// flows only). With no fault drawn, an answer is an issue or a refusal.
func (m *marketplace) oauthInFlight() int {
	st := m.stats()
	return st.Calls - st.Issued - st.Rejected - st.Faulted
}

// outboxLen is how many tokens the durable outbox of the test's queue holds.
func (s *system) outboxLen() int64 {
	s.t.Helper()
	n, err := s.env.Redis.HLen(context.Background(), "token-refresher:{"+s.env.Queue+"}:outbox").Result()
	require.NoError(s.t, err)
	return n
}

// redisDump returns every key of the test's Redis database and every value
// (strings, hash fields and values, list, set and sorted-set members,
// stream entries), and how many keys it holds under the queue's prefixes.
func (s *system) redisDump() (dump string, keys, ours int) {
	s.t.Helper()
	ctx := context.Background()
	rdb := s.env.Redis
	var b strings.Builder
	var cursor uint64
	for {
		ks, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		require.NoError(s.t, err)
		for _, k := range ks {
			keys++
			if strings.HasPrefix(k, "asynq:{"+s.env.Queue) || strings.HasPrefix(k, "token-refresher:{"+s.env.Queue+"}") ||
				strings.HasPrefix(k, "token_refresher:{"+s.env.Queue+"}") || strings.HasPrefix(k, "rate:token-refresher:{"+s.env.Queue+"}") {
				ours++
			}
			typ, _ := rdb.Type(ctx, k).Result()
			fmt.Fprintf(&b, "%s (%s): ", k, typ)
			switch typ {
			case "string":
				v, _ := rdb.Get(ctx, k).Result()
				b.WriteString(v)
			case "hash":
				v, _ := rdb.HGetAll(ctx, k).Result()
				for f, x := range v {
					fmt.Fprintf(&b, "%s=%s ", f, x)
				}
			case "list":
				v, _ := rdb.LRange(ctx, k, 0, -1).Result()
				b.WriteString(strings.Join(v, " "))
			case "set":
				v, _ := rdb.SMembers(ctx, k).Result()
				b.WriteString(strings.Join(v, " "))
			case "zset":
				v, _ := rdb.ZRange(ctx, k, 0, -1).Result()
				b.WriteString(strings.Join(v, " "))
			case "stream":
				v, _ := rdb.XRange(ctx, k, "-", "+").Result()
				fmt.Fprint(&b, v)
			}
			b.WriteByte('\n')
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	return b.String(), keys, ours
}

// readyz returns /readyz's status code and body.
func readyz(t testing.TB, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// gauge reads a gauge from a process's /metrics; name is the series as
// exposed, with its labels if any.
func gauge(t testing.TB, addr, name string) (float64, bool) {
	t.Helper()
	resp, err := control.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// Log lines of the write gate and the outbox (internal/writegate,
// internal/refresh keep.go).
const (
	logGateClosed = "the database refuses writes: no marketplace calls until a write succeeds"
	logGateOpened = "the database takes writes again: marketplace calls resume"
	logKept       = "it is kept in the outbox"
	logKeptStored = `"msg":"kept token stored"`
)

// TestReadOnlyWindowKeepsTokensInHand — pass condition: the database turns
// read-only for two minutes (a failover or maintenance window) while 20
// OAuth refreshes are in flight; the marketplace rotates refresh tokens with
// no grace and revokes the family of a reused one. The 20 tokens issued
// then are kept (sealed in the Redis outbox, OUTBOX_KEY) and stored when
// the database takes writes again, while a scanner keeps enqueueing the
// still-due connections:
//   - no connection is lost: every row ends with its newest access token,
//     live, and the newest refresh token (the marketplace accepts it);
//   - no invalid_grant and no family revoked;
//   - no marketplace call starts while writes fail (beyond the 20 already
//     in flight), and one call per connection in all;
//   - nothing archived, the outbox empty at the end.
func TestReadOnlyWindowKeepsTokensInHand(t *testing.T) {
	t.Parallel()
	const (
		n = 20
		// The window of the issue: two minutes of a read-only database.
		readOnlyWindow = 2 * time.Minute
		latency        = 3 * time.Second
	)
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	s := newPrivateSystem(t, m, oauthKind)
	subjects := s.seedOAuth(1, n, time.Now().UTC().Add(-time.Hour))
	s.market.setFaults(rotateNoGrace(latency))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	r := s.startRefresher("REFRESH_CONCURRENCY=20", "OUTBOX_KEY="+outbox.GenerateKey(), "HTTP_ADDR="+addr)
	ready := pollReady(addr)
	defer ready.end()
	s.scanOnce()

	eventually(t, 30*time.Second, "twenty calls in flight", func() bool { return s.market.oauthInFlight() == n })
	m.SetReadOnly(t, true)
	readOnlyAt := time.Now()
	callsAtStart := s.market.stats().Calls
	// A scanner keeps enqueueing the connections, due until their token is
	// stored: the refresher must make no call for them meanwhile.
	sc := s.startScanner()
	eventually(t, 30*time.Second, "the twenty tokens to be kept", func() bool { return r.count(logKept) == n })
	keptAt := time.Now()
	inOutbox := s.outboxLen()
	assert.EqualValues(t, n, inOutbox, "the twenty tokens are in the durable outbox")
	for id, row := range fullRows(t, s.env.IE) {
		assert.Equal(t, fmt.Sprintf("seed-%d", id), *row.AccessToken, "connection %d: nothing written while read-only", id)
	}
	time.Sleep(time.Until(readOnlyAt.Add(readOnlyWindow / 2)))
	writableMid, gaugeMid := gauge(t, addr, "token_refresher_database_writable")
	readyCode, readyBody := readyz(t, addr)
	time.Sleep(time.Until(readOnlyAt.Add(readOnlyWindow)))
	callsAtEnd := s.market.stats().Calls
	m.SetReadOnly(t, false)
	writableAt := time.Now()

	var firstStored time.Time
	eventually(t, 30*time.Second, "the first kept token to be stored", func() bool {
		if storedCount(t, s.env.IE, subjects) > 0 {
			firstStored = time.Now()
			return true
		}
		return false
	})
	eventually(t, 30*time.Second, "every kept token to be stored", func() bool { return storedCount(t, s.env.IE, subjects) == n })
	allStored := time.Now()
	// The scanner's tasks put back meanwhile find the connections fresh.
	sc.signal(syscall.SIGTERM)
	sc.exit(30 * time.Second)
	scans, enqueued, _, _ := scanTotals(sc)
	eventually(t, 60*time.Second, "the queue to settle", func() bool {
		info := s.queueInfo()
		return info.Pending+info.Active+info.Retry == 0
	})
	writableAfter, gaugeAfter := gauge(t, addr, "token_refresher_database_writable")
	notReady, _ := ready.since(readOnlyAt)

	st := s.market.stats()
	calls := s.market.calls()
	archived, err := s.queue().ListArchived()
	require.NoError(t, err)
	callsWhileUnwritable := callsAtEnd - callsAtStart
	assert.Equal(t, n, callsAtStart, "the twenty calls in flight when the window opened")
	assert.Positive(t, enqueued, "the scanner enqueued the still-due connections during the window")
	assert.Zero(t, callsWhileUnwritable, "no marketplace call started while the database refused writes")
	for id, subject := range subjects {
		assert.Equal(t, 1, calls[subject], "connection %d: one call in all", id)
	}
	assert.Equal(t, n, st.Issued)
	assert.Zero(t, st.Rejected, "no invalid_grant")
	assert.Zero(t, st.FamiliesRevoked, "no token family revoked")
	assert.Empty(t, archived, "nothing archived")
	// The keeper logs a token stored, then takes it out of the outbox,
	// just after the row has it.
	eventually(t, 10*time.Second, "the outbox to be empty once the tokens are stored", func() bool { return s.outboxLen() == 0 })
	assert.Equal(t, n, r.count(logKeptStored), "each kept token stored once")
	assert.GreaterOrEqual(t, r.count(logGateClosed), 1, "the refresher said the database refuses writes")
	assert.GreaterOrEqual(t, r.count(logGateOpened), 1, "the refresher said the database takes writes again")
	assert.Zero(t, r.count(`"outcome":"permanent"`), "no false permanent failure")
	assert.True(t, gaugeMid && gaugeAfter, "/metrics has token_refresher_database_writable")
	assert.Equal(t, 0.0, writableMid, "token_refresher_database_writable is 0 in the window")
	assert.Equal(t, http.StatusServiceUnavailable, readyCode, "/readyz: not ready in the window")
	assert.Contains(t, readyBody, "the server is read-only (read_only=ON)", "/readyz says why")
	assert.Positive(t, notReady, "/readyz answered 503 during the window")
	assert.Equal(t, 1.0, writableAfter, "token_refresher_database_writable is 1 after it")
	// The poller's last answer may predate the gate's opening by up to its
	// 100ms period: ask until it answers 200.
	eventually(t, 10*time.Second, "/readyz to answer 200 after the window", func() bool {
		code, _ := readyz(t, addr)
		return code == http.StatusOK
	})
	assert.True(t, r.running(), "the refresher keeps running")
	lost := s.requireNothingLost(s.env.IE, subjects)
	assert.Zero(t, lost, "no connection lost")

	figure(t, "connections=%d read_only_window=%s latency=%s tokens_lost=%d invalid_grant=%d families_revoked=%d calls=%d "+
		"calls_while_unwritable=%d kept=%d kept_after=%s in_outbox=%d first_stored_after_writable=%s all_stored_after_writable=%s "+
		"scans=%d tasks_enqueued_by_scanner=%d readyz_503=%d archived=%d",
		n, readOnlyWindow, latency, lost, st.Rejected, st.FamiliesRevoked, st.Calls, callsWhileUnwritable, r.count(logKept),
		keptAt.Sub(readOnlyAt).Round(100*time.Millisecond), inOutbox, firstStored.Sub(writableAt).Round(100*time.Millisecond),
		allStored.Sub(writableAt).Round(100*time.Millisecond), scans, enqueued, notReady, len(archived))
}

// TestFailoverWritesReachNewPrimary — pass condition: the refresher reaches
// the database through a name that moves (a proxy, as DNS or a VIP does);
// its pool holds connections to the primary A when A is failed over to B
// (A read-only, B promoted) and the name moved, with ten OAuth refreshes in
// flight (the marketplace rotates refresh tokens with no grace). The
// pooled connections to A are dropped when A refuses a write
// (rejectReadOnly), so:
//   - the tokens land on B within seconds of the switch;
//   - every connection ends on B with its newest access token and the
//     newest refresh token: none lost, no invalid_grant, one call each.
func TestFailoverWritesReachNewPrimary(t *testing.T) {
	t.Parallel()
	const (
		warm    = 5  // refreshed before the failover: the pool holds connections to A
		n       = 10 // in flight at the failover
		latency = 2 * time.Second
	)
	a := testenv.StartMariaDB(t, testenv.MariaDBOptions{ServerID: 1, Binlog: true})
	b := testenv.StartMariaDB(t, testenv.MariaDBOptions{ServerID: 2, Binlog: true})
	b.ReplicateFrom(t, a)
	proxy := testenv.NewProxy(t, a.Addr())
	s := newPrivateSystem(t, a, oauthKind)
	s.env.WMSDSN = proxy.DSN(t, s.env.WMSDSN)
	s.env.IEDSN = proxy.DSN(t, s.env.IEDSN)
	s.ieDSN = s.env.IEDSN
	onB := sqlx.MustOpen("mysql", b.RootDSN(s.env.IEDB))
	t.Cleanup(func() { onB.Close() })

	first := s.seedOAuth(1, warm, time.Now().UTC().Add(-time.Hour))
	second := s.seedOAuth(101, n, time.Now().UTC().Add(2*time.Hour))
	all := map[int64]string{}
	for id, sub := range first {
		all[id] = sub
	}
	for id, sub := range second {
		all[id] = sub
	}
	s.market.setFaults(rotateNoGrace(0))
	r := s.startRefresher()
	s.scanOnce()
	eventually(t, 30*time.Second, "the first connections to be refreshed on A", func() bool { return storedCount(t, s.env.IE, first) == warm })
	toA := proxy.Connections(a.Addr())
	require.Positive(t, toA, "the refresher's pool went to A")

	// The second batch comes due (a root write on A, replicated to B) and
	// its calls are slow: in flight through the failover.
	s.market.setFaults(rotateNoGrace(latency))
	q, args, err := sqlx.In(`UPDATE ie_appinstall_connection SET accessTokenExpiryAt = ? WHERE id IN (?)`,
		time.Now().UTC().Add(-time.Minute).Truncate(time.Second), ids(second))
	require.NoError(t, err)
	s.env.IE.MustExec(q, args...)
	s.scanOnce()
	eventually(t, 30*time.Second, "ten calls in flight", func() bool { return s.market.oauthInFlight() == n })
	failoverAt := time.Now()
	testenv.Failover(t, a, b)
	proxy.Switch(b.Addr())
	switchedAt := time.Now()

	var firstOnB time.Time
	eventually(t, 30*time.Second, "a token written on B", func() bool {
		if storedCount(t, onB, second) > 0 {
			firstOnB = time.Now()
			return true
		}
		return false
	})
	eventually(t, 60*time.Second, "every token written on B", func() bool { return storedCount(t, onB, second) == n })
	allOnB := time.Now()
	eventually(t, 60*time.Second, "the queue to settle", func() bool {
		info := s.queueInfo()
		return info.Pending+info.Active+info.Retry == 0
	})

	st := s.market.stats()
	calls := s.market.calls()
	archived, err := s.queue().ListArchived()
	require.NoError(t, err)
	assert.Less(t, firstOnB.Sub(switchedAt), 10*time.Second, "writes reach the new primary within seconds")
	assert.Positive(t, proxy.Connections(b.Addr()), "the refresher connected to B")
	for id, subject := range all {
		assert.Equal(t, 1, calls[subject], "connection %d: one call", id)
	}
	assert.Equal(t, warm+n, st.Issued)
	assert.Zero(t, st.Rejected, "no invalid_grant")
	assert.Zero(t, st.FamiliesRevoked, "no token family revoked")
	assert.Empty(t, archived, "nothing archived")
	assert.Zero(t, r.count(`"outcome":"permanent"`), "no false permanent failure")
	assert.True(t, r.running(), "the refresher keeps running")
	lost := s.requireNothingLost(onB, all)
	assert.Zero(t, lost, "no connection lost")

	figure(t, "connections=%d in_flight_at_failover=%d latency=%s failover_took=%s failover_to_first_write_seconds=%.1f "+
		"failover_to_all_written_seconds=%.1f tokens_lost=%d invalid_grant=%d calls=%d kept=%d gate_closed=%d conns_to_a=%d conns_to_b=%d",
		warm+n, n, latency, switchedAt.Sub(failoverAt).Round(10*time.Millisecond), firstOnB.Sub(switchedAt).Seconds(),
		allOnB.Sub(switchedAt).Seconds(), lost, st.Rejected, st.Calls, r.count(logKept), r.count(logGateClosed),
		proxy.Connections(a.Addr()), proxy.Connections(b.Addr()))
}

func ids(m map[int64]string) []int64 {
	out := make([]int64, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	return out
}

// TestKilledWhileReadOnlyKeepsTokens — pass condition: ten OAuth refreshes
// are in flight when the database turns read-only; the refresher keeps the
// ten tokens (OUTBOX_KEY: sealed in Redis, the rotated refresh tokens
// written ahead) and is SIGKILLed. Then:
//   - no issued token, access or refresh, nor any seeded refresh token,
//     is in Redis in plaintext (every key of its database searched);
//   - once the database takes writes, a new refresher with the same key
//     stores the ten tokens issued before the kill, with no call: one call
//     per connection in all, no invalid_grant, none lost.
func TestKilledWhileReadOnlyKeepsTokens(t *testing.T) {
	t.Parallel()
	const (
		n       = 10
		latency = 2 * time.Second
	)
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	s := newPrivateSystem(t, m, oauthKind)
	subjects := s.seedOAuth(1, n, time.Now().UTC().Add(-time.Hour))
	s.market.setFaults(rotateNoGrace(latency))
	key := outbox.GenerateKey()
	r1 := s.startRefresher("OUTBOX_KEY=" + key)
	s.scanOnce()
	eventually(t, 30*time.Second, "ten calls in flight", func() bool { return s.market.oauthInFlight() == n })
	m.SetReadOnly(t, true)
	eventually(t, 30*time.Second, "the ten tokens to be kept", func() bool { return r1.count(logKept) == n })
	r1.kill()
	inOutbox := s.outboxLen()
	dump, keys, ours := s.redisDump()
	for id, row := range fullRows(t, s.env.IE) {
		assert.Equal(t, fmt.Sprintf("seed-%d", id), *row.AccessToken, "connection %d: nothing written while read-only", id)
	}

	m.SetReadOnly(t, false)
	restartAt := time.Now()
	r2 := s.startRefresher("OUTBOX_KEY=" + key)
	eventually(t, 30*time.Second, "the kept tokens to be stored", func() bool { return storedCount(t, s.env.IE, subjects) == n })
	allStored := time.Now()

	// The secrets: what the rows hold now (issued before the kill: one
	// call per connection, checked below) and the seeded refresh tokens.
	var secrets []string
	for id, row := range fullRows(t, s.env.IE) {
		require.NotNil(t, row.AccessToken, "connection %d", id)
		require.NotNil(t, row.RefreshToken, "connection %d", id)
		secrets = append(secrets, *row.AccessToken, *row.RefreshToken, sandbox.RefreshToken(subjects[id]))
	}
	plaintext, inLogs := 0, 0
	for _, sec := range secrets {
		if strings.Contains(dump, sec) {
			plaintext++
		}
		if strings.Contains(r1.out.String(), sec) || strings.Contains(r2.out.String(), sec) {
			inLogs++
		}
	}

	st := s.market.stats()
	calls := s.market.calls()
	assert.EqualValues(t, n, inOutbox, "the ten tokens were in the durable outbox at the kill")
	assert.Positive(t, ours, "the dump holds the queue's keys")
	assert.Zero(t, plaintext, "no token in Redis in plaintext")
	assert.Zero(t, inLogs, "no token in the logs")
	for id, subject := range subjects {
		assert.Equal(t, 1, calls[subject], "connection %d: one call in all; the new refresher stored the kept token", id)
	}
	assert.Equal(t, n, st.Issued)
	assert.Zero(t, st.Rejected, "no invalid_grant")
	assert.Zero(t, st.FamiliesRevoked, "no token family revoked")
	eventually(t, 10*time.Second, "the outbox to be empty once the tokens are stored", func() bool { return s.outboxLen() == 0 })
	assert.Equal(t, n, r2.count(logKeptStored), "the new refresher stored the ten kept tokens")
	lost := s.requireNothingLost(s.env.IE, subjects)
	assert.Zero(t, lost, "no connection lost")

	figure(t, "connections=%d latency=%s tokens_lost=%d plaintext_secrets_in_redis=%d secrets_searched=%d redis_keys_searched=%d "+
		"queue_keys=%d in_outbox_at_kill=%d invalid_grant=%d calls=%d restart_to_all_stored_seconds=%.1f",
		n, latency, lost, plaintext, len(secrets), keys, ours, inOutbox, st.Rejected, st.Calls, allStored.Sub(restartAt).Seconds())
}
