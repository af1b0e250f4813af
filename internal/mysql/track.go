package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The reads in this file serve a pass that follows the due connections
// rather than the fleet (internal/dueset): each one reads rows in
// proportion to what it returns, given the optional indexes of
// deploy/mysql/03-indexes.sql, which Indexes reports.

// Indexes says which of the optional indexes (deploy/mysql/03-indexes.sql)
// the two tables have: an index whose first column is
// ie_appinstall_connection.accessTokenExpiryAt (its name in Expiry, "" when
// there is none), and one whose first column is channels.connectionId.
type Indexes struct {
	Expiry     string
	Connection bool
}

// Both reports whether both optional indexes are there.
func (i Indexes) Both() bool { return i.Expiry != "" && i.Connection }

// Indexes reads information_schema for the optional indexes, in the
// databases the DSNs name.
func (s *Store) Indexes(ctx context.Context) (Indexes, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	const q = `SELECT COALESCE(MIN(INDEX_NAME), '') FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND SEQ_IN_INDEX = 1 AND COLUMN_NAME = ?`
	var ix Indexes
	if err := s.ie.GetContext(ctx, &ix.Expiry, q, "ie_appinstall_connection", "accessTokenExpiryAt"); err != nil {
		return ix, fmt.Errorf("read the indexes of ie_appinstall_connection: %w", err)
	}
	var name string
	if err := s.wms.GetContext(ctx, &name, q, "channels", "connectionId"); err != nil {
		return ix, fmt.Errorf("read the indexes of channels: %w", err)
	}
	ix.Connection = name != ""
	return ix, nil
}

// Expiry is one ie_appinstall_connection row as a pass reads it: its id,
// whether it is active (isActive = 'active'), and its stored expiry in the
// store's zone (nil: NULL or a zero DATETIME, never generated).
type Expiry struct {
	ID        int64
	Active    bool
	ExpiresAt *time.Time
}

// MaxConnectionID is the highest id in ie_appinstall_connection (0 when the
// table is empty): one read of the primary key's end.
func (s *Store) MaxConnectionID(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	var id sql.NullInt64
	if err := s.ie.GetContext(ctx, &id, `SELECT MAX(id) FROM ie_appinstall_connection`); err != nil {
		return 0, fmt.Errorf("read the last connection id: %w", err)
	}
	return id.Int64, nil
}

// ConnectionsAfter returns the next rows of ie_appinstall_connection after
// id after, in id order, at most ChunkSize of them, active or not, and
// whether more may follow: a range of the primary key, so new connections
// (ids above the last one seen) cost one read each.
func (s *Store) ConnectionsAfter(ctx context.Context, after int64) (page []Expiry, more bool, err error) {
	page, err = s.expiries(ctx, "read new connections", `
		SELECT id, isActive = 'active', accessTokenExpiryAt FROM ie_appinstall_connection
		WHERE id > ? ORDER BY id LIMIT ?`, after, s.opts.ChunkSize)
	return page, len(page) == s.opts.ChunkSize, err
}

// ExpiringBetween calls fn with the active connections whose expiry is in
// [from, to), in chunks of at most ChunkSize, as one query streams them: a
// range of index, the expiry index Indexes named. Every integration type's
// rows are in it: the table has no type.
//
// The index is forced: for a range over more than about a sixth of the
// table (a scanner back after half an hour away) MariaDB's optimizer
// prefers reading the whole table, which costs more rows than the range
// holds; the rows read must follow the rows due.
//
// The bounds are sent rounded up to the microsecond (the same answer for a
// DATETIME, which holds whole seconds): go-sql-driver writes a time with
// nanoseconds, a literal of nine fractional digits, and with it MariaDB
// 10.11 does not use the index at all: it read all 220,004 rows of the
// table (Handler_read_rnd_next) to find the 333 of a 3-second range.
func (s *Store) ExpiringBetween(ctx context.Context, index string, from, to time.Time, fn func([]Expiry) error) error {
	if !from.Before(to) {
		return nil
	}
	from, to = ceilMicro(from), ceilMicro(to)
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	const what = "read connections entering the refresh window"
	rows, err := s.ie.QueryContext(ctx, `
		SELECT id, accessTokenExpiryAt FROM ie_appinstall_connection FORCE INDEX (`+quoteName(index)+`)
		WHERE accessTokenExpiryAt >= ? AND accessTokenExpiryAt < ? AND isActive = 'active'`, from, to)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	page := make([]Expiry, 0, s.opts.ChunkSize)
	for rows.Next() {
		var e Expiry
		var exp sql.NullTime
		if err := rows.Scan(&e.ID, &exp); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		e.Active = true
		if exp.Valid && !exp.Time.IsZero() {
			t := exp.Time
			e.ExpiresAt = &t
		}
		if page = append(page, e); len(page) == s.opts.ChunkSize {
			if err := fn(page); err != nil {
				return err
			}
			page = make([]Expiry, 0, s.opts.ChunkSize)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(page) > 0 {
		return fn(page)
	}
	return nil
}

// quoteName quotes a MySQL identifier: backticks, an inner one doubled.
func quoteName(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// ceilMicro is t rounded up to the microsecond. For a whole-second
// DATETIME d, d >= t and d < t hold exactly when they hold with ceilMicro(t).
func ceilMicro(t time.Time) time.Time {
	if c := t.Truncate(time.Microsecond); !c.Equal(t) {
		return c.Add(time.Microsecond)
	}
	return t
}

// Expiries reads the given connections by primary key, in chunks of
// ChunkSize: the rows found, active or not (a missing id is a deleted
// connection).
func (s *Store) Expiries(ctx context.Context, ids []int64) ([]Expiry, error) {
	var out []Expiry
	for chunk := range slices.Chunk(ids, s.opts.ChunkSize) {
		q, args, err := sqlx.In(`
			SELECT id, isActive = 'active', accessTokenExpiryAt FROM ie_appinstall_connection
			WHERE id IN (?)`, chunk)
		if err != nil {
			return nil, err
		}
		page, err := s.expiries(ctx, "re-read connections", q, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
	}
	return out, nil
}

func (s *Store) expiries(ctx context.Context, what, q string, args ...any) ([]Expiry, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	rows, err := s.ie.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []Expiry
	for rows.Next() {
		var e Expiry
		var exp sql.NullTime
		if err := rows.Scan(&e.ID, &e.Active, &exp); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if exp.Valid && !exp.Time.IsZero() {
			t := exp.Time
			e.ExpiresAt = &t
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// ActiveTypes returns, for each of the given connection ids that has an
// active channel (status '0') of one of the integration types, that type
// (the first in sort order when there are several, as FindActive). With
// the channels(connectionId) index it reads the ids' own rows.
func (s *Store) ActiveTypes(ctx context.Context, ids []int64, integrationTypes []string) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	if len(integrationTypes) == 0 {
		return out, nil
	}
	for chunk := range slices.Chunk(ids, s.opts.ChunkSize) {
		if err := s.activeTypes(ctx, chunk, integrationTypes, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) activeTypes(ctx context.Context, ids []int64, integrationTypes []string, out map[int64]string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	q, args, err := sqlx.In(`
		SELECT connectionId, integrationType FROM channels
		WHERE connectionId IN (?) AND status = '0' AND integrationType IN (?)`, ids, integrationTypes)
	if err != nil {
		return err
	}
	rows, err := s.wms.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read the channels of connections: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var raw sql.RawBytes
		var typ string
		if err := rows.Scan(&raw, &typ); err != nil {
			return fmt.Errorf("read the channels of connections: %w", err)
		}
		id, perr := strconv.ParseInt(string(raw), 10, 64)
		if perr != nil {
			continue
		}
		if have, ok := out[id]; !ok || typ < have {
			out[id] = typ
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the channels of connections: %w", err)
	}
	return nil
}

// ActiveIDsAfter returns the next page of active connection ids of one
// integration type after the given one (channels, by keyset on the
// type/status/connection index), and whether more pages follow.
func (s *Store) ActiveIDsAfter(ctx context.Context, integrationType string, after int64) (ids []int64, more bool, err error) {
	ids, next, _, err := s.activeIDs(ctx, integrationType, after)
	return ids, next != nil, err
}
