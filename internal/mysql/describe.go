package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/internal/token"
)

// Describe returns what an operator may see of connection id: its
// integration type (one of integrationTypes), whether it is active, and its
// token's expiry. An inactive connection is described too; one with neither
// a channels row of those types nor an ie_appinstall_connection row is
// token.ErrNotFound. Only identifiers, flags and the expiry are read.
func (s *Store) Describe(ctx context.Context, id int64, integrationTypes []string) (token.Described, error) {
	d := token.Described{ID: id}
	if len(integrationTypes) == 0 {
		return d, token.ErrNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	q, args, err := sqlx.In(`
		SELECT integrationType, status = '0' FROM channels
		WHERE connectionId = ? AND integrationType IN (?)
		ORDER BY status = '0' DESC, integrationType LIMIT 1`, id, integrationTypes)
	if err != nil {
		return d, err
	}
	var channelActive bool
	err = s.wms.QueryRowContext(ctx, q, args...).Scan(&d.IntegrationType, &channelActive)
	if errors.Is(err, sql.ErrNoRows) {
		return d, token.ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("read channel of connection %d: %w", id, err)
	}
	var active bool
	var exp sql.NullTime
	err = s.ie.QueryRowContext(ctx, `
		SELECT isActive = 'active', accessTokenExpiryAt FROM ie_appinstall_connection WHERE id = ?`, id).
		Scan(&active, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return d, nil // a channel without a connection row: not active, no token
	}
	if err != nil {
		return d, fmt.Errorf("read connection %d: %w", id, err)
	}
	d.Active = channelActive && active
	if exp.Valid && !exp.Time.IsZero() {
		t := exp.Time
		d.ExpiresAt = &t
	}
	return d, nil
}

// DuePage reads one page of the active connections of an integration type
// after the id after (exclusive) and returns the due ones among them (expiry
// NULL, zero or before dueBefore, the scan's query), ordered by id, with the
// cursor of the next page (nil after the last page). A page covers
// Options.ChunkSize active ids, so it may hold no due connection at all.
func (s *Store) DuePage(ctx context.Context, integrationType string, dueBefore time.Time, after int64) ([]token.DueConnection, *int64, error) {
	ids, next, _, err := s.activeIDs(ctx, integrationType, after)
	if err != nil || len(ids) == 0 {
		return nil, next, err
	}
	due, err := s.dueAmong(ctx, integrationType, ids, dueBefore)
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(due, func(a, b token.DueConnection) int { return cmp.Compare(a.ID, b.ID) })
	return due, next, nil
}
