package main

import (
	"testing"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

// An unreachable Redis stops start-up with one line naming REDIS_URL and
// the address, and nothing of go-redis's own before it.
func TestRedisUnreachableIsOneLine(t *testing.T) {
	testenv.RedisUnreachableIsOneLine(t, main, func() []string {
		return []string{"DASHBOARD_USER=ops", "DASHBOARD_PASSWORD=pw-0123456789", "HTTP_ADDR=127.0.0.1:0"}
	})
}
