// Package mysql is the store: it reads active and due connections from the
// two production databases and writes renewed tokens back, one row at a
// time, guarded so a late or duplicate worker never overwrites a newer token.
// It works against tables holding only the columns named in the data
// contract.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/internal/token"
)

// Options tune the store. Zero values take the defaults.
type Options struct {
	// Location is the zone DATETIME values are stored in (default UTC).
	Location *time.Location
	// ChunkSize is how many connection ids one query handles (default 1000).
	ChunkSize int
	// MaxOpenConns caps each pool (default 32).
	MaxOpenConns int
	// QueryTimeout bounds every query and write, including the wait for a
	// connection and its handshake (default 30s). It holds when the network
	// goes silent: the driver closes the socket when the context ends.
	QueryTimeout time.Duration
	// ConnMaxIdleTime closes a pooled connection unused for longer (default
	// 1m).
	ConnMaxIdleTime time.Duration
}

func (o *Options) defaults() {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = 1000
	}
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = 32
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 30 * time.Second
	}
	if o.ConnMaxIdleTime <= 0 {
		// Servers and the middleboxes in front of them close idle
		// connections without telling the client: MySQL's wait_timeout
		// (8h by default, often set to minutes), proxies such as ProxySQL
		// and HAProxy (commonly 1-5 minutes), cloud load balancers and NAT
		// (Azure 4 minutes, AWS NAT 350s), which may even drop the
		// connection silently. One minute stays below all of these, so a
		// pool connection is retired by us before anyone else kills it;
		// reopening one a minute costs nothing next to a scan. What slips
		// through (a shorter server timeout) the driver catches on reuse:
		// it checks a pooled connection's socket before writing to it
		// (checkConnLiveness, on by default) and database/sql retries
		// on a fresh connection.
		o.ConnMaxIdleTime = time.Minute
	}
}

// Store reads channels from the WMS database and connections from the
// integration-engine database; the two may be on different servers.
type Store struct {
	wms  *sqlx.DB
	ie   *sqlx.DB
	opts Options
}

// ParseDSN checks a go-sql-driver DSN and returns it with the settings the
// store relies on: DATETIME parsed into the configured zone, and query
// arguments interpolated by the driver. Its error never repeats the DSN,
// which holds a password.
//
// Without interpolation every query with arguments is a server-side
// prepared statement: prepare, execute and close, three round trips where
// one does. A refresh makes two such queries, and on a small machine the
// extra round trips (system calls on both sides, and MariaDB's work to
// prepare and drop the statement) cost more CPU than the refresh's own
// work (docs/benchmarks.md, figure 2). The driver escapes each argument for
// the connection's character set; it refuses interpolation with the few
// multi-byte collations where that escaping is unsafe, and so does
// ParseDSN, as it does when the DSN sets interpolateParams itself.
func ParseDSN(dsn string, loc *time.Location) (string, error) {
	if dsn == "" {
		return "", errors.New("empty")
	}
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		// The driver's parse errors name the fault, never the password.
		return "", fmt.Errorf("not a valid go-sql-driver DSN (user:password@tcp(host:port)/dbname): %w", err)
	}
	if cfg.DBName == "" {
		return "", errors.New("names no database (…/dbname)")
	}
	if loc == nil {
		loc = time.UTC
	}
	cfg.ParseTime = true
	cfg.Loc = loc
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 60 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if !strings.Contains(dsn, "interpolateParams=") {
		cfg.InterpolateParams = true
		if _, err := driver.ParseDSN(cfg.FormatDSN()); err != nil {
			cfg.InterpolateParams = false // an unsafe collation
		}
	}
	return cfg.FormatDSN(), nil
}

// Open connects to both databases and pings them.
func Open(ctx context.Context, wmsDSN, ieDSN string, opts Options) (*Store, error) {
	opts.defaults()
	wms, err := open(ctx, "WMS_DB_DSN", wmsDSN, opts)
	if err != nil {
		return nil, err
	}
	ie, err := open(ctx, "IE_DB_DSN", ieDSN, opts)
	if err != nil {
		wms.Close()
		return nil, err
	}
	return &Store{wms: wms, ie: ie, opts: opts}, nil
}

func open(ctx context.Context, name, dsn string, opts Options) (*sqlx.DB, error) {
	dsn, err := ParseDSN(dsn, opts.Location)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	db, err := sqlx.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	db.SetMaxOpenConns(opts.MaxOpenConns)
	db.SetMaxIdleConns(opts.MaxOpenConns)
	db.SetConnMaxLifetime(5 * time.Minute)
	db.SetConnMaxIdleTime(opts.ConnMaxIdleTime)
	ctx, cancel := context.WithTimeout(ctx, opts.QueryTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		var refused *driver.MySQLError
		if errors.As(err, &refused) {
			// The server answered: a wrong user or password, an unknown
			// database. Its message names the user and the database,
			// never the password.
			return nil, fmt.Errorf("%s: the database server refused the connection: %w", name, err)
		}
		return nil, fmt.Errorf("%s: cannot reach the database: %w", name, err)
	}
	return db, nil
}

// Close closes both pools.
func (s *Store) Close() error {
	return errors.Join(s.wms.Close(), s.ie.Close())
}

// Ping checks that both databases answer (readiness).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.wms.PingContext(ctx); err != nil {
		return fmt.Errorf("WMS database: %w", err)
	}
	if err := s.ie.PingContext(ctx); err != nil {
		return fmt.Errorf("IE database: %w", err)
	}
	return nil
}

// ScanDue walks the active connections of one integration type in chunks
// and calls fn with the due ones of each chunk (expiry NULL, zero or before
// dueBefore). Memory stays bounded by the chunk size whatever the fleet
// size: ids are paged from channels by keyset, and each page is one IN list
// against ie_appinstall_connection.
func (s *Store) ScanDue(ctx context.Context, integrationType string, dueBefore time.Time, fn func([]token.DueConnection) error) (token.ScanStats, error) {
	var st token.ScanStats
	var after int64 = -1 << 63
	for {
		ids, last, bad, err := s.activeIDs(ctx, integrationType, after)
		if err != nil {
			return st, err
		}
		st.BadIDs += bad
		st.Active += len(ids)
		if len(ids) > 0 {
			due, err := s.dueAmong(ctx, integrationType, ids, dueBefore)
			if err != nil {
				return st, err
			}
			st.Due += len(due)
			if len(due) > 0 {
				if err := fn(due); err != nil {
					return st, err
				}
			}
		}
		if last == nil {
			return st, nil
		}
		after = *last
	}
}

// activeIDs returns the next page of active connection ids after the given
// one, and the cursor for the next page (nil after the last page).
func (s *Store) activeIDs(ctx context.Context, integrationType string, after int64) (ids []int64, next *int64, bad int, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	// connectionId is read as text: a production column of another type, or
	// a junk value in it, must cost that one row, not the scan.
	rows, err := s.wms.QueryContext(ctx, `
		SELECT DISTINCT connectionId FROM channels
		WHERE integrationType = ? AND status = '0' AND connectionId > ?
		ORDER BY connectionId LIMIT ?`,
		integrationType, after, s.opts.ChunkSize)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read active channels of type %s: %w", integrationType, err)
	}
	defer rows.Close()
	n := 0
	var last int64
	ids = make([]int64, 0, s.opts.ChunkSize)
	for rows.Next() {
		var raw sql.RawBytes
		if err := rows.Scan(&raw); err != nil {
			return nil, nil, 0, fmt.Errorf("read active channels of type %s: %w", integrationType, err)
		}
		n++
		id, perr := strconv.ParseInt(string(raw), 10, 64)
		if perr != nil {
			bad++
			continue
		}
		ids = append(ids, id)
		last = id
	}
	if err := rows.Err(); err != nil {
		return nil, nil, 0, fmt.Errorf("read active channels of type %s: %w", integrationType, err)
	}
	if n == s.opts.ChunkSize && len(ids) > 0 {
		next = &last
	}
	return ids, next, bad, nil
}

func (s *Store) dueAmong(ctx context.Context, integrationType string, ids []int64, dueBefore time.Time) ([]token.DueConnection, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	q, args, err := sqlx.In(`
		SELECT id, accessTokenExpiryAt FROM ie_appinstall_connection
		WHERE id IN (?) AND isActive = 'active'
		  AND (accessTokenExpiryAt IS NULL OR accessTokenExpiryAt < ?)`, ids, dueBefore)
	if err != nil {
		return nil, err
	}
	rows, err := s.ie.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read due connections of type %s: %w", integrationType, err)
	}
	defer rows.Close()
	var due []token.DueConnection
	for rows.Next() {
		var id int64
		var exp sql.NullTime
		if err := rows.Scan(&id, &exp); err != nil {
			return nil, fmt.Errorf("read due connections of type %s: %w", integrationType, err)
		}
		d := token.DueConnection{ID: id, IntegrationType: integrationType}
		if exp.Valid {
			t := exp.Time
			d.ExpiresAt = &t
		}
		due = append(due, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read due connections of type %s: %w", integrationType, err)
	}
	return due, nil
}

// Fingerprints returns token.Fingerprint of the credentials (inputFields
// and refresh token) of the given connections. Only the digest leaves this
// function.
func (s *Store) Fingerprints(ctx context.Context, ids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	q, args, err := sqlx.In(`SELECT id, inputFields, COALESCE(refreshToken, '') FROM ie_appinstall_connection WHERE id IN (?)`, ids)
	if err != nil {
		return nil, err
	}
	rows, err := s.ie.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read connection fingerprints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var fields sql.RawBytes
		var refresh string
		if err := rows.Scan(&id, &fields, &refresh); err != nil {
			return nil, fmt.Errorf("read connection fingerprints: %w", err)
		}
		out[id] = token.Fingerprint(fields, refresh)
	}
	return out, rows.Err()
}

// Load reads one active connection. It returns token.ErrNotFound when the
// connection does not exist or is not active.
func (s *Store) Load(ctx context.Context, id int64) (token.Connection, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	var row struct {
		ID           int64          `db:"id"`
		InputFields  []byte         `db:"inputFields"`
		RefreshToken sql.NullString `db:"refreshToken"`
		ExpiresAt    sql.NullTime   `db:"accessTokenExpiryAt"`
	}
	err := s.ie.GetContext(ctx, &row, `
		SELECT id, inputFields, refreshToken, accessTokenExpiryAt
		FROM ie_appinstall_connection WHERE id = ? AND isActive = 'active'`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return token.Connection{}, token.ErrNotFound
	}
	if err != nil {
		return token.Connection{}, fmt.Errorf("load connection %d: %w", id, err)
	}
	c := token.Connection{ID: row.ID, InputFields: row.InputFields, RefreshToken: row.RefreshToken.String}
	if row.ExpiresAt.Valid {
		t := row.ExpiresAt.Time
		c.ExpiresAt = &t
	}
	return c, nil
}

// Save writes a renewed token to exactly the row it was obtained for,
// guarded so that the newest-issued token wins whichever write lands last.
// The write goes through when the row still holds the expiry and refresh
// token read with it (the usual case, one refresh at a time under the
// connection's lease), or when the row holds an older token than t: no
// token, or an expiry earlier than t's. Otherwise it returns token.ErrStale
// and writes nothing: a late or duplicate worker never overwrites a newer
// token with an older one, and a rotated refresh token stored by a newer
// refresh is never replaced by an older one.
//
// Issuance order is read from the expiry, because the data contract's table
// has no issued-at column: a stored expiry is obtained-at (taken before the
// call, to the second) plus the token's lifetime, so for one marketplace a
// later call's token expires later. Two tokens whose expiries fall in the
// same second are a tie, and the row keeps the one it holds.
//
// An empty refresh token in t keeps the stored one. The expiry is written in
// the store's zone (Options.Location), to the second.
func (s *Store) Save(ctx context.Context, read token.Connection, t token.Token) error {
	if t.AccessToken == "" || t.ExpiresAt.IsZero() {
		return errors.New("refusing to store a token without an access token or expiry")
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	var prevExpiry any
	if read.ExpiresAt != nil {
		prevExpiry = *read.ExpiresAt
	}
	expiry := t.ExpiresAt.Truncate(time.Second)
	res, err := s.ie.ExecContext(ctx, `
		UPDATE ie_appinstall_connection
		SET accessToken = ?,
		    refreshToken = COALESCE(NULLIF(?, ''), refreshToken),
		    accessTokenExpiryAt = ?
		WHERE id = ? AND isActive = 'active'
		  AND ((accessTokenExpiryAt <=> ? AND COALESCE(refreshToken, '') = ?)
		       OR accessTokenExpiryAt IS NULL
		       OR accessTokenExpiryAt < ?)`,
		t.AccessToken, t.RefreshToken, expiry,
		read.ID, prevExpiry, read.RefreshToken, expiry)
	if err != nil {
		return fmt.Errorf("store token of connection %d: %w", read.ID, valueFree(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store token of connection %d: %w", read.ID, err)
	}
	if n != 1 {
		return token.ErrStale
	}
	return nil
}

// valueFree drops the message of a server error, which may quote a value
// the statement sent ("Incorrect string value: '\xF0\x9F...' for column
// 'accessToken'"): here the values are tokens. The number and SQL state name
// the fault; transport errors carry no value and pass through.
func valueFree(err error) error {
	var me *driver.MySQLError
	if errors.As(err, &me) {
		return fmt.Errorf("MySQL error %d (SQLSTATE %s); message withheld, it may quote a token", me.Number, string(me.SQLState[:]))
	}
	return err
}
