package mysql_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	driver "github.com/go-sql-driver/mysql"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

func open(t *testing.T, env *testenv.Env, opts mysql.Options) *mysql.Store {
	t.Helper()
	s, err := mysql.Open(context.Background(), env.WMSDSN, env.IEDSN, opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func collect(t *testing.T, s *mysql.Store, typ string, before time.Time) ([]token.DueConnection, token.ScanStats, int) {
	t.Helper()
	var due []token.DueConnection
	chunks := 0
	st, err := s.ScanDue(context.Background(), typ, before, func(c []token.DueConnection) error {
		chunks++
		due = append(due, c...)
		return nil
	})
	require.NoError(t, err)
	return due, st, chunks
}

func ids(due []token.DueConnection) []int64 {
	var out []int64
	for _, d := range due {
		out = append(out, d.ID)
	}
	return out
}

func TestScanDueChunksAndFilters(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	now := time.Now().UTC().Truncate(time.Second)
	var rows []testenv.Row
	var want []int64
	for i := int64(1); i <= 23; i++ {
		r := testenv.Row{ID: i, InputFields: testenv.Str(`{}`)}
		switch i % 4 {
		case 0:
			r.ExpiresAt = testenv.Time(now.Add(time.Hour)) // not due
		case 1:
			r.ExpiresAt = testenv.Time(now.Add(-time.Minute)) // expired
			want = append(want, i)
		case 2: // NULL: never generated
			want = append(want, i)
		case 3:
			r.ExpiresAt = testenv.Time(now.Add(5 * time.Minute)) // within the window
			want = append(want, i)
		}
		rows = append(rows, r)
	}
	rows = append(rows,
		testenv.Row{ID: 100, IsActive: "inactive"},
		testenv.Row{ID: 101, Status: "1"},
		testenv.Row{ID: 102, IntegrationType: "42"},
		testenv.Row{ID: 103, NoChannel: true},
	)
	env.Insert(t, rows...)
	// A connection listed twice in channels is scanned once.
	env.WMS.MustExec(`INSERT INTO channels (connectionId, integrationType, status) VALUES (2, '16', '0')`)

	s := open(t, env, mysql.Options{ChunkSize: 5})
	due, st, chunks := collect(t, s, "16", now.Add(10*time.Minute))
	assert.ElementsMatch(t, want, ids(due))
	assert.Equal(t, 24, st.Active, "23 + the inactive 100 have an active channel")
	assert.Equal(t, len(want), st.Due)
	assert.GreaterOrEqual(t, chunks, 4, "ids are read in chunks of 5")
	for _, d := range due {
		assert.Equal(t, "16", d.IntegrationType)
		if d.ID%4 == 2 {
			assert.Nil(t, d.ExpiresAt)
		} else {
			require.NotNil(t, d.ExpiresAt)
		}
	}
}

// TestScanDueExactPageBoundary: a last page exactly ChunkSize long must not
// lose or repeat ids.
func TestScanDueExactPageBoundary(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	var rows []testenv.Row
	for i := int64(1); i <= 10; i++ {
		rows = append(rows, testenv.Row{ID: i})
	}
	env.Insert(t, rows...)
	s := open(t, env, mysql.Options{ChunkSize: 5})
	due, st, _ := collect(t, s, "16", time.Now())
	assert.Len(t, due, 10)
	assert.Equal(t, 10, st.Active)
}

// TestScanDueSkipsJunkIDs: production's connectionId may be text; a junk
// value costs that row only.
func TestScanDueSkipsJunkIDs(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.WMS.MustExec(`ALTER TABLE channels MODIFY connectionId VARCHAR(64) NOT NULL`)
	env.Insert(t, testenv.Row{ID: 1}, testenv.Row{ID: 2})
	env.WMS.MustExec(`INSERT INTO channels (connectionId, integrationType, status) VALUES ('abc', '16', '0')`)
	s := open(t, env, mysql.Options{})
	due, st, _ := collect(t, s, "16", time.Now())
	assert.ElementsMatch(t, []int64{1, 2}, ids(due))
	assert.Equal(t, 1, st.BadIDs)
}

func TestZeroDateIsDueAndSavable(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.Insert(t, testenv.Row{ID: 1, InputFields: testenv.Str(`{}`)})
	env.IE.MustExec(`UPDATE ie_appinstall_connection SET accessTokenExpiryAt = '0000-00-00 00:00:00' WHERE id = 1`)
	s := open(t, env, mysql.Options{})
	due, _, _ := collect(t, s, "16", time.Now())
	require.Equal(t, []int64{1}, ids(due))

	c, err := s.Load(context.Background(), 1)
	require.NoError(t, err)
	assert.True(t, c.DueAt(time.Now(), time.Minute), "a zero date counts as never generated")
	exp := time.Now().Add(30 * time.Minute).UTC().Truncate(time.Second)
	require.NoError(t, s.Save(context.Background(), c, token.Token{AccessToken: "AT", ExpiresAt: exp}))
	row := env.Get(t, 1)
	assert.Equal(t, "AT", *row.AccessToken)
	assert.True(t, exp.Equal(*row.ExpiresAt))
}

// TestSaveIsGuarded: two workers that read the same row and both obtained a
// token: the newest-issued token wins whichever write lands last. An older
// token written after a newer one is stale and changes nothing; a newer one
// replaces an older one stored meanwhile; a tie keeps the row.
func TestSaveIsGuarded(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	old := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	env.Insert(t,
		testenv.Row{ID: 1, InputFields: testenv.Str(`{}`), ExpiresAt: &old, AccessToken: testenv.Str("AT0"), RefreshToken: testenv.Str("RT0")},
		testenv.Row{ID: 2, InputFields: testenv.Str(`{}`), ExpiresAt: &old, AccessToken: testenv.Str("other")},
	)
	s := open(t, env, mysql.Options{})
	ctx := context.Background()
	a, err := s.Load(ctx, 1)
	require.NoError(t, err)
	b, err := s.Load(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, "RT0", a.RefreshToken)

	exp1 := time.Now().UTC().Add(30 * time.Minute).Truncate(time.Second)
	require.NoError(t, s.Save(ctx, a, token.Token{AccessToken: "AT1", RefreshToken: "RT1", ExpiresAt: exp1}))
	// b's token was issued a second before a's: it lands late and is stale.
	err = s.Save(ctx, b, token.Token{AccessToken: "AT-older", RefreshToken: "RT-older", ExpiresAt: exp1.Add(-time.Second)})
	assert.ErrorIs(t, err, token.ErrStale)
	// The same second is a tie: the row keeps what it holds.
	err = s.Save(ctx, b, token.Token{AccessToken: "AT-tie", RefreshToken: "RT-tie", ExpiresAt: exp1})
	assert.ErrorIs(t, err, token.ErrStale)

	row := env.Get(t, 1)
	assert.Equal(t, "AT1", *row.AccessToken)
	assert.Equal(t, "RT1", *row.RefreshToken)
	assert.True(t, exp1.Equal(*row.ExpiresAt))
	assert.Equal(t, "other", *env.Get(t, 2).AccessToken, "exactly one row is written")

	// b's token issued after a's replaces it although b read the row before
	// a stored: newest issued wins.
	require.NoError(t, s.Save(ctx, b, token.Token{AccessToken: "AT2", RefreshToken: "RT2", ExpiresAt: exp1.Add(time.Second)}))
	row = env.Get(t, 1)
	assert.Equal(t, "AT2", *row.AccessToken)
	assert.Equal(t, "RT2", *row.RefreshToken)
	exp1 = exp1.Add(time.Second)

	// No refresh token in the answer keeps the stored one.
	c, err := s.Load(ctx, 1)
	require.NoError(t, err)
	require.NoError(t, s.Save(ctx, c, token.Token{AccessToken: "AT3", ExpiresAt: exp1.Add(time.Minute)}))
	row = env.Get(t, 1)
	assert.Equal(t, "AT3", *row.AccessToken)
	assert.Equal(t, "RT2", *row.RefreshToken)

	// A token without an access token is never written.
	c, err = s.Load(ctx, 1)
	require.NoError(t, err)
	assert.Error(t, s.Save(ctx, c, token.Token{ExpiresAt: exp1.Add(2 * time.Minute)}))
	assert.Equal(t, "AT3", *env.Get(t, 1).AccessToken)
}

// TestSaveOddCharacters: with arguments interpolated by the driver
// (ParseDSN), tokens holding quotes, backslashes, SQL and non-ASCII text are
// stored as they are, and the guard still matches a refresh token read back
// with them.
func TestSaveOddCharacters(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	old := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	odd := `it's a \'token\' "quoted"; DROP TABLE x; -- é ☃ \x00`
	env.Insert(t,
		testenv.Row{ID: 1, InputFields: testenv.Str(`{}`), ExpiresAt: &old, RefreshToken: testenv.Str(odd)},
		testenv.Row{ID: 2, InputFields: testenv.Str(`{}`), ExpiresAt: &old, AccessToken: testenv.Str("other")},
	)
	s := open(t, env, mysql.Options{})
	ctx := context.Background()
	c, err := s.Load(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, odd, c.RefreshToken)

	exp := time.Now().UTC().Add(30 * time.Minute).Truncate(time.Second)
	require.NoError(t, s.Save(ctx, c, token.Token{AccessToken: odd + "A", RefreshToken: odd + "R", ExpiresAt: exp}))
	row := env.Get(t, 1)
	assert.Equal(t, odd+"A", *row.AccessToken)
	assert.Equal(t, odd+"R", *row.RefreshToken)
	assert.Equal(t, "other", *env.Get(t, 2).AccessToken, "exactly one row is written")

	// The guard compares the odd refresh token too: a stale read of an
	// older token fails.
	assert.ErrorIs(t, s.Save(ctx, c, token.Token{AccessToken: "late", ExpiresAt: exp.Add(-time.Second)}), token.ErrStale)
}

func TestLoadInactiveIsNotFound(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.Insert(t, testenv.Row{ID: 1, IsActive: "inactive"})
	s := open(t, env, mysql.Options{})
	_, err := s.Load(context.Background(), 1)
	assert.ErrorIs(t, err, token.ErrNotFound)
	_, err = s.Load(context.Background(), 404)
	assert.ErrorIs(t, err, token.ErrNotFound)
}

// TestTimeZone: DATETIMEs stored in another zone compare on the same clock.
func TestTimeZone(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	newYork, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	now := time.Now().Truncate(time.Second)
	// Stored as New York wall-clock text: 20 minutes from now (not due with a 10m window).
	env.Insert(t, testenv.Row{ID: 1, InputFields: testenv.Str(`{}`)})
	env.IE.MustExec(`UPDATE ie_appinstall_connection SET accessTokenExpiryAt = ? WHERE id = 1`,
		now.Add(20*time.Minute).In(newYork).Format("2006-01-02 15:04:05"))

	utc := open(t, env, mysql.Options{})
	due, _, _ := collect(t, utc, "16", now.Add(10*time.Minute))
	assert.Len(t, due, 1, "read as UTC the New York time is hours in the past")

	ny := open(t, env, mysql.Options{Location: newYork})
	due, _, _ = collect(t, ny, "16", now.Add(10*time.Minute))
	assert.Empty(t, due, "read in its own zone it is 20 minutes away")
	c, err := ny.Load(context.Background(), 1)
	require.NoError(t, err)
	assert.WithinDuration(t, now.Add(20*time.Minute), *c.ExpiresAt, time.Second)
}

func TestParseDSN(t *testing.T) {
	t.Parallel()
	_, err := mysql.ParseDSN("root:hunter2@tcp(127.0.0.1:3306)", nil)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
	_, err = mysql.ParseDSN("root:hunter2@tcp(127.0.0.1:3306)/", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "names no database")
	dsn, err := mysql.ParseDSN("root@tcp(127.0.0.1:3306)/db", nil)
	require.NoError(t, err)
	assert.True(t, strings.Contains(dsn, "parseTime=true"))
	assert.True(t, strings.Contains(dsn, "interpolateParams=true"), "one round trip per query, not prepare+execute+close")

	// An explicit choice is kept, and an unsafe collation turns it off.
	dsn, err = mysql.ParseDSN("root@tcp(127.0.0.1:3306)/db?interpolateParams=false", nil)
	require.NoError(t, err)
	assert.NotContains(t, dsn, "interpolateParams=true")
	dsn, err = mysql.ParseDSN("root@tcp(127.0.0.1:3306)/db?collation=gbk_chinese_ci", nil)
	require.NoError(t, err)
	assert.NotContains(t, dsn, "interpolateParams=true")
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	_, err := mysql.Open(context.Background(), "root:hunter2@tcp(127.0.0.1:1)/a", "root@tcp(127.0.0.1:1)/b",
		mysql.Options{QueryTimeout: 2 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the WMS database: cannot reach the database")
	assert.NotContains(t, err.Error(), "hunter2")
}

// TestOpenRefused: a server that answers but refuses (unknown database,
// wrong password) is not reported as unreachable, and the error names the
// database, never the password.
func TestOpenRefused(t *testing.T) {
	t.Parallel()
	unknown, err := testenv.DatabaseDSN(testenv.MySQLDSN(), "no_such_db_"+testenv.RandomID())
	require.NoError(t, err)
	_, err = mysql.Open(context.Background(), unknown, unknown, mysql.Options{QueryTimeout: 5 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the WMS database: the database server refused the connection")
	assert.Contains(t, err.Error(), "Unknown database")

	cfg, err := driver.ParseDSN(testenv.MySQLDSN())
	require.NoError(t, err)
	cfg.User, cfg.Passwd, cfg.DBName = "token_refresher_nobody", "hunter2", "mysql"
	_, err = mysql.Open(context.Background(), cfg.FormatDSN(), cfg.FormatDSN(), mysql.Options{QueryTimeout: 5 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the WMS database: the database server refused the connection")
	assert.Contains(t, err.Error(), "Access denied")
	assert.NotContains(t, err.Error(), "hunter2")
}

// TestSaveErrorQuotesNoToken: a server error about the stored value (here a
// 4-byte character in a 3-byte column) must not carry the token into logs
// and the dashboard.
func TestSaveErrorQuotesNoToken(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.IE.MustExec(`ALTER TABLE ie_appinstall_connection MODIFY accessToken TEXT CHARACTER SET utf8mb3 NULL`)
	env.Insert(t, testenv.Row{ID: 1, InputFields: testenv.Str(`{}`)})
	s := open(t, env, mysql.Options{})
	c, err := s.Load(context.Background(), 1)
	require.NoError(t, err)
	err = s.Save(context.Background(), c, token.Token{AccessToken: "\U0001F600-secret-token-value", ExpiresAt: time.Now().Add(time.Hour)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "MySQL error 1366")
	assert.NotContains(t, err.Error(), "secret-token-value")
	assert.NotContains(t, err.Error(), `\xF0`)
}

// TestCredentialsChangedKeyed: a store with FINGERPRINT_KEY compares the
// keyed fingerprints it records and the legacy ones recorded before the
// key alike; a store without the key cannot tell a keyed one and says
// nothing of it.
func TestCredentialsChangedKeyed(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	fields := `{"username":"u","password":"p1"}`
	env.Insert(t, testenv.Row{ID: 1, InputFields: testenv.Str(fields), RefreshToken: testenv.Str("rt-1")},
		testenv.Row{ID: 2, InputFields: testenv.Str(`{"username":"u","password":"p2"}`)})
	key := []byte("fingerprint-key-0123456789abcdef")
	keyed := token.NewFingerprinter(key).Of([]byte(fields), "rt-1")
	legacy := token.Fingerprint([]byte(fields), "rt-1")

	s := open(t, env, mysql.Options{FingerprintKey: key})
	changed, err := s.CredentialsChanged(context.Background(), map[int64]string{1: keyed, 2: keyed, 404: keyed})
	require.NoError(t, err)
	assert.Equal(t, map[int64]bool{1: false, 2: true}, changed)
	changed, err = s.CredentialsChanged(context.Background(), map[int64]string{1: legacy, 2: legacy})
	require.NoError(t, err)
	assert.Equal(t, map[int64]bool{1: false, 2: true}, changed, "legacy fingerprints still compare")

	plain := open(t, env, mysql.Options{})
	changed, err = plain.CredentialsChanged(context.Background(), map[int64]string{1: keyed, 2: legacy})
	require.NoError(t, err)
	assert.Equal(t, map[int64]bool{2: true}, changed, "a keyed fingerprint without the key: cannot tell")
}

// TestHoldsToken: the comparison by SHA-256 runs in MySQL and agrees with
// Go's digest of the token, odd characters included.
func TestHoldsToken(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	exp := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	odd := `at-it's "quoted" é ☃`
	env.Insert(t,
		testenv.Row{ID: 1, InputFields: testenv.Str(`{}`), ExpiresAt: &exp, AccessToken: testenv.Str(odd)},
		testenv.Row{ID: 2, InputFields: testenv.Str(`{}`)},
		testenv.Row{ID: 3, InputFields: testenv.Str(`{}`), AccessToken: testenv.Str(odd), IsActive: "inactive"},
	)
	s := open(t, env, mysql.Options{})
	ctx := context.Background()
	hexOf := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }

	holds, at, err := s.HoldsToken(ctx, 1, hexOf(odd))
	require.NoError(t, err)
	assert.True(t, holds)
	require.NotNil(t, at)
	assert.True(t, exp.Equal(*at))
	holds, _, err = s.HoldsToken(ctx, 1, hexOf(odd+"x"))
	require.NoError(t, err)
	assert.False(t, holds)
	holds, at, err = s.HoldsToken(ctx, 2, hexOf(""))
	require.NoError(t, err)
	assert.False(t, holds, "a row without a token holds none")
	assert.Nil(t, at)
	_, _, err = s.HoldsToken(ctx, 3, hexOf(odd))
	assert.ErrorIs(t, err, token.ErrNotFound)
}
