package mysql_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/dueset"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestDueIsOneRule proves the store's two SQL predicates of "due" (the
// scan's, and the census's due-or-expired) equal to token.Due with the
// lifetime unknown, the one rule, over the edge rows: NULL, a zero
// DATETIME, exactly at the boundary, a second either side, expired, far
// ahead, in UTC and in another DB_TIME_ZONE; and so are the reads of the
// passes that follow the due connections (internal/dueset). A change of the rule is made in
// token.Due (and token.DueBefore, the SQL's bound); this test fails until
// the SQL says the same.
func TestDueIsOneRule(t *testing.T) {
	t.Parallel()
	const window = 10 * time.Minute
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	require.NoError(t, err)
	for _, loc := range []*time.Location{time.UTC, kolkata} {
		t.Run(loc.String(), func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t)
			store := open(t, env, mysql.Options{Location: loc, ChunkSize: 4})
			now := time.Now().Truncate(time.Second)
			at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
			zero := time.Time{}
			rows := []struct {
				name string
				exp  *time.Time
			}{
				{"NULL", nil},
				{"zero DATETIME", &zero},
				{"expired long ago", at(-48 * time.Hour)},
				{"expired a second ago", at(-time.Second)},
				{"expiring now", at(0)},
				{"inside the window", at(window / 2)},
				{"a second before the boundary", at(window - time.Second)},
				{"exactly at the boundary", at(window)},
				{"a second after the boundary", at(window + time.Second)},
				{"far ahead", at(24 * time.Hour)},
			}
			wantDue := map[int64]bool{}
			for i, r := range rows {
				id := int64(i + 1)
				env.Insert(t, testenv.Row{ID: id})
				switch {
				case r.exp == nil:
				case r.exp.IsZero():
					conn, err := env.IE.Connx(context.Background())
					require.NoError(t, err)
					_, err = conn.ExecContext(context.Background(), `SET SESSION sql_mode = ''`)
					require.NoError(t, err)
					_, err = conn.ExecContext(context.Background(), `UPDATE ie_appinstall_connection SET accessTokenExpiryAt = '0000-00-00 00:00:00' WHERE id = ?`, id)
					require.NoError(t, err)
					conn.Close()
				default:
					// As the zone's wall clock, the way the store writes it.
					env.IE.MustExec(`UPDATE ie_appinstall_connection SET accessTokenExpiryAt = ? WHERE id = ?`,
						r.exp.In(loc).Format("2006-01-02 15:04:05"), id)
				}
				wantDue[id] = token.Due(r.exp, now, window, 0)
			}

			due, _, _ := collect(t, store, "16", token.DueBefore(now, window))
			gotDue := map[int64]bool{}
			for _, d := range due {
				gotDue[d.ID] = true
				// The row read back is due by the rule too.
				assert.True(t, token.Due(d.ExpiresAt, now, window, 0), "row %d read back", d.ID)
			}
			var wantN int
			for i, r := range rows {
				id := int64(i + 1)
				assert.Equal(t, wantDue[id], gotDue[id], "%s: the scan's SQL and token.Due disagree", r.name)
				if wantDue[id] {
					wantN++
				}
			}
			c, err := store.CountStates(context.Background(), "16", now, token.DueBefore(now, window), nil)
			require.NoError(t, err)
			assert.Equal(t, wantN, c.Due+c.Expired, "the census's due and expired are token.Due")
			assert.Equal(t, len(rows)-wantN, c.Fresh, "the census's fresh is not token.Due")

			// The passes that read the due connections (internal/dueset)
			// say the same: a full pass 20 minutes earlier, then one whose
			// range of the expiry index takes in everything that entered
			// the window since, up to the boundary.
			env.CreateIndexes(t)
			tr := dueset.New(store, []token.Target{{IntegrationType: "16", Kind: "ajio", RefreshBefore: window}}, dueset.Options{FullInterval: time.Hour})
			require.NoError(t, tr.Sync(context.Background(), now.Add(-20*time.Minute)))
			require.NoError(t, tr.Sync(context.Background(), now))
			require.True(t, tr.Stats().Indexed && !tr.Stats().Full, "%+v", tr.Stats())
			passDue := map[int64]bool{}
			_, err = tr.ScanDue(context.Background(), "16", token.DueBefore(now, window), func(c []token.DueConnection) error {
				for _, d := range c {
					passDue[d.ID] = true
				}
				return nil
			})
			require.NoError(t, err)
			for i, r := range rows {
				id := int64(i + 1)
				assert.Equal(t, wantDue[id], passDue[id], "%s: the passes' reads and token.Due disagree", r.name)
			}
			pc, err := tr.CountStates(context.Background(), "16", now, token.DueBefore(now, window), nil)
			require.NoError(t, err)
			assert.Equal(t, c, pc, "the census from the passes and the walk's")
			t.Logf("%s: %d due of %d", loc, wantN, len(rows))
		})
	}
}
