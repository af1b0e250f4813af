package mysql_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

// These tests own whole MariaDB servers (testenv.StartMariaDB): a read-only
// window and a failover change a server's global settings, which the shared
// server's must never be. The store connects as a user without SUPER, so
// read_only applies to it as it does to an application in production.

func TestParseDSNFailoverSettings(t *testing.T) {
	t.Parallel()
	dsn, err := mysql.ParseDSN("app:p?ss/w@tcp(127.0.0.1:3306)/db", nil)
	require.NoError(t, err)
	assert.Contains(t, dsn, "rejectReadOnly=true", "a pooled connection to a demoted primary is dropped by default")
	assert.Contains(t, dsn, "clientFoundRows=true", "Claim counts matched rows")

	dsn, err = mysql.ParseDSN("app@tcp(127.0.0.1:3306)/db?rejectReadOnly=false&loc=UTC", nil)
	require.NoError(t, err)
	assert.NotContains(t, dsn, "rejectReadOnly=true", "an explicit rejectReadOnly=false is respected")
}

// seed creates one connection row on m and returns the store over it.
func privateStore(t *testing.T, wmsDSN, ieDSN string) *mysql.Store {
	t.Helper()
	s, err := mysql.Open(context.Background(), wmsDSN, ieDSN, mysql.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func seedRow(t *testing.T, m *testenv.MariaDB, ie string, id int64, refresh string, exp time.Time) {
	t.Helper()
	_, err := m.Root().Exec(fmt.Sprintf(`INSERT INTO %s.ie_appinstall_connection (id, inputFields, accessToken, refreshToken, accessTokenExpiryAt, isActive)
		VALUES (?, '{}', 'old-access', ?, ?, 'active')`, ie), id, refresh, exp)
	require.NoError(t, err)
}

func TestClaimAndProbeOnAReadOnlyServer(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	wms, ie := m.CreateSchema(t)
	exp := time.Now().UTC().Add(time.Minute).Truncate(time.Second)
	seedRow(t, m, ie, 1, "rt-old", exp)
	s := privateStore(t, m.AppDSN(wms), m.AppDSN(ie))
	ctx := context.Background()

	read, err := s.Load(ctx, 1)
	require.NoError(t, err)
	require.NoError(t, s.Claim(ctx, read), "the row holds what was read")
	require.NoError(t, s.ProbeWrite(ctx))

	m.SetReadOnly(t, true)
	err = s.Claim(ctx, read)
	require.ErrorIs(t, err, token.ErrUnwritable, "a read-only server refuses the claim: no call")
	assert.Contains(t, err.Error(), "read_only=ON", "the refused write says why, though rejectReadOnly dropped its connection")
	err = s.ProbeWrite(ctx)
	require.ErrorIs(t, err, token.ErrUnwritable)
	assert.Contains(t, err.Error(), "read_only=ON", "the probe says why")
	err = s.Save(ctx, read, token.Token{AccessToken: "new-access-secret", RefreshToken: "rt-new", ExpiresAt: exp.Add(time.Hour)})
	require.ErrorIs(t, err, token.ErrUnwritable)
	assert.NotContains(t, err.Error(), "new-access-secret")
	again, err := s.Load(ctx, 1)
	require.NoError(t, err, "reads still work")

	m.SetReadOnly(t, false)
	require.NoError(t, s.ProbeWrite(ctx), "writable again: no restart needed")
	require.NoError(t, s.Claim(ctx, again))

	// Another path stores a token: the claim of the old read is refused.
	require.NoError(t, s.Save(ctx, again, token.Token{AccessToken: "a2", RefreshToken: "rt-2", ExpiresAt: exp.Add(time.Hour)}))
	assert.ErrorIs(t, s.Claim(ctx, again), token.ErrStale, "a read the row contradicts never decides a call")
	now, err := s.Load(ctx, 1)
	require.NoError(t, err)
	require.NoError(t, s.Claim(ctx, now))

	// The same token stored twice is a success, not a conflict (matched
	// rows are counted).
	require.NoError(t, s.Save(ctx, again, token.Token{AccessToken: "a2", RefreshToken: "rt-2", ExpiresAt: exp.Add(time.Hour)}))
}

// TestFailoverDropsPooledConnectionsToTheOldPrimary: after a failover the
// pool still holds connections to the demoted primary, now read-only. With
// rejectReadOnly (the default) the first write drops them and lands on the
// new primary; with rejectReadOnly=false (respected) it fails with 1290 as
// long as the stale connection lives.
func TestFailoverDropsPooledConnectionsToTheOldPrimary(t *testing.T) {
	t.Parallel()
	a := testenv.StartMariaDB(t, testenv.MariaDBOptions{ServerID: 1, Binlog: true})
	b := testenv.StartMariaDB(t, testenv.MariaDBOptions{ServerID: 2, Binlog: true})
	b.ReplicateFrom(t, a)
	wms, ie := a.CreateSchema(t)
	exp := time.Now().UTC().Add(time.Minute).Truncate(time.Second)
	for id := int64(1); id <= 8; id++ {
		seedRow(t, a, ie, id, fmt.Sprintf("rt-%d", id), exp)
	}
	b.WaitCaughtUp(t, a, 10*time.Second)
	proxy := testenv.NewProxy(t, a.Addr())
	ctx := context.Background()

	rejecting := privateStore(t, proxy.DSN(t, a.AppDSN(wms)), proxy.DSN(t, a.AppDSN(ie)))
	keeping := privateStore(t, proxy.DSN(t, a.AppDSN(wms)), proxy.DSN(t, a.AppDSN(ie))+"&rejectReadOnly=false")
	// Fill both pools with connections to A: loads in parallel.
	reads := map[*mysql.Store][]token.Connection{}
	for _, s := range []*mysql.Store{rejecting, keeping} {
		done := make(chan token.Connection, 8)
		for id := int64(1); id <= 8; id++ {
			go func() {
				c, err := s.Load(ctx, id)
				assert.NoError(t, err)
				done <- c
			}()
		}
		for range 8 {
			reads[s] = append(reads[s], <-done)
		}
	}
	require.NoError(t, rejecting.ProbeWrite(ctx))

	testenv.Failover(t, a, b)
	proxy.Switch(b.Addr())
	switched := time.Now()

	tok := token.Token{AccessToken: "after-failover", RefreshToken: "rt-new", ExpiresAt: exp.Add(time.Hour)}
	read := reads[rejecting][0]
	require.NoError(t, rejecting.Save(ctx, read, tok), "the write reaches the new primary, past the pooled connections to the old one")
	took := time.Since(switched)
	var onB string
	require.NoError(t, b.Root().Get(&onB, fmt.Sprintf("SELECT accessToken FROM %s.ie_appinstall_connection WHERE id = ?", ie), read.ID))
	assert.Equal(t, "after-failover", onB, "stored on the new primary")
	t.Logf("FIGURE failover_to_first_write=%s", took.Round(time.Millisecond))

	// rejectReadOnly=false: the operator chose to keep such connections.
	var refused int
	for _, c := range reads[keeping] {
		if c.ID == read.ID {
			continue // its row changed on B above
		}
		if err := keeping.Claim(ctx, c); err != nil {
			assert.ErrorIs(t, err, token.ErrUnwritable)
			refused++
		}
	}
	assert.Positive(t, refused, "with rejectReadOnly=false a stale pooled connection answers 1290")
}
