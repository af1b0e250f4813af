package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestOperatorRetriesArchivedTask: a permanently failed connection waits for
// its cooldown (1h here) or a change of credentials, but an operator can run
// the archived task at once from the dashboard (asynqmon's "run", which is
// Inspector.RunTask): it goes back to pending and is refreshed.
func TestOperatorRetriesArchivedTask(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	expired := time.Now().UTC().Add(-time.Hour)
	user := "late-signup@itc.com"
	b.env.Insert(t, testenv.Row{ID: 31, InputFields: creds(user, "right-password-31"), ExpiresAt: &expired,
		AccessToken: testenv.Str("keep-31")})
	b.startRefresher(t)

	b.scanOnce(t)
	testenv.Eventually(t, 20*time.Second, "the rejection to be archived", func() bool { return len(b.archived(t)) == 1 })
	require.Equal(t, 1, b.sandbox.Calls(user))

	// The marketplace now knows the seller (its side was fixed; the
	// credentials in inputFields are unchanged), and a scan still waits
	// for the cooldown.
	b.sandbox.AddSeller(user, "right-password-31")
	r := b.scanOnce(t)
	assert.Equal(t, 1, r.Failing)
	assert.Equal(t, 1, b.sandbox.Calls(user), "no call before the cooldown")

	require.NoError(t, b.inspector.RunTask(b.env.Queue, task.ID(31)))
	testenv.Eventually(t, 20*time.Second, "the operator's retry to refresh the connection", func() bool {
		row := b.env.Get(t, 31)
		return row.AccessToken != nil && *row.AccessToken != "keep-31"
	})
	owner, ok := b.sandbox.IssuedTo(*b.env.Get(t, 31).AccessToken)
	assert.True(t, ok)
	assert.Equal(t, user, owner)
	assert.Equal(t, 2, b.sandbox.Calls(user), "one call per try")
	assert.Empty(t, b.archived(t))
}
