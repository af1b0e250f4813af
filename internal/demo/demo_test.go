package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/demo/embedded"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestKinds checks the demo table: unique ids, and every kind shows each
// case the demo promises (due now, due in the second wave, rejected,
// malformed) with an entry the registry can build.
func TestKinds(t *testing.T) {
	t.Parallel()
	timing := DefaultTiming()
	seen := map[int64]bool{}
	for _, k := range Kinds() {
		e := k.Entry("http://127.0.0.1:1", timing)
		_, err := registry.Build(e, provider.NewHTTPClient(1), os.Getenv)
		require.NoError(t, err, "%s", e.Label())
		assert.Equal(t, timing.RefreshBefore, e.Before(), "%s uses the demo's timing", e.Label())
		cases := map[string]int{}
		for _, r := range k.Rows(timing) {
			assert.False(t, seen[r.ID], "connection %d listed twice", r.ID)
			seen[r.ID] = true
			assert.NotEmpty(t, r.Note, "connection %d says what it shows", r.ID)
			assert.NotEmpty(t, r.InputFields, "connection %d", r.ID)
			switch {
			case r.Want != WantRefreshed:
				cases[string(r.Want)]++
			case r.ExpiresAt != nil || r.ExpiresIn == Never || r.ExpiresIn < e.Before():
				cases["due now"]++
			case r.ExpiresIn == timing.SecondWave+e.Before():
				cases["second wave"]++
			}
		}
		for _, c := range []string{"due now", "second wave", string(WantRejected), string(WantMalformed)} {
			assert.Positive(t, cases[c], "%s has a connection %s", e.Label(), c)
		}
	}
	for _, kind := range []string{registry.KindAjio, registry.KindOAuth2Refresh, registry.KindUnicommerce,
		registry.KindHTTPToken, registry.KindClientCredentials} {
		assert.True(t, slices.ContainsFunc(Kinds(), func(k Kind) bool { return k.Entry("http://127.0.0.1:1", timing).Kind == kind }), "the demo shows %s", kind)
	}
}

// TestSeededRowsMatchDeploySeed holds the demo's table to deploy's seed: the
// demo shows every connection the seed holds, with the same type,
// credentials, refresh token and expiry, so a change to one is made to the
// other.
func TestSeededRowsMatchDeploySeed(t *testing.T) {
	t.Parallel()
	m, err := embedded.StartMySQL(io.Discard)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	db := sqlx.MustOpen("mysql", m.DSN(""))
	t.Cleanup(func() { db.Close() })
	for _, st := range append(deploy.Schema(deploy.WMSDatabase, deploy.IEDatabase), deploy.Seed(deploy.WMSDatabase, deploy.IEDatabase)...) {
		db.MustExec(st)
	}
	var seed []struct {
		ID              int64      `db:"id"`
		IntegrationType string     `db:"integrationType"`
		InputFields     string     `db:"inputFields"`
		RefreshToken    *string    `db:"refreshToken"`
		ExpiresAt       *time.Time `db:"accessTokenExpiryAt"`
	}
	require.NoError(t, db.Select(&seed, `SELECT c.id, ch.integrationType, c.inputFields, c.refreshToken, c.accessTokenExpiryAt
		FROM `+deploy.IEDatabase+`.ie_appinstall_connection c JOIN `+deploy.WMSDatabase+`.channels ch ON ch.connectionId = c.id`))
	require.NotEmpty(t, seed)

	_, conns, err := build(Kinds(), "http://127.0.0.1:1", DefaultTiming())
	require.NoError(t, err)
	seeded := map[int64]conn{}
	for _, c := range conns {
		if c.Seeded {
			seeded[c.ID] = c
		}
	}
	start := time.Now()
	for _, s := range seed {
		c, ok := seeded[s.ID]
		if !assert.True(t, ok, "seed connection %d is in the demo's table, marked Seeded", s.ID) {
			continue
		}
		delete(seeded, s.ID)
		assert.Equal(t, s.IntegrationType, c.IntegrationType, "connection %d", s.ID)
		assert.JSONEq(t, s.InputFields, c.InputFields, "connection %d", s.ID)
		want := ""
		if s.RefreshToken != nil {
			want = *s.RefreshToken
		}
		assert.Equal(t, want, c.RefreshToken, "connection %d", s.ID)
		if s.ExpiresAt == nil {
			assert.Nil(t, c.expiry(start), "connection %d", s.ID)
		} else if e := c.expiry(start); assert.NotNil(t, e, "connection %d", s.ID) {
			assert.True(t, s.ExpiresAt.Equal(*e), "connection %d: seed %v, demo %v", s.ID, s.ExpiresAt, e)
		}
	}
	assert.Empty(t, seeded, "rows marked Seeded that the seed does not hold")
}

func TestTimingValidate(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		timing Timing
		err    string
	}{
		"default":                    {timing: DefaultTiming()},
		"refresh before ≥ lifetime":  {timing: Timing{TokenTTL: time.Minute, RefreshBefore: time.Minute, SecondWave: time.Second, ScanInterval: time.Second}, err: "shorter than the token lifetime"},
		"scan not well under window": {timing: Timing{TokenTTL: time.Hour, RefreshBefore: time.Minute, SecondWave: time.Second, ScanInterval: 31 * time.Second}, err: "at most half"},
		"zero second wave":           {timing: Timing{TokenTTL: time.Hour, RefreshBefore: time.Minute, ScanInterval: time.Second}, err: "positive"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.timing.validate()
			if tc.err == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}

func status(due, refreshed int, failures ...Connection) Status {
	s := Status{Elapsed: 12 * time.Second, Due: due, Refreshed: refreshed, Failed: len(failures), NextDueIn: 50 * time.Second}
	s.Connections = append(s.Connections, Connection{ID: 1, Kind: "ajio", IntegrationType: "16", State: StateFresh})
	s.Connections = append(s.Connections, failures...)
	return s
}

var rejected = Connection{ID: 7, Kind: "ajio", IntegrationType: "16", State: StateFailed, Reason: "ajio rejected the credentials"}

func TestPrinterTerminal(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := newPrinter(&out, true, time.Hour)
	now := time.Now()
	p.update(status(3, 0), now)
	assert.Equal(t, "0:12  3 connection(s) came due: their token expires within the refresh window\n"+
		"\r\033[K0:12  due 3  refreshing 0  refreshed 0  failed 0  next due in 0:50", out.String())

	out.Reset()
	p.update(status(0, 3, rejected), now.Add(time.Second))
	assert.Equal(t, "\r\033[K0:12  failed: connection 7 (ajio, integration type 16): ajio rejected the credentials\n"+
		"\r\033[K0:12  due 0  refreshing 0  refreshed 3  failed 1  next due in 0:50", out.String(),
		"the line is cleared for the failure, which stays above the redrawn line")

	out.Reset()
	p.update(status(0, 3, rejected), now.Add(2*time.Second))
	assert.NotContains(t, out.String(), "failed: connection 7", "a failure is announced once")

	out.Reset()
	p.summary(status(0, 3, rejected))
	assert.True(t, strings.HasPrefix(out.String(), "\r\033[K\nSummary after 0:12:\n"), "%q", out.String())
	assert.Contains(t, out.String(), "connection 7 (ajio, integration type 16), failed: ajio rejected the credentials")
}

// TestPrinterFirstRefreshPerFlow: the first stored token of each flow gets
// a line of its own, once.
func TestPrinterFirstRefreshPerFlow(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := newPrinter(&out, false, time.Hour)
	exp := time.Date(2026, 12, 1, 10, 3, 0, 0, time.UTC)
	s := status(0, 2)
	s.Connections = append(s.Connections,
		Connection{ID: 11, Kind: "ajio", IntegrationType: "16", State: StateFresh, Refreshes: 1, ExpiresAt: &exp},
		Connection{ID: 99, Kind: "ajio", IntegrationType: "16", State: StateFresh, Refreshes: 1, ExpiresAt: &exp},
		Connection{ID: 4201, Kind: "oauth2_refresh", IntegrationType: "42", State: StateFresh, Refreshes: 1})
	p.update(s, time.Now())
	assert.Equal(t, "0:12  refreshed: connection 11 (ajio, integration type 16): token stored, expires 10:03:00 UTC (first of its flow)\n"+
		"0:12  refreshed: connection 4201 (oauth2_refresh, integration type 42): token stored (first of its flow)\n"+
		"0:12  due 0  refreshing 0  refreshed 2  failed 0  next due in 0:50\n", out.String())

	out.Reset()
	p.update(s, time.Now().Add(time.Minute))
	assert.NotContains(t, out.String(), "refreshed: connection", "once per flow")
}

func TestPrinterPlain(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := newPrinter(&out, false, 5*time.Second)
	now := time.Now()
	p.update(status(0, 0), now)
	assert.Equal(t, "0:12  due 0  refreshing 0  refreshed 0  failed 0  next due in 0:50\n", out.String())

	out.Reset()
	p.update(status(0, 2), now.Add(2*time.Second))
	assert.Empty(t, out.String(), "changed, but within 5s of the last line")
	p.update(status(0, 2), now.Add(6*time.Second))
	assert.Equal(t, "0:12  due 0  refreshing 0  refreshed 2  failed 0  next due in 0:50\n", out.String())

	out.Reset()
	p.update(status(0, 2), now.Add(20*time.Second))
	assert.Empty(t, out.String(), "nothing changed")
	p.update(status(0, 2), now.Add(37*time.Second))
	assert.NotEmpty(t, out.String(), "a line at least every 30s")
	assert.NotContains(t, out.String(), "\r", "no terminal control in plain output")
}

// TestRunOnRealServers runs the demo with WMS_DB_DSN, IE_DB_DSN and
// REDIS_URL on the real MariaDB and Redis: it creates the missing databases
// and schema, refreshes the due tokens, shows the two failures, runs again on
// the same databases, and refuses databases holding a row it did not make.
func TestRunOnRealServers(t *testing.T) {
	t.Parallel()
	env := testenv.New(t) // this test's queue on the real Redis, cleaned up after
	id := testenv.RandomID()
	wmsDB, ieDB := "trd_"+id+"_wms", "trd_"+id+"_ie"
	root := sqlx.MustOpen("mysql", testenv.MySQLDSN())
	t.Cleanup(func() {
		root.Exec("DROP DATABASE IF EXISTS " + wmsDB)
		root.Exec("DROP DATABASE IF EXISTS " + ieDB)
		root.Close()
	})
	dsn := func(db string) string {
		cfg, err := driver.ParseDSN(testenv.MySQLDSN())
		require.NoError(t, err)
		cfg.DBName = db
		return cfg.FormatDSN()
	}
	cfg := Config{
		Servers: &Servers{WMSDSN: dsn(wmsDB), IEDSN: dsn(ieDB), RedisURL: env.RedisURL},
		Queue:   env.Queue,
		Addr:    "127.0.0.1:0",
		Timing:  Timing{TokenTTL: 30 * time.Second, RefreshBefore: 10 * time.Second, SecondWave: 2 * time.Second, ScanInterval: time.Second},
	}
	_, conns, err := build(Kinds(), "http://127.0.0.1:1", cfg.Timing)
	require.NoError(t, err)

	first := true // the second run's failures are already notified
	runUntilRefreshed := func() (Status, string) {
		var out testenv.Logs
		c := cfg
		c.Out = &out
		ready := make(chan Endpoints, 1)
		c.Ready = func(ep Endpoints) { ready <- ep }
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		type result struct {
			st  Status
			err error
		}
		done := make(chan result, 1)
		go func() {
			st, err := Run(ctx, c)
			done <- result{st, err}
		}()
		var dash string
		select {
		case ep := <-ready:
			dash = ep.Dashboard
			assert.Empty(t, ep.MySQL, "no embedded MySQL on real servers")
			assert.Empty(t, ep.Redis, "no embedded Redis on real servers")
		case r := <-done:
			t.Fatalf("demo ended before it served: %v\n%s", r.err, out.String())
		}
		ie := sqlx.MustOpen("mysql", dsn(ieDB)+"?parseTime=true")
		defer ie.Close()
		testenv.Eventually(t, 60*time.Second, "every valid seller's token refreshed on the real servers", func() bool {
			for _, c := range conns {
				if c.Want != WantRefreshed {
					continue
				}
				var n int
				if err := ie.Get(&n, `SELECT COUNT(*) FROM ie_appinstall_connection WHERE id = ? AND accessToken IS NOT NULL AND accessTokenExpiryAt > UTC_TIMESTAMP()`, c.ID); err != nil || n != 1 {
					return false
				}
			}
			return true
		})
		testenv.Eventually(t, 30*time.Second, "the ten failures shown", func() bool {
			return strings.Contains(out.String(), "failed 10")
		})
		if first {
			// asynqmon shows them with the production formatters: the
			// payload as its identifiers, the result as the reason.
			code, body := getBody(t, dash+"monitoring/api/queues/"+env.Queue+"/archived_tasks?page=1&page_size=50")
			require.Equal(t, http.StatusOK, code, body)
			assert.Regexp(t, `"payload":\s*"connection \d+ · type \d+ · due expiry`, body)
			for _, c := range conns {
				if c.Want == WantRejected {
					code, body = getBody(t, dash+"monitoring/api/queues/"+env.Queue+"/tasks/"+task.ID(c.ID))
					break
				}
			}
			require.Equal(t, http.StatusOK, code, body)
			assert.Regexp(t, `"result":\s*"failed: `, body)
			testenv.Eventually(t, 30*time.Second, "their ten webhook events received", func() bool {
				return strings.Count(out.String(), "webhook received: connection.failed") == 10
			})
		}
		first = false
		cancel()
		r := <-done
		require.NoError(t, r.err)
		return r.st, out.String()
	}

	st, out := runUntilRefreshed()
	assert.Contains(t, out, "the servers of WMS_DB_DSN and IE_DB_DSN")
	for _, c := range conns {
		if c.Want == WantRejected || c.Want == WantMalformed {
			assert.Contains(t, out, fmt.Sprintf("webhook received: connection.failed for connection %d (%s), signature verified", c.ID, c.Kind))
		}
	}
	checkFinal := func(st Status) {
		t.Helper()
		// At least once each: a slow machine may see a token come due again.
		assert.GreaterOrEqual(t, st.Refreshed, 35)
		assert.Equal(t, 10, st.Failed)
		for _, c := range st.Connections {
			switch c.Want {
			case WantRefreshed:
				assert.Positive(t, c.Refreshes, "connection %d", c.ID)
			case WantRejected:
				assert.Equal(t, StateFailed, c.State, "connection %d", c.ID)
				assert.Regexp(t, `rejected the credentials|invalid_grant|invalid_client`, c.Reason, "connection %d", c.ID)
			case WantMalformed:
				assert.Equal(t, StateFailed, c.State, "connection %d", c.ID)
				assert.Contains(t, c.Reason, "malformed inputFields", "connection %d", c.ID)
			}
		}
	}
	checkFinal(st)

	// Again on the same databases: the demo's rows are replaced and
	// refreshed again; the failures are still archived (cooling down).
	st, _ = runUntilRefreshed()
	checkFinal(st)

	// A row the demo did not make: refused, and left alone.
	root.MustExec("INSERT INTO " + wmsDB + ".channels (connectionId, integrationType, status) VALUES (5, '16', '0')")
	c := cfg
	_, err = Run(context.Background(), c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds connection 5, which the demo did not make")
	assert.NotContains(t, err.Error(), "@tcp(", "the error does not repeat the DSN")
	var n int
	require.NoError(t, root.Get(&n, "SELECT COUNT(*) FROM "+wmsDB+".channels WHERE connectionId = 5"))
	assert.Equal(t, 1, n)
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

func TestPrinterTerminalLineFitsOneRow(t *testing.T) {
	t.Parallel()
	usual := Status{Elapsed: 5 * time.Minute, Due: 14, Queued: 3, Refreshing: 4, Refreshed: 140, Failed: 2, NextDueIn: time.Minute}
	assert.LessOrEqual(t, len(usual.Line()), 79, "a demo's usual line is not cut: %q", usual.Line())

	var out bytes.Buffer
	p := newPrinter(&out, true, time.Hour)
	p.update(Status{Elapsed: 59*time.Minute + 59*time.Second, Due: 9999, Queued: 9999, Refreshing: 99, Retrying: 99,
		Refreshed: 99999, Failed: 999, NextDueIn: 59 * time.Minute}, time.Now())
	drawn := out.String()[strings.LastIndex(out.String(), "\r\033[K")+len("\r\033[K"):]
	assert.LessOrEqual(t, utf8.RuneCountInString(drawn), 79, "%q", drawn)
	assert.True(t, strings.HasPrefix(drawn, "59:59  due 9999"), "%q", drawn)
}
