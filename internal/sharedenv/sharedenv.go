// Package sharedenv is a private slice of the shared servers, the part
// the tests (internal/testenv) and the benchmarks (internal/bench) both
// need: databases made from deploy.Schema, DSNs that point at them,
// removal of a queue's Redis keys, and random names. It takes no
// testing.TB and does not import testing, so a program (bin/bench) can
// use it without linking the test framework in.
package sharedenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/deploy"
)

// RandomID returns 8 random hex characters.
func RandomID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// CreateDatabases creates the wms and ie databases with the deploy/ schema
// through root, a server-level connection allowed to create databases.
func CreateDatabases(ctx context.Context, root *sqlx.DB, wms, ie string) error {
	for _, st := range deploy.Schema(wms, ie) {
		if _, err := root.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
	}
	return nil
}

// DropDatabases drops the named databases (those that exist).
func DropDatabases(ctx context.Context, root *sqlx.DB, names ...string) error {
	for _, db := range names {
		if _, err := root.ExecContext(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			return err
		}
	}
	return nil
}

// DatabaseDSN is base (a go-sql-driver DSN) pointed at database db, reading
// DATETIME columns as UTC time.Time.
func DatabaseDSN(base, db string) (string, error) {
	cfg, err := driver.ParseDSN(base)
	if err != nil {
		return "", fmt.Errorf("MySQL DSN: %w", err)
	}
	cfg.DBName = db
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	return cfg.FormatDSN(), nil
}

// DropQueueKeys deletes every Redis key of asynq queue q, its shards (q.1,
// q.2, …) and its twins (q_urgent, q_webhooks), and the product's own keys
// kept under q's name (lifetimes, webhook notices, connection leases), in
// batches of SCAN and UNLINK so the shared Redis is never blocked by one
// long command. The queues leave asynq's list of queues first, so that a
// dashboard listing every queue of the shared Redis (asynqmon) does not
// read one while its keys go.
func DropQueueKeys(ctx context.Context, rdb redis.UniversalClient, q string) error {
	names := []any{q}
	for _, pattern := range []string{q + ".*", q + "_*"} {
		members, err := sscanAll(ctx, rdb, "asynq:queues", pattern)
		if err != nil {
			return err
		}
		for _, m := range members {
			names = append(names, m)
		}
	}
	if err := rdb.SRem(ctx, "asynq:queues", names...).Err(); err != nil {
		return err
	}
	for _, pattern := range []string{"asynq:{" + q + "*", "token_refresher:{" + q + "}*", "token-refresher:{" + q + "}*"} {
		var cursor uint64
		for {
			keys, next, err := rdb.Scan(ctx, cursor, pattern, 2000).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return nil
}

// sscanAll returns the members of set key that match pattern.
func sscanAll(ctx context.Context, rdb redis.UniversalClient, key, pattern string) ([]string, error) {
	var out []string
	var cursor uint64
	for {
		members, next, err := rdb.SScan(ctx, key, cursor, pattern, 1000).Result()
		if err != nil {
			return nil, err
		}
		out = append(out, members...)
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}
