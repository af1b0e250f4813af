package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestStoreOnEmbeddedMySQL runs every query of the production store
// (internal/mysql) against go-mysql-server through go-sql-driver: the keyset
// page over channels (DISTINCT, ORDER BY, LIMIT, across several pages), the
// IN-list due query with IS NULL OR <, the single-row load with DATETIME
// parsed into time.Time, the guarded UPDATE with <=> and COALESCE(NULLIF())
// and its RowsAffected, and the fingerprint IN list.
func TestStoreOnEmbeddedMySQL(t *testing.T) {
	t.Parallel()
	m, err := StartMySQL(io.Discard)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })

	root := sqlx.MustOpen("mysql", m.DSN(""))
	t.Cleanup(func() { root.Close() })
	for _, st := range append(deploy.Schema(deploy.WMSDatabase, deploy.IEDatabase), deploy.Seed(deploy.WMSDatabase, deploy.IEDatabase)...) {
		_, err := root.Exec(st)
		require.NoError(t, err, "deploy statement:\n%s", st)
	}
	now := time.Now().UTC().Truncate(time.Second)
	later := now.Add(time.Hour)
	soon := now.Add(5 * time.Minute)
	// 11 and 99 come from the seed (expired in 2022).
	for _, c := range []struct {
		id      int64
		typ     string
		status  string
		active  string
		expiry  *time.Time
		refresh *string
		dupe    bool
	}{
		{id: 12, typ: "16", status: "0", active: "active"},                                                           // NULL expiry: due
		{id: 13, typ: "16", status: "0", active: "active", expiry: &soon, refresh: testenv.Str("rt-13"), dupe: true}, // due, two channel rows
		{id: 14, typ: "16", status: "0", active: "active", expiry: &later},                                           // not due
		{id: 15, typ: "16", status: "0", active: "inactive"},                                                         // inactive connection
		{id: 16, typ: "16", status: "1", active: "active"},                                                           // inactive channel
		{id: 17, typ: "42", status: "0", active: "active"},                                                           // another type
		{id: 18, typ: "16", status: "0", active: "active"},                                                           // due
	} {
		root.MustExec(`INSERT INTO `+deploy.WMSDatabase+`.channels (connectionId, integrationType, status) VALUES (?, ?, ?)`, c.id, c.typ, c.status)
		if c.dupe {
			root.MustExec(`INSERT INTO `+deploy.WMSDatabase+`.channels (connectionId, integrationType, status) VALUES (?, ?, ?)`, c.id, c.typ, c.status)
		}
		var exp any
		if c.expiry != nil {
			exp = *c.expiry
		}
		root.MustExec(`INSERT INTO `+deploy.IEDatabase+`.ie_appinstall_connection
			(id, inputFields, accessToken, refreshToken, accessTokenExpiryAt, isActive) VALUES (?, ?, NULL, ?, ?, ?)`,
			c.id, fmt.Sprintf(`{"username":"u%d","password":"p%d"}`, c.id, c.id), c.refresh, exp, c.active)
	}

	ctx := context.Background()
	// A page of two ids makes the keyset walk take several pages, one of
	// them ending on the duplicated id.
	store, err := mysql.Open(ctx, m.DSN(deploy.WMSDatabase), m.DSN(deploy.IEDatabase), mysql.Options{ChunkSize: 2})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })

	var due []int64
	st, err := store.ScanDue(ctx, "16", now.Add(10*time.Minute), func(d []token.DueConnection) error {
		for _, c := range d {
			due = append(due, c.ID)
			if c.ID == 13 {
				require.NotNil(t, c.ExpiresAt)
				assert.True(t, c.ExpiresAt.Equal(soon), "expiry read back as %v", c.ExpiresAt)
			}
		}
		return nil
	})
	require.NoError(t, err)
	slices.Sort(due)
	assert.Equal(t, []int64{11, 12, 13, 18, 99}, due)
	assert.Equal(t, token.ScanStats{Active: 7, Due: 5, LastID: 99}, st, "active: 11 12 13 14 15 18 99 (15 is filtered by isActive in the due query)")

	c11, err := store.Load(ctx, 11)
	require.NoError(t, err)
	require.NotNil(t, c11.ExpiresAt)
	assert.Equal(t, time.Date(2022, 8, 17, 16, 25, 8, 0, time.UTC), c11.ExpiresAt.UTC(), "DATETIME parsed with parseTime")
	assert.JSONEq(t, `{"username":"abc@itc.com","password":"abc123"}`, string(c11.InputFields))
	_, err = store.Load(ctx, 15)
	assert.ErrorIs(t, err, token.ErrNotFound, "inactive connection")
	_, err = store.Load(ctx, 404)
	assert.ErrorIs(t, err, token.ErrNotFound, "missing connection")

	// Guarded save of a row with an expiry: exactly one row changes; the
	// same stale read with an older token then changes nothing
	// (RowsAffected 0 → ErrStale), and with a newer one it wins.
	exp := now.Add(30 * time.Minute)
	require.NoError(t, store.Save(ctx, c11, token.Token{AccessToken: "at-11-first", RefreshToken: "rt-11-first", ExpiresAt: exp}))
	assert.ErrorIs(t, store.Save(ctx, c11, token.Token{AccessToken: "at-11-late", ExpiresAt: exp.Add(-time.Minute)}), token.ErrStale)
	exp = exp.Add(time.Minute)
	require.NoError(t, store.Save(ctx, c11, token.Token{AccessToken: "at-11", RefreshToken: "rt-11", ExpiresAt: exp}), "newest issued wins")

	// A row with a NULL expiry matches through <=> NULL; an empty refresh
	// token leaves the stored NULL alone (COALESCE(NULLIF('', ''), NULL)).
	c12, err := store.Load(ctx, 12)
	require.NoError(t, err)
	assert.Nil(t, c12.ExpiresAt)
	require.NoError(t, store.Save(ctx, c12, token.Token{AccessToken: "at-12", ExpiresAt: exp}))

	// Rotation: a new refresh token replaces the old; a missing one keeps it.
	c13, err := store.Load(ctx, 13)
	require.NoError(t, err)
	assert.Equal(t, "rt-13", c13.RefreshToken)
	require.NoError(t, store.Save(ctx, c13, token.Token{AccessToken: "at-13", ExpiresAt: exp}))
	c13b, err := store.Load(ctx, 13)
	require.NoError(t, err)
	assert.Equal(t, "rt-13", c13b.RefreshToken, "an empty refresh token keeps the stored one")
	require.NoError(t, store.Save(ctx, c13b, token.Token{AccessToken: "at-13b", RefreshToken: "rt-13b", ExpiresAt: exp.Add(time.Second)}))
	// A read whose refresh token is not the stored one is stale.
	assert.ErrorIs(t, store.Save(ctx, c13b, token.Token{AccessToken: "x", ExpiresAt: exp}), token.ErrStale)

	type row struct {
		ID      int64      `db:"id"`
		Access  *string    `db:"accessToken"`
		Refresh *string    `db:"refreshToken"`
		Expiry  *time.Time `db:"accessTokenExpiryAt"`
	}
	ie := sqlx.MustOpen("mysql", m.DSN(deploy.IEDatabase))
	t.Cleanup(func() { ie.Close() })
	var rows []row
	require.NoError(t, ie.Select(&rows, `SELECT id, accessToken, refreshToken, accessTokenExpiryAt FROM ie_appinstall_connection WHERE id IN (11, 12, 13, 14, 99) ORDER BY id`))
	require.Len(t, rows, 5)
	want := map[int64][2]string{11: {"at-11", "rt-11"}, 12: {"at-12", ""}, 13: {"at-13b", "rt-13b"}}
	for _, r := range rows {
		w, changed := want[r.ID]
		if !changed {
			assert.Nil(t, r.Access, "connection %d untouched", r.ID)
			continue
		}
		require.NotNil(t, r.Access, "connection %d", r.ID)
		assert.Equal(t, w[0], *r.Access, "connection %d", r.ID)
		if w[1] == "" {
			assert.Nil(t, r.Refresh, "connection %d", r.ID)
		} else {
			require.NotNil(t, r.Refresh)
			assert.Equal(t, w[1], *r.Refresh, "connection %d", r.ID)
		}
		require.NotNil(t, r.Expiry)
		assert.False(t, r.Expiry.Before(exp), "connection %d expiry %v", r.ID, r.Expiry)
	}

	changed, err := store.CredentialsChanged(ctx, map[int64]string{
		11:  token.Fingerprint([]byte(`{"username":"abc@itc.com","password":"abc123"}`), "rt-11"),
		12:  token.Fingerprint([]byte(`{"username":"u12","password":"p12"}`), "rt-old"),
		404: "gone",
	})
	require.NoError(t, err)
	assert.Equal(t, map[int64]bool{11: false, 12: true}, changed)

	// After the saves, the due scan no longer finds 11, 12 and 13.
	due = nil
	_, err = store.ScanDue(ctx, "16", now.Add(10*time.Minute), func(d []token.DueConnection) error {
		for _, c := range d {
			due = append(due, c.ID)
		}
		return nil
	})
	require.NoError(t, err)
	slices.Sort(due)
	assert.Equal(t, []int64{18, 99}, due, "11, 12 and 13 were saved")
	require.NoError(t, store.Ping(ctx))
}

// TestEmbeddedMySQLZeroDatetime: a zero DATETIME ('0000-00-00 00:00:00',
// which the store counts as never generated) is due, loads as the zero time
// and takes the guarded write, as on MariaDB. (In the binary protocol of
// server-side prepared statements go-mysql-server sent it as year 0, month 0,
// day 0, which go-sql-driver read as -0001-11-30 and could not send back;
// the store now interpolates arguments and reads text rows, where the engine
// agrees with MariaDB.)
func TestEmbeddedMySQLZeroDatetime(t *testing.T) {
	t.Parallel()
	m, err := StartMySQL(io.Discard)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	root := sqlx.MustOpen("mysql", m.DSN(""))
	t.Cleanup(func() { root.Close() })
	for _, st := range deploy.Schema(deploy.WMSDatabase, deploy.IEDatabase) {
		root.MustExec(st)
	}
	root.MustExec(`INSERT INTO ` + deploy.WMSDatabase + `.channels (connectionId, integrationType, status) VALUES (19, '16', '0')`)
	root.MustExec(`INSERT INTO ` + deploy.IEDatabase + `.ie_appinstall_connection
		(id, inputFields, accessToken, refreshToken, accessTokenExpiryAt, isActive) VALUES (19, '{}', NULL, NULL, '0000-00-00 00:00:00', 'active')`)
	ctx := context.Background()
	store, err := mysql.Open(ctx, m.DSN(deploy.WMSDatabase), m.DSN(deploy.IEDatabase), mysql.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })

	st, err := store.ScanDue(ctx, "16", time.Now(), func([]token.DueConnection) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, 1, st.Due, "the zero DATETIME is due")

	c, err := store.Load(ctx, 19)
	require.NoError(t, err)
	require.NotNil(t, c.ExpiresAt)
	assert.True(t, c.ExpiresAt.IsZero(), "read back as the zero time, as on MariaDB: %v", c.ExpiresAt)
	require.NoError(t, store.Save(ctx, c, token.Token{AccessToken: "at-19", ExpiresAt: time.Now().Add(time.Hour)}),
		"the guarded write matches the zero DATETIME it read")
	st, err = store.ScanDue(ctx, "16", time.Now(), func([]token.DueConnection) error { return nil })
	require.NoError(t, err)
	assert.Zero(t, st.Due, "saved: no longer due")
}

// TestAsynqOnMiniredis runs what the demo needs of asynq on miniredis: its
// Lua scripts for enqueue with a task id (conflict on a second enqueue),
// dequeue, retry with backoff, archive with a result written by the handler,
// the inspector's listings and queue info (MEMORY USAGE), and delete.
func TestAsynqOnMiniredis(t *testing.T) {
	t.Parallel()
	r, err := StartRedis()
	require.NoError(t, err)
	t.Cleanup(r.Close)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	const qname = "token_refresh"
	q := task.NewQueue(rdb, qname, 10*time.Second)
	ctx := context.Background()

	for id := int64(1); id <= 3; id++ {
		ok, err := q.Enqueue(ctx, task.Payload{ConnectionID: id, IntegrationType: "16"})
		require.NoError(t, err)
		assert.True(t, ok, "connection %d enqueued", id)
	}
	ok, err := q.Enqueue(ctx, task.Payload{ConnectionID: 1, IntegrationType: "16"})
	require.NoError(t, err)
	assert.False(t, ok, "a second task for the same connection is refused by its id")

	var calls [4]atomic.Int32
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              2,
		Queues:                   map[string]int{qname: 1},
		RetryDelayFunc:           refresh.RetryDelay(10*time.Millisecond, 50*time.Millisecond),
		TaskCheckInterval:        20 * time.Millisecond,
		DelayedTaskCheckInterval: 50 * time.Millisecond,
		ShutdownTimeout:          2 * time.Second,
		LogLevel:                 asynq.ErrorLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(task.TypeRefresh, func(ctx context.Context, tk *asynq.Task) error {
		p, err := task.Parse(tk)
		if err != nil {
			return err
		}
		n := calls[p.ConnectionID].Add(1)
		switch p.ConnectionID {
		case 2: // permanent: archived with a failure record
			_, err := tk.ResultWriter().Write(task.Failure{Reason: "rejected", At: time.Now()}.Marshal())
			require.NoError(t, err)
			return fmt.Errorf("rejected: %w", asynq.SkipRetry)
		case 3: // transient once, then fine
			if n == 1 {
				return errors.New("try again")
			}
		}
		return nil
	})
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)

	insp := asynq.NewInspectorFromRedisClient(rdb)
	testenv.Eventually(t, 10*time.Second, "the queue to settle", func() bool {
		info, err := insp.GetQueueInfo(qname)
		return err == nil && info.Pending == 0 && info.Active == 0 && info.Retry == 0 && info.Archived == 1
	})
	assert.EqualValues(t, 1, calls[1].Load())
	assert.EqualValues(t, 1, calls[2].Load(), "a SkipRetry failure is not retried")
	assert.EqualValues(t, 2, calls[3].Load(), "a transient failure is retried")

	archived, err := q.ListArchived()
	require.NoError(t, err)
	require.Contains(t, archived, int64(2))
	require.NotNil(t, archived[2].Failure, "the handler's result is kept on the archived task")
	assert.Equal(t, "rejected", archived[2].Failure.Reason)
	assert.NotContains(t, archived, int64(1), "a finished task is not archived")

	// The finished tasks freed their ids; the archived one still holds its
	// id until Retry replaces it.
	ok, err = q.Enqueue(ctx, task.Payload{ConnectionID: 2, IntegrationType: "16"})
	require.NoError(t, err)
	assert.False(t, ok, "an archived task keeps its id")
	ok, err = q.Retry(ctx, task.Payload{ConnectionID: 2, IntegrationType: "16"})
	require.NoError(t, err)
	assert.True(t, ok, "retry replaces the archived task")
	testenv.Eventually(t, 10*time.Second, "the retried task to run", func() bool { return calls[2].Load() == 2 })

	info, err := insp.GetQueueInfo(qname)
	require.NoError(t, err)
	assert.Positive(t, info.Processed)
}

// TestEmbeddedMySQLConcurrentWrites is the refresher's write pattern: many
// connections updating different rows of one table at once. go-mysql-server's
// in-memory tables lose some of these updates (while reporting one row
// affected) unless the server runs one statement at a time; StartMySQL makes
// it do so. A write must also be visible at once to other connections.
func TestEmbeddedMySQLConcurrentWrites(t *testing.T) {
	t.Parallel()
	m, err := StartMySQL(io.Discard)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	root := sqlx.MustOpen("mysql", m.DSN(""))
	t.Cleanup(func() { root.Close() })
	root.MustExec("CREATE DATABASE d")
	root.MustExec("CREATE TABLE d.t (id BIGINT PRIMARY KEY, v INT NOT NULL)")
	const rows, writes = 40, 20
	for i := range rows {
		root.MustExec("INSERT INTO d.t VALUES (?, 0)", i)
	}

	db := sqlx.MustOpen("mysql", m.DSN("d"))
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(8)
	var wg sync.WaitGroup
	for i := range rows {
		wg.Go(func() {
			for range writes {
				res, err := db.Exec("UPDATE t SET v = v + 1 WHERE id = ?", i)
				if !assert.NoError(t, err) {
					return
				}
				n, err := res.RowsAffected()
				assert.NoError(t, err)
				assert.EqualValues(t, 1, n)
			}
		})
	}
	wg.Wait()
	var vs []int
	require.NoError(t, root.Select(&vs, "SELECT v FROM d.t ORDER BY id"))
	require.Len(t, vs, rows)
	for i, v := range vs {
		assert.Equal(t, writes, v, "row %d: every update kept", i)
	}
}
