package dueset_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/dueset"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

const window = 10 * time.Minute

var ajio = []token.Target{{IntegrationType: "16", Kind: "ajio", RefreshBefore: window}}

// server is a private MariaDB, so its global Innodb_rows_read counts only
// what the test reads, with the deploy/ schema and, when indexed, the
// optional indexes.
type server struct {
	m       *testenv.MariaDB
	wms, ie string
	store   *mysql.Store
}

func startServer(t *testing.T, indexed bool) *server {
	t.Helper()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	wms, ie := m.CreateSchema(t)
	if indexed {
		for _, st := range deploy.Indexes(wms, ie) {
			m.Root().MustExec(st)
		}
	}
	store, err := mysql.Open(context.Background(), m.RootDSN(wms), m.RootDSN(ie), mysql.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	return &server{m: m, wms: wms, ie: ie, store: store}
}

// rowsRead is the server's Rows_read: every row a storage engine handed
// to a query, from any index.
func (s *server) rowsRead(t *testing.T) int64 {
	t.Helper()
	var name string
	var n int64
	require.NoError(t, s.m.Root().QueryRowx(`SHOW GLOBAL STATUS LIKE 'Rows_read'`).Scan(&name, &n))
	return n
}

type row struct {
	id     int64
	typ    string // "" : no channels row
	exp    *time.Time
	active bool
}

// insert writes rows in batches of multi-row INSERTs.
func (s *server) insert(t *testing.T, rows []row) {
	t.Helper()
	db := s.m.Root()
	for chunk := range slices.Chunk(rows, 2000) {
		var ie, ch []string
		var ieArgs, chArgs []any
		for _, r := range chunk {
			ie = append(ie, "(?, ?, ?, ?)")
			var exp any
			if r.exp != nil {
				exp = r.exp.UTC().Format("2006-01-02 15:04:05")
			}
			act := "active"
			if !r.active {
				act = "inactive"
			}
			ieArgs = append(ieArgs, r.id, `{"username":"u","password":"p"}`, exp, act)
			if r.typ != "" {
				ch = append(ch, "(?, ?, '0')")
				chArgs = append(chArgs, r.id, r.typ)
			}
		}
		db.MustExec(`INSERT INTO `+s.ie+`.ie_appinstall_connection (id, inputFields, accessTokenExpiryAt, isActive) VALUES `+strings.Join(ie, ","), ieArgs...)
		if len(ch) > 0 {
			db.MustExec(`INSERT INTO `+s.wms+`.channels (connectionId, integrationType, status) VALUES `+strings.Join(ch, ","), chArgs...)
		}
	}
}

func (s *server) setExpiry(t *testing.T, id int64, exp time.Time) {
	t.Helper()
	s.m.Root().MustExec(`UPDATE `+s.ie+`.ie_appinstall_connection SET accessTokenExpiryAt = ? WHERE id = ?`,
		exp.UTC().Format("2006-01-02 15:04:05"), id)
}

func at(now time.Time, d time.Duration) *time.Time { x := now.Add(d).Truncate(time.Second); return &x }

// due collects what the tracker's ScanDue hands the scanner.
func due(t *testing.T, tr *dueset.Tracker, typ string, now time.Time) map[int64]bool {
	t.Helper()
	got := map[int64]bool{}
	_, err := tr.ScanDue(context.Background(), typ, token.DueBefore(now, window), func(c []token.DueConnection) error {
		for _, d := range c {
			got[d.ID] = true
		}
		return nil
	})
	require.NoError(t, err)
	return got
}

// walk is what the store's walk finds due: the rule the tracker must equal.
func walk(t *testing.T, store *mysql.Store, typ string, now time.Time) map[int64]bool {
	t.Helper()
	got := map[int64]bool{}
	_, err := store.ScanDue(context.Background(), typ, token.DueBefore(now, window), func(c []token.DueConnection) error {
		for _, d := range c {
			got[d.ID] = true
		}
		return nil
	})
	require.NoError(t, err)
	return got
}

// TestPassesReadWhatIsDue: with the optional indexes, a pass between full
// ones reads rows in proportion to the due connections and to what entered
// the refresh window, not to the fleet: 20,000 fresh connections and 5,000
// rows of an unconfigured integration type that hold a NULL expiry forever
// are not read again. Counted with Rows_read on a private server,
// never timed. What the passes find equals the walk's answer (token.Due)
// after every step.
func TestPassesReadWhatIsDue(t *testing.T) {
	t.Parallel()
	s := startServer(t, true)
	now := time.Now().Truncate(time.Second)
	const fleet, foreign, dueN = 20_000, 5_000, 50
	var rows []row
	for i := range fleet {
		// Fresh: expiring evenly over the next 30 to 90 minutes.
		rows = append(rows, row{id: int64(i + 1), typ: "16", active: true,
			exp: at(now, 30*time.Minute+time.Duration(i)*time.Hour/fleet)})
	}
	for i := range dueN {
		rows[i*7].exp = at(now, time.Duration(i)*time.Second+time.Minute) // due
	}
	for i := range foreign {
		rows = append(rows, row{id: int64(100_000 + i), typ: "77", active: true})
	}
	s.insert(t, rows)

	// The test moves the clock by 40 minutes: no full pass in between.
	tr := dueset.New(s.store, ajio, dueset.Options{FullInterval: 2 * time.Hour})
	ctx := context.Background()
	before := s.rowsRead(t)
	require.NoError(t, tr.Sync(ctx, now))
	full := s.rowsRead(t) - before
	require.True(t, tr.Stats().Full && tr.Stats().Indexed, "the first pass is a full one: %+v", tr.Stats())
	assert.Equal(t, walk(t, s.store, "16", now), due(t, tr, "16", now))
	assert.Len(t, due(t, tr, "16", now), dueN)

	// Nothing changed: the next pass reads the due rows again, and little else.
	before = s.rowsRead(t)
	require.NoError(t, tr.Sync(ctx, now.Add(3*time.Second)))
	idle := s.rowsRead(t) - before
	assert.False(t, tr.Stats().Full)
	assert.LessOrEqual(t, idle, int64(4*dueN), "a pass with %d due read %d rows (the full pass read %d)", dueN, idle, full)
	assert.Less(t, idle, int64(foreign/10), "the foreign rows with a NULL expiry were read again")

	// 40 minutes on: the connections expiring in [30m, 50m) enter the
	// window; the due ones were refreshed meanwhile.
	for i := range dueN {
		s.setExpiry(t, int64(i*7+1), now.Add(2*time.Hour+time.Duration(i)*time.Second))
	}
	later := now.Add(40 * time.Minute)
	entering := len(walk(t, s.store, "16", later))
	before = s.rowsRead(t)
	require.NoError(t, tr.Sync(ctx, later))
	moved := s.rowsRead(t) - before
	assert.Equal(t, walk(t, s.store, "16", later), due(t, tr, "16", later), "the passes and the walk disagree on what is due")
	// Each entering row is read once from the expiry index and once more
	// for its channel (by connection id); the tracked ones are read again
	// once to see them leave.
	assert.LessOrEqual(t, moved, int64(2*entering+2*dueN+100), "a pass with %d entering read %d rows", entering, moved)
	t.Logf("full pass: %d rows; idle pass: %d rows (%d due); pass with %d entering: %d rows; fleet %d + %d foreign",
		full, idle, dueN, entering, moved, fleet, foreign)

	// The census from the tracked set equals the walk's.
	failing := map[int64]bool{5: true}
	want, err := s.store.CountStates(ctx, "16", later, token.DueBefore(later, window), failing)
	require.NoError(t, err)
	got, err := tr.CountStates(ctx, "16", later, token.DueBefore(later, window), failing)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// TestNewConnectionsAreFoundInOnePass: a connection created between two
// passes is due at the next one, whichever of its two rows (the
// connection, its channel) was written last, and when its rows were
// committed after a connection with a higher id; a new row of an unconfigured
// type is read once and not tracked; a deactivated or refreshed connection
// leaves the set, and a refreshed one comes back when its new token comes
// due.
func TestNewConnectionsAreFoundInOnePass(t *testing.T) {
	t.Parallel()
	s := startServer(t, true)
	now := time.Now().Truncate(time.Second)
	s.insert(t, []row{
		{id: 1, typ: "16", active: true, exp: at(now, time.Hour)},
		{id: 2, typ: "16", active: true, exp: at(now, time.Minute)},
		{id: 3, typ: "16", active: true, exp: at(now, 2*time.Minute)},
	})
	tr := dueset.New(s.store, ajio, dueset.Options{FullInterval: time.Hour})
	ctx := context.Background()
	require.NoError(t, tr.Sync(ctx, now))
	assert.Equal(t, map[int64]bool{2: true, 3: true}, due(t, tr, "16", now))

	// A whole new connection, a foreign one, and the connection row of one
	// whose channel comes later.
	s.insert(t, []row{
		{id: 10, typ: "16", active: true},
		{id: 11, typ: "77", active: true},
		{id: 12, active: true},
	})
	t1 := now.Add(3 * time.Second)
	require.NoError(t, tr.Sync(ctx, t1))
	assert.Equal(t, map[int64]bool{2: true, 3: true, 10: true}, due(t, tr, "16", t1))

	// The channel of 12 arrives; 2 is refreshed; 3 is deactivated.
	s.m.Root().MustExec(`INSERT INTO ` + s.wms + `.channels (connectionId, integrationType, status) VALUES (12, '16', '0')`)
	s.setExpiry(t, 2, now.Add(30*time.Minute))
	s.m.Root().MustExec(`UPDATE ` + s.ie + `.ie_appinstall_connection SET isActive = 'inactive' WHERE id = 3`)
	t2 := now.Add(6 * time.Second)
	require.NoError(t, tr.Sync(ctx, t2))
	assert.Equal(t, map[int64]bool{10: true, 12: true}, due(t, tr, "16", t2))
	assert.Equal(t, walk(t, s.store, "16", t2), due(t, tr, "16", t2))

	// Committed out of id order: 21 and its channel are in before the
	// channel of 20, whose connection row was read (with no channel) a
	// pass earlier. The next pass still finds it, and counts each once.
	s.insert(t, []row{{id: 20, active: true}})
	require.NoError(t, tr.Sync(ctx, now.Add(8*time.Second)))
	s.insert(t, []row{{id: 21, typ: "16", active: true}})
	require.NoError(t, tr.Sync(ctx, now.Add(10*time.Second)))
	s.m.Root().MustExec(`INSERT INTO ` + s.wms + `.channels (connectionId, integrationType, status) VALUES (20, '16', '0')`)
	t4 := now.Add(12 * time.Second)
	require.NoError(t, tr.Sync(ctx, t4))
	assert.Equal(t, walk(t, s.store, "16", t4), due(t, tr, "16", t4), "a connection committed behind a higher id")
	assert.True(t, due(t, tr, "16", t4)[20])
	walked, err := s.store.CountStates(ctx, "16", t4, token.DueBefore(t4, window), nil)
	require.NoError(t, err)
	counted, err := tr.CountStates(ctx, "16", t4, token.DueBefore(t4, window), nil)
	require.NoError(t, err)
	assert.Equal(t, walked, counted, "the census counts each new connection once")

	// 2's new token comes due 20 minutes later, and 1's too.
	t3 := now.Add(55 * time.Minute)
	require.NoError(t, tr.Sync(ctx, t3))
	assert.False(t, tr.Stats().Full)
	assert.Equal(t, walk(t, s.store, "16", t3), due(t, tr, "16", t3))
	assert.True(t, due(t, tr, "16", t3)[2], "the refreshed connection came back when its new token came due")
	assert.True(t, due(t, tr, "16", t3)[1])
}

// TestFullPassEveryInterval: the full pass comes back every FullInterval
// and finds what the passes between cannot see: a row another system
// moved behind the window's bound.
func TestFullPassEveryInterval(t *testing.T) {
	t.Parallel()
	s := startServer(t, true)
	now := time.Now().Truncate(time.Second)
	s.insert(t, []row{{id: 1, typ: "16", active: true, exp: at(now, time.Hour)}})
	tr := dueset.New(s.store, ajio, dueset.Options{FullInterval: time.Minute})
	ctx := context.Background()
	require.NoError(t, tr.Sync(ctx, now))
	// Written behind the bound (an operator's UPDATE, not a refresh).
	s.setExpiry(t, 1, now.Add(time.Minute))
	require.NoError(t, tr.Sync(ctx, now.Add(10*time.Second)))
	assert.False(t, tr.Stats().Full)
	assert.Empty(t, due(t, tr, "16", now.Add(10*time.Second)), "a pass between full ones sees only what enters the window")
	require.NoError(t, tr.Sync(ctx, now.Add(61*time.Second)))
	assert.True(t, tr.Stats().Full)
	assert.Equal(t, map[int64]bool{1: true}, due(t, tr, "16", now.Add(61*time.Second)))
}

// TestWithoutIndexesEveryPassWalks: without the optional indexes every pass
// is the walk, as before, with the same answers, and the tracker says once
// (not at every pass) that it walks the fleet.
func TestWithoutIndexesEveryPassWalks(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	store, err := mysql.Open(context.Background(), env.WMSDSN, env.IEDSN, mysql.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	now := time.Now().Truncate(time.Second)
	env.Insert(t,
		testenv.Row{ID: 1, ExpiresAt: at(now, time.Minute)},
		testenv.Row{ID: 2, ExpiresAt: at(now, time.Hour)},
		testenv.Row{ID: 3},
		testenv.Row{ID: 4, IntegrationType: "77"},
	)
	core, logs := observer.New(zap.InfoLevel)
	tr := dueset.New(store, ajio, dueset.Options{Log: zap.New(core)})
	ctx := context.Background()
	want := map[int64]bool{1: true, 3: true}
	for i := range 3 {
		ti := now.Add(time.Duration(i) * time.Second)
		require.NoError(t, tr.Sync(ctx, ti))
		assert.True(t, tr.Stats().Full)
		assert.False(t, tr.Stats().Indexed)
		assert.Equal(t, want, due(t, tr, "16", ti))
		c, err := tr.CountStates(ctx, "16", ti, token.DueBefore(ti, window), nil)
		require.NoError(t, err)
		assert.Equal(t, token.StateCounts{Fresh: 1, Due: 1, Expired: 1 + i}, c)
		want[int64(10+i)] = true
		// A connection added between passes is found by the next walk.
		env.Insert(t, testenv.Row{ID: int64(10 + i)})
	}
	said := logs.FilterMessageSnippet("walks the whole fleet").All()
	require.Len(t, said, 1, "said once")
	assert.Contains(t, fmt.Sprint(said[0].ContextMap()), "ie_appinstall_connection(accessTokenExpiryAt)")
}
