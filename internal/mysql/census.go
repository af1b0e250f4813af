package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/internal/token"
)

// FindActive returns the connection if it is active: a channels row with
// status '0' of one of the given integration types, and an
// ie_appinstall_connection row with isActive 'active'. It returns
// token.ErrNotFound otherwise. Only identifiers and the expiry are read.
func (s *Store) FindActive(ctx context.Context, id int64, integrationTypes []string) (token.DueConnection, error) {
	if len(integrationTypes) == 0 {
		return token.DueConnection{}, token.ErrNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	q, args, err := sqlx.In(`
		SELECT integrationType FROM channels
		WHERE connectionId = ? AND status = '0' AND integrationType IN (?)
		ORDER BY integrationType LIMIT 1`, id, integrationTypes)
	if err != nil {
		return token.DueConnection{}, err
	}
	var typ string
	err = s.wms.GetContext(ctx, &typ, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return token.DueConnection{}, token.ErrNotFound
	}
	if err != nil {
		return token.DueConnection{}, fmt.Errorf("read channel of connection %d: %w", id, err)
	}
	var exp sql.NullTime
	err = s.ie.GetContext(ctx, &exp, `
		SELECT accessTokenExpiryAt FROM ie_appinstall_connection
		WHERE id = ? AND isActive = 'active'`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return token.DueConnection{}, token.ErrNotFound
	}
	if err != nil {
		return token.DueConnection{}, fmt.Errorf("read connection %d: %w", id, err)
	}
	d := token.DueConnection{ID: id, IntegrationType: typ}
	if exp.Valid && !exp.Time.IsZero() {
		t := exp.Time
		d.ExpiresAt = &t
	}
	return d, nil
}

// CountStates counts the active connections of an integration type by the
// state of their token at now: fresh (expiry at or after dueBefore), due
// (between now and dueBefore) or expired (at or before now, or never
// generated). failing holds the ids of connections whose refresh failed
// permanently; the expired ones among them are counted apart too. Like ScanDue it pages ids out of channels, so memory stays
// bounded whatever the fleet size; each page is one aggregate query.
func (s *Store) CountStates(ctx context.Context, integrationType string, now, dueBefore time.Time, failing map[int64]bool) (token.StateCounts, error) {
	var c token.StateCounts
	var after int64 = -1 << 63
	for {
		ids, last, _, err := s.activeIDs(ctx, integrationType, after)
		if err != nil {
			return c, err
		}
		if len(ids) > 0 {
			var failed []int64
			for _, id := range ids {
				if failing[id] {
					failed = append(failed, id)
				}
			}
			page, err := s.countAmong(ctx, integrationType, ids, failed, now, dueBefore)
			if err != nil {
				return c, err
			}
			c.Fresh += page.Fresh
			c.Due += page.Due
			c.Expired += page.Expired
			c.ExpiredFailing += page.ExpiredFailing
		}
		if last == nil {
			return c, nil
		}
		after = *last
	}
}

func (s *Store) countAmong(ctx context.Context, integrationType string, ids, failed []int64, now, dueBefore time.Time) (token.StateCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	// A zero DATETIME sorts before any real one, so it counts as expired,
	// as it counts as never generated in the scan.
	const expired = `(accessTokenExpiryAt IS NULL OR accessTokenExpiryAt <= ?)`
	failingCol, args := `0`, []any{dueBefore, now, dueBefore, now}
	if len(failed) > 0 {
		failingCol = `COALESCE(SUM(` + expired + ` AND id IN (?)), 0)`
		args = append(args, now, failed)
	}
	q, args, err := sqlx.In(`
		SELECT
		  COALESCE(SUM(accessTokenExpiryAt >= ?), 0),
		  COALESCE(SUM(accessTokenExpiryAt > ? AND accessTokenExpiryAt < ?), 0),
		  COALESCE(SUM(`+expired+`), 0),
		  `+failingCol+`
		FROM ie_appinstall_connection
		WHERE id IN (?) AND isActive = 'active'`, append(args, ids)...)
	if err != nil {
		return token.StateCounts{}, err
	}
	var c token.StateCounts
	if err := s.ie.QueryRowContext(ctx, q, args...).Scan(&c.Fresh, &c.Due, &c.Expired, &c.ExpiredFailing); err != nil {
		return c, fmt.Errorf("count connections of type %s: %w", integrationType, err)
	}
	return c, nil
}
