package testenv

import (
	"context"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/internal/sharedenv"
)

// The parts of a private slice of the shared servers that the tests (New)
// and the benchmarks (internal/bench) both need live in internal/sharedenv,
// which does not import testing (bin/bench uses it); these are the tests'
// names for them.

// CreateDatabases creates the wms and ie databases with the deploy/ schema
// through root, a server-level connection allowed to create databases.
func CreateDatabases(ctx context.Context, root *sqlx.DB, wms, ie string) error {
	return sharedenv.CreateDatabases(ctx, root, wms, ie)
}

// DropDatabases drops the named databases (those that exist).
func DropDatabases(ctx context.Context, root *sqlx.DB, names ...string) error {
	return sharedenv.DropDatabases(ctx, root, names...)
}

// DatabaseDSN is base (a go-sql-driver DSN) pointed at database db, reading
// DATETIME columns as UTC time.Time.
func DatabaseDSN(base, db string) (string, error) { return sharedenv.DatabaseDSN(base, db) }

// DropQueueKeys deletes every Redis key of asynq queue q and its twins
// (q_urgent, q_webhooks), and the product's own keys kept under q's name
// (lifetimes, webhook notices, connection leases), in batches of SCAN and
// UNLINK so the shared Redis is never blocked by one long command.
func DropQueueKeys(ctx context.Context, rdb redis.UniversalClient, q string) error {
	return sharedenv.DropQueueKeys(ctx, rdb, q)
}
