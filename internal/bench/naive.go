package bench

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/internal/sandbox"
)

// NaiveResult is figure 4: the seed document's flow done literally, one
// connection after another, on the product's data and sandbox.
type NaiveResult struct {
	N       int
	Rates   []float64 // at 0 ms
	SlowN   int
	Latency time.Duration
	Slow    []float64 // at Latency
}

func (r *runner) naiveSection(ctx context.Context, rep *Report) error {
	main := r.sz.mainFleet()
	res := NaiveResult{N: min(r.sz.naiveN, main.N), SlowN: r.sz.naiveSlow.N, Latency: r.sz.naiveSlow.Latency}
	for run := range r.cfg.Runs {
		rate, err := r.naive(ctx, main.sub(res.N), 0)
		if err != nil {
			return err
		}
		slow, err := r.naive(ctx, main.sub(res.SlowN), res.Latency)
		if err != nil {
			return err
		}
		res.Rates = append(res.Rates, rate)
		res.Slow = append(res.Slow, slow)
		r.logf("naive run %d: %.0f/s at 0 ms, %.1f/s at %s", run+1, rate, slow, res.Latency)
	}
	rep.Naive = res
	return nil
}

// naive refreshes f's connections the way the seed document describes it,
// step by step on one database connection per database:
//
//  1. SELECT DISTINCT connectionId FROM channels WHERE integrationType = ? AND status = '0'
//  2. SELECT id, inputFields, accessTokenExpiryAt FROM ie_appinstall_connection WHERE id IN (all of them) AND isActive = 'active'
//  3. for each due row: POST {username, password} to /authToken, then UPDATE the row.
//
// The seed's UPDATE has no WHERE clause; this one updates the row by id
// (written literally it would overwrite every connection).
func (r *runner) naive(ctx context.Context, f fleet, latency time.Duration) (float64, error) {
	if err := r.env.reset(ctx, f); err != nil {
		return 0, err
	}
	wms, err := sqlx.Open("mysql", r.env.wmsDSN)
	if err != nil {
		return 0, err
	}
	defer wms.Close()
	// The product's driver settings, so the figure compares the flows.
	ie, err := sqlx.Open("mysql", r.env.productIE)
	if err != nil {
		return 0, err
	}
	defer ie.Close()
	wms.SetMaxOpenConns(1)
	ie.SetMaxOpenConns(1)
	if err := wms.PingContext(ctx); err != nil {
		return 0, err
	}
	if err := ie.PingContext(ctx); err != nil {
		return 0, err
	}
	st := r.market.reset(sandbox.Faults{Latency: latency}, 0)
	client := &http.Client{Timeout: 10 * time.Second}

	start := time.Now()
	var ids []string
	// The fleet shares its integration type with nothing else; the id range
	// only narrows it to the connections of this figure.
	if err := wms.SelectContext(ctx, &ids, `SELECT DISTINCT connectionId AS connectionIds FROM channels
		WHERE integrationType = ? AND channels.status = '0' AND connectionId BETWEEN ? AND ?`,
		f.Type, f.First, f.last()); err != nil {
		return 0, err
	}
	var rows []struct {
		ID          int64        `db:"connectionId"`
		InputFields string       `db:"inputFields"`
		ExpiresAt   sql.NullTime `db:"accessTokenExpiryAt"`
	}
	if err := ie.SelectContext(ctx, &rows, `SELECT ie_appinstall_connection.id AS connectionId,
		ie_appinstall_connection.inputFields AS inputFields,
		ie_appinstall_connection.accessTokenExpiryAt AS accessTokenExpiryAt
		FROM ie_appinstall_connection WHERE ie_appinstall_connection.id IN (`+strings.Join(ids, ",")+`)
		AND ie_appinstall_connection.isActive = 'active'`); err != nil {
		return 0, err
	}
	for _, row := range rows {
		if row.ExpiresAt.Valid && !row.ExpiresAt.Time.Before(time.Now().Add(10*time.Minute)) {
			continue
		}
		var creds struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if err := json.Unmarshal([]byte(row.InputFields), &creds); err != nil {
			return 0, err
		}
		body, _ := json.Marshal(creds)
		resp, err := client.Post(r.market.url+"/authToken", "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		var out struct {
			Success bool `json:"success"`
			Result  struct {
				AccessToken  string `json:"accessToken"`
				RefreshToken string `json:"refreshToken"`
			} `json:"result"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
		resp.Body.Close()
		if err != nil || !out.Success {
			return 0, fmt.Errorf("naive refresh of %d: %v (success %v)", row.ID, err, out.Success)
		}
		if _, err := ie.ExecContext(ctx, `UPDATE ie_appinstall_connection
			SET accessToken = ?, refreshToken = ?, accessTokenExpiryAt = ? WHERE id = ?`,
			out.Result.AccessToken, out.Result.RefreshToken, time.Now().UTC().Add(30*time.Minute), row.ID); err != nil {
			return 0, err
		}
	}
	took := time.Since(start)
	if err := r.checkStored(ctx, f, st); err != nil {
		return 0, fmt.Errorf("naive: %w", err)
	}
	return float64(f.N) / took.Seconds(), nil
}
