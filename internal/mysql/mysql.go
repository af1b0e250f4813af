// Package mysql is the store: it reads active and due connections from the
// two production databases and writes renewed tokens back, one row at a
// time, guarded so a late or duplicate worker never overwrites a newer token.
// It works against tables holding only the columns named in the data
// contract.
package mysql

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	sqldriver "database/sql/driver"
	"encoding/hex"
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
	// ChunkSize is how many connection ids one query handles (default
	// DefaultChunkSize).
	ChunkSize int
	// MaxOpenConns caps each pool (default DefaultMaxOpenConns).
	MaxOpenConns int
	// QueryTimeout bounds every query and write, including the wait for a
	// connection and its handshake (default 30s). It holds when the network
	// goes silent: the driver closes the socket when the context ends.
	QueryTimeout time.Duration
	// ConnMaxIdleTime closes a pooled connection unused for longer (default
	// 1m).
	ConnMaxIdleTime time.Duration
	// TLS is how the DSNs' tls parameter is read (ParseDSNWith).
	TLS TLS
	// FingerprintKey is FINGERPRINT_KEY, the key of the credentials'
	// fingerprints (token.Fingerprinter); empty: the legacy unkeyed digest.
	FingerprintKey []byte
}

// Options' defaults that are settings too: SCAN_CHUNK_SIZE's and
// DB_MAX_OPEN_CONNS's.
const (
	DefaultChunkSize    = 1000
	DefaultMaxOpenConns = 32
)

func (o *Options) defaults() {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = DefaultMaxOpenConns
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
	fp   token.Fingerprinter
}

// ParseDSN checks a go-sql-driver DSN and returns it with the settings the
// store relies on: DATETIME parsed into the configured zone, query
// arguments interpolated by the driver, matched (not changed) rows counted
// by UPDATE, and a pooled connection to a read-only server dropped at once.
// Its error never repeats the DSN, which holds a password.
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
//
// clientFoundRows is always on: Claim's guarded write changes nothing and
// must still tell a row that matched from one that did not.
//
// rejectReadOnly is on unless the DSN sets it (rejectReadOnly=false is
// respected). With it, go-sql-driver closes a connection whose write is
// refused with MySQL error 1290, 1792 or 1836 and database/sql retries the
// statement on another one, at last on a new connection. After a failover
// (RDS, Aurora, orchestrator) the pool still holds connections to the
// demoted primary, now read-only; without it every write on them fails
// until ConnMaxLifetime retires them (go-sql-driver/mysql PRs 604 and 634;
// temporalio/temporal issue 1703).
//
// tls=preferred, tls=skip-verify and allowFallbackToPlaintext=true are
// refused: ParseDSNWith accepts them when told to (DB_TLS_ALLOW_INSECURE).
func ParseDSN(dsn string, loc *time.Location) (string, error) {
	return ParseDSNWith(dsn, loc, TLS{})
}

// ParseDSNWith is ParseDSN with the TLS settings t (see TLS): with a
// registered CA, a DSN that asks for no particular TLS gets it.
func ParseDSNWith(dsn string, loc *time.Location, t TLS) (string, error) {
	if dsn == "" {
		return "", errors.New("empty")
	}
	dsn, err := applyTLS(dsn, t)
	if err != nil {
		return "", err
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
	cfg.ClientFoundRows = true
	if _, set := dsnParam(dsn, "rejectReadOnly"); !set {
		cfg.RejectReadOnly = true
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 60 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if _, set := dsnParam(dsn, "interpolateParams"); !set {
		cfg.InterpolateParams = true
		if _, err := driver.ParseDSN(cfg.FormatDSN()); err != nil {
			cfg.InterpolateParams = false // an unsafe collation
		}
	}
	return cfg.FormatDSN(), nil
}

// dsnParam returns the value of a go-sql-driver DSN parameter
// (…/dbname?name=value&…) and whether the DSN sets it.
func dsnParam(dsn, name string) (string, bool) {
	// As the driver parses it: the parameters follow the first "?" after
	// the last "/" (a password may hold either character).
	_, params, ok := strings.Cut(dsn[strings.LastIndex(dsn, "/")+1:], "?")
	if !ok {
		return "", false
	}
	for _, kv := range strings.Split(params, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}

// The databases Open connects to, as OpenError names them.
const (
	WMS = "WMS" // the channels' database (wmsDSN)
	IE  = "IE"  // the connections' database (ieDSN)
)

// OpenError is Open's error: which database (WMS or IE) could not be
// opened, and why (a DSN that does not parse, a refused login, an
// unreachable server, a certificate that does not verify). It never holds
// the password.
type OpenError struct {
	Database string
	Err      error
}

func (e *OpenError) Error() string { return "the " + e.Database + " database: " + e.Err.Error() }

func (e *OpenError) Unwrap() error { return e.Err }

// Open connects to both databases and pings them. Its error is an
// *OpenError naming the database.
func Open(ctx context.Context, wmsDSN, ieDSN string, opts Options) (*Store, error) {
	opts.defaults()
	wms, err := open(ctx, wmsDSN, opts)
	if err != nil {
		return nil, &OpenError{Database: WMS, Err: err}
	}
	ie, err := open(ctx, ieDSN, opts)
	if err != nil {
		wms.Close()
		return nil, &OpenError{Database: IE, Err: err}
	}
	return &Store{wms: wms, ie: ie, opts: opts, fp: token.NewFingerprinter(opts.FingerprintKey)}, nil
}

func open(ctx context.Context, dsn string, opts Options) (*sqlx.DB, error) {
	dsn, err := ParseDSNWith(dsn, opts.Location, opts.TLS)
	if err != nil {
		return nil, err
	}
	db, err := sqlx.Open("mysql", dsn)
	if err != nil {
		return nil, err
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
			return nil, fmt.Errorf("the database server refused the connection: %w", err)
		}
		var untrusted *tls.CertificateVerificationError
		if errors.As(err, &untrusted) {
			roots := "the system's trusted CAs (tls=true)"
			if opts.TLS.Registered {
				roots = "the configured CA file"
			}
			return nil, fmt.Errorf("the database server's TLS certificate does not verify against %s: %w", roots, untrusted.Err)
		}
		return nil, fmt.Errorf("cannot reach the database: %w", err)
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
			st.LastID = ids[len(ids)-1]
		}
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

// CredentialsChanged compares the fingerprints recorded with permanent
// failures (connection id → fingerprint) with the connections' credentials
// now (inputFields and refresh token), keyed or legacy as each was recorded
// (token.Fingerprinter.Changed). Only the verdict leaves this function: an
// id is missing from the result when its connection is gone, or when the
// fingerprint is keyed and this store has no key.
func (s *Store) CredentialsChanged(ctx context.Context, recorded map[int64]string) (map[int64]bool, error) {
	out := make(map[int64]bool, len(recorded))
	if len(recorded) == 0 {
		return out, nil
	}
	ids := make([]int64, 0, len(recorded))
	for id := range recorded {
		ids = append(ids, id)
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
		if changed, known := s.fp.Changed(recorded[id], fields, refresh); known {
			out[id] = changed
		}
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
		return token.Connection{}, fmt.Errorf("load connection %d: %w", id, markUnwritable(err))
	}
	c := token.Connection{ID: row.ID, InputFields: row.InputFields, RefreshToken: row.RefreshToken.String}
	if row.ExpiresAt.Valid {
		t := row.ExpiresAt.Time
		c.ExpiresAt = &t
	}
	return c, nil
}

// HoldsToken reads an active connection's stored expiry and whether its
// access token is the one whose SHA-256 (lowercase hex) is tokenSHA256: the
// comparison runs in MySQL (SHA2), so the token never leaves the database.
// It returns token.ErrNotFound when the connection does not exist or is not
// active; a row without a token holds none.
func (s *Store) HoldsToken(ctx context.Context, id int64, tokenSHA256 string) (bool, *time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	var row struct {
		Holds     bool         `db:"holds"`
		ExpiresAt sql.NullTime `db:"accessTokenExpiryAt"`
	}
	err := s.ie.GetContext(ctx, &row, `
		SELECT COALESCE(SHA2(accessToken, 256) = ?, FALSE) AS holds, accessTokenExpiryAt
		FROM ie_appinstall_connection WHERE id = ? AND isActive = 'active'`, tokenSHA256, id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil, token.ErrNotFound
	}
	if err != nil {
		return false, nil, fmt.Errorf("read connection %d: %w", id, valueFree(err))
	}
	if !row.ExpiresAt.Valid || row.ExpiresAt.Time.IsZero() {
		return row.Holds, nil, nil
	}
	t := row.ExpiresAt.Time
	return row.Holds, &t, nil
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
// A row that already holds t (the same access token, refresh token and
// expiry) matches too, and Save returns nil: storing a kept token twice (two
// replicas replaying the outbox, or a write whose acknowledgement was lost
// with its connection) is a success, not a conflict.
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
		       OR accessTokenExpiryAt < ?
		       OR (accessTokenExpiryAt = ? AND SHA2(accessToken, 256) = ?
		           AND (? = '' OR SHA2(refreshToken, 256) = ?)))`,
		t.AccessToken, t.RefreshToken, expiry,
		read.ID, prevExpiry, read.RefreshToken, expiry,
		expiry, sha256Hex(t.AccessToken), t.RefreshToken, sha256Hex(t.RefreshToken))
	return s.guarded(ctx, res, err, "store token of connection %d", read.ID)
}

// guarded is the result of a guarded single-row write: nil when the row
// matched, token.ErrStale when it did not, and otherwise the write's error
// (value-free, marked token.ErrUnwritable when the database refuses writes)
// prefixed with what was written. A write refused on a read-only server
// reaches it as a dropped connection (rejectReadOnly closes it and hides the
// MySQL error), so such an error asks the server why, and says so.
func (s *Store) guarded(ctx context.Context, res sql.Result, err error, what string, id int64) error {
	if err != nil {
		err = markUnwritable(valueFree(err))
		if errors.Is(err, sqldriver.ErrBadConn) {
			if why := s.readOnly(ctx); why != "" {
				err = fmt.Errorf("%w (%s)", err, why)
			}
		}
		return fmt.Errorf(what+": %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf(what+": %w", id, err)
	}
	if n != 1 {
		return token.ErrStale
	}
	return nil
}

// sha256Hex is the lowercase hex SHA-256 of s, as MySQL's SHA2(s, 256)
// computes it over a column holding s: the guard compares a token with the
// row's by digest, never as a string, so a token the column's character set
// cannot hold fails on its SET (a value error), not on an illegal mix of
// collations in the WHERE.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Claim proves, right before a marketplace call, that the token it will
// bring can be stored: it runs Save's guard as a write that changes nothing
// (UPDATE … SET accessTokenExpiryAt = accessTokenExpiryAt) on the row read.
// It returns nil when the row still holds what read holds, token.ErrStale
// when it does not (another path stored a token, or read came from a
// demoted primary that a newer write on the new primary contradicts),
// token.ErrNotFound when the connection is gone or inactive, and an error
// wrapping token.ErrUnwritable when the database refuses writes (a
// read-only server, a lost connection, a timeout). The guarded write is the
// fence: a read from a stale replica never decides a call by itself.
//
// Why a write and not a health flag: a credential spent on a call whose
// token cannot be stored is lost (a rotated refresh token retires the old
// one), so the proof must be of this row, on a server that takes writes,
// at the moment of the call. It costs one primary-key UPDATE that changes
// no row: InnoDB takes and releases the row lock, and row-based binary
// logging writes nothing.
func (s *Store) Claim(ctx context.Context, read token.Connection) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	var prevExpiry any
	if read.ExpiresAt != nil {
		prevExpiry = *read.ExpiresAt
	}
	res, err := s.ie.ExecContext(ctx, `
		UPDATE ie_appinstall_connection SET accessTokenExpiryAt = accessTokenExpiryAt
		WHERE id = ? AND isActive = 'active'
		  AND accessTokenExpiryAt <=> ? AND COALESCE(refreshToken, '') = ?`,
		read.ID, prevExpiry, read.RefreshToken)
	return s.guarded(ctx, res, err, "claim connection %d", read.ID)
}

// ProbeWrite checks that the integration-engine database takes writes now,
// touching no row (UPDATE … WHERE 1 = 0: a read-only server refuses it as
// it refuses any write). It returns nil, or an error wrapping
// token.ErrUnwritable that says why when the server can tell: "the server
// is read-only (read_only=ON)".
func (s *Store) ProbeWrite(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	_, err := s.ie.ExecContext(ctx, `UPDATE ie_appinstall_connection SET id = id WHERE 1 = 0`)
	if err == nil {
		return nil
	}
	if why := s.readOnly(ctx); why != "" {
		return fmt.Errorf("%w: %s", token.ErrUnwritable, why)
	}
	return fmt.Errorf("write probe: %w", markUnwritable(valueFree(err)))
}

// readOnly asks the integration-engine server whether it is read-only, and
// says so ("the server is read-only (read_only=ON)"); "" when it is not, or
// cannot be asked.
func (s *Store) readOnly(ctx context.Context) string {
	var ro struct {
		ReadOnly       bool `db:"read_only"`
		InnoDBReadOnly bool `db:"innodb_read_only"`
	}
	if err := s.ie.GetContext(ctx, &ro, `SELECT @@global.read_only AS read_only, @@global.innodb_read_only AS innodb_read_only`); err != nil {
		return ""
	}
	switch {
	case ro.ReadOnly:
		return "the server is read-only (read_only=ON)"
	case ro.InnoDBReadOnly:
		return "the server is read-only (innodb_read_only=ON)"
	}
	return ""
}

// ServerError is a MySQL server error with its message withheld: the
// message may quote a value the statement sent ("Incorrect string value:
// '\xF0\x9F...' for column 'accessToken'"), and here the values are tokens.
// The number and SQL state name the fault.
type ServerError struct {
	Number   uint16
	SQLState [5]byte
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("MySQL error %d (SQLSTATE %s); message withheld, it may quote a token", e.Number, string(e.SQLState[:]))
}

// valueFree replaces a server error by a ServerError; transport errors
// carry no value and pass through.
func valueFree(err error) error {
	var me *driver.MySQLError
	if errors.As(err, &me) {
		return &ServerError{Number: me.Number, SQLState: me.SQLState}
	}
	return err
}

// refusesWrites are the MySQL server errors that say the database as a whole
// takes no write now, whichever row: read-only (1290
// ER_OPTION_PREVENTS_STATEMENT, 1792 ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION,
// 1836 ER_READ_ONLY_MODE), shutting down (1053), too many connections
// (1040), a killed connection (1927), or this user refused (1044, 1045,
// 1142).
var refusesWrites = map[uint16]bool{1290: true, 1792: true, 1836: true, 1053: true, 1040: true, 1927: true,
	1044: true, 1045: true, 1142: true}

// markUnwritable wraps token.ErrUnwritable around an error that says the
// database takes no write now: one of refusesWrites, or no answer at all (a
// lost or refused connection, rejectReadOnly's dropped connection, a
// timeout). Any other server error is the row's (a deadlock, a lock wait, a
// value the column refuses) and passes unmarked, as does the caller's own
// cancellation.
func markUnwritable(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	var se *ServerError
	var me *driver.MySQLError
	switch {
	case errors.As(err, &se):
		if !refusesWrites[se.Number] {
			return err
		}
	case errors.As(err, &me):
		if !refusesWrites[me.Number] {
			return err
		}
	}
	return fmt.Errorf("%w: %w", token.ErrUnwritable, err)
}
