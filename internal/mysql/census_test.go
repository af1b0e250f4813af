package mysql_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

func TestCountStates(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	store := open(t, env, mysql.Options{ChunkSize: 3}) // a chunk of 3 makes the census page through channels
	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) *time.Time { return testenv.Time(now.Add(d)) }
	env.Insert(t,
		testenv.Row{ID: 1, ExpiresAt: at(time.Hour)},        // fresh
		testenv.Row{ID: 2, ExpiresAt: at(20 * time.Minute)}, // fresh
		testenv.Row{ID: 3, ExpiresAt: at(5 * time.Minute)},  // due
		testenv.Row{ID: 4, ExpiresAt: at(-time.Minute)},     // expired
		testenv.Row{ID: 5}, // never generated: expired
		testenv.Row{ID: 6, ExpiresAt: at(-48 * time.Hour)}, // expired, failing
		testenv.Row{ID: 7, ExpiresAt: at(time.Hour)},       // fresh, failing: not expired-failing
		testenv.Row{ID: 8, ExpiresAt: at(-time.Hour), IsActive: "inactive"},
		testenv.Row{ID: 9, ExpiresAt: at(-time.Hour), Status: "1"},
		testenv.Row{ID: 10, ExpiresAt: at(-time.Hour), IntegrationType: "42"},
		testenv.Row{ID: 11, ExpiresAt: at(-time.Hour), NoChannel: true},
	)
	// A zero DATETIME, as production rows may hold: expired (never generated).
	env.WMS.MustExec(`INSERT INTO channels (connectionId, integrationType, status) VALUES (12, '16', '0')`)
	conn, err := env.IE.Connx(context.Background())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(context.Background(), `SET SESSION sql_mode = ''`) // whatever the server's default
	require.NoError(t, err)
	_, err = conn.ExecContext(context.Background(), `INSERT INTO ie_appinstall_connection (id, accessTokenExpiryAt, isActive) VALUES (12, '0000-00-00 00:00:00', 'active')`)
	require.NoError(t, err)

	got, err := store.CountStates(context.Background(), "16", now, now.Add(10*time.Minute), map[int64]bool{6: true, 7: true, 99: true})
	require.NoError(t, err)
	assert.Equal(t, token.StateCounts{Fresh: 3, Due: 1, Expired: 4, ExpiredFailing: 1}, got)
	assert.Equal(t, 8, got.Active())

	got, err = store.CountStates(context.Background(), "42", now, now.Add(10*time.Minute), nil)
	require.NoError(t, err)
	assert.Equal(t, token.StateCounts{Expired: 1}, got)

	got, err = store.CountStates(context.Background(), "77", now, now.Add(10*time.Minute), nil)
	require.NoError(t, err)
	assert.Equal(t, token.StateCounts{}, got, "an integration type without connections counts nothing")
}

func TestFindActive(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	store := open(t, env, mysql.Options{ChunkSize: 3}) // a chunk of 3 makes the census page through channels
	exp := time.Now().UTC().Truncate(time.Second).Add(time.Hour)
	env.Insert(t,
		testenv.Row{ID: 1, ExpiresAt: &exp, InputFields: testenv.Str(`{"username":"u","password":"p"}`)},
		testenv.Row{ID: 2},
		testenv.Row{ID: 3, IsActive: "inactive"},
		testenv.Row{ID: 4, Status: "1"},
		testenv.Row{ID: 5, IntegrationType: "42"},
		testenv.Row{ID: 6, NoChannel: true},
	)
	types := []string{"16", "43"}

	c, err := store.FindActive(context.Background(), 1, types)
	require.NoError(t, err)
	assert.Equal(t, int64(1), c.ID)
	assert.Equal(t, "16", c.IntegrationType)
	require.NotNil(t, c.ExpiresAt)
	assert.True(t, exp.Equal(*c.ExpiresAt))

	c, err = store.FindActive(context.Background(), 2, types)
	require.NoError(t, err)
	assert.Nil(t, c.ExpiresAt, "no token yet")

	for name, id := range map[string]int64{
		"inactive connection":         3,
		"channel not active":          4,
		"integration type not served": 5,
		"no channel row":              6,
		"no row at all":               404,
	} {
		_, err := store.FindActive(context.Background(), id, types)
		assert.ErrorIs(t, err, token.ErrNotFound, name)
	}
	_, err = store.FindActive(context.Background(), 1, nil)
	assert.ErrorIs(t, err, token.ErrNotFound, "no configured type: nothing is known")
}
