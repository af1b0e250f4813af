package main

import (
	"testing"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

// An unreachable Redis stops start-up with one line naming REDIS_URL and
// the address, and nothing of go-redis's own before it.
func TestRedisUnreachableIsOneLine(t *testing.T) {
	testenv.RedisUnreachableIsOneLine(t, main, func() []string {
		env := testenv.New(t)
		return []string{"WMS_DB_DSN=" + env.WMSDSN, "IE_DB_DSN=" + env.IEDSN}
	})
}
