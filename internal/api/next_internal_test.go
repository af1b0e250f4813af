package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestNextRefreshOfAPutBackTask: a task put back for its turn at the rate
// limit (a deferral) is not called a failed attempt; a retry is.
func TestNextRefreshOfAPutBackTask(t *testing.T) {
	t.Parallel()
	a := &API{cfg: Config{Cooldown: time.Hour}}
	now := time.Now().UTC()
	next := now.Add(30 * time.Second)
	c := Connection{State: token.StateDue}
	d := token.Described{Active: true}
	tg := token.Target{RefreshBefore: 10 * time.Minute}

	_, why := a.nextRefresh(c, d, tg, 0, &task.Status{State: "retry", NextProcessAt: next,
		LastErr: "deferred: ajio rate limit (1/s): 101 calls ahead, by expiry"}, nil, now)
	assert.Equal(t, "put back, not a failure: ajio rate limit (1/s): 101 calls ahead, by expiry", why)

	at, why := a.nextRefresh(c, d, tg, 0, &task.Status{State: "retry", NextProcessAt: next, LastErr: "transient: ajio HTTP 503"}, nil, now)
	assert.Equal(t, "retry of a failed attempt", why)
	assert.Equal(t, next.Truncate(time.Second), *at)

	_, why = a.nextRefresh(c, d, tg, 0, &task.Status{State: "scheduled", NextProcessAt: next}, nil, now)
	assert.Equal(t, "scheduled refresh (scheduled)", why)
}
