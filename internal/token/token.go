// Package token holds the domain of the token refresher: a marketplace
// connection, the token it carries, the provider contract that renews it and
// the errors that tell a permanent failure from a transient one. It imports
// nothing of the project, so every adapter (MySQL, HTTP, asynq) depends on it
// and never on each other.
package token

import (
	"context"
	"time"
)

// Connection is one seller's connection to a marketplace, as the refresher
// needs it. InputFields, AccessToken and RefreshToken are secrets: they are
// never logged, never put in a task payload and never quoted in an error.
type Connection struct {
	ID              int64
	IntegrationType string
	// InputFields is the raw JSON object of the connection's credentials.
	InputFields  []byte
	AccessToken  string
	RefreshToken string
	// ExpiresAt is when the stored access token expires; nil when no token
	// was ever generated (a NULL or zero DATETIME).
	ExpiresAt *time.Time
}

// DueAt reports whether the connection must be refreshed at now, given how
// long before expiry a token is renewed, its lifetime unknown.
func (c Connection) DueAt(now time.Time, refreshBefore time.Duration) bool {
	return Due(c.ExpiresAt, now, refreshBefore, 0)
}

// LeadDivisor: a token is renewed when at most 1/LeadDivisor of its
// lifetime is left (Lead is at most lifetime / LeadDivisor). A third sits
// between kubelet (renews at 80% of the lifetime) and Vault (about two
// thirds), and leaves the retries of a failed refresh (whose backoff is kept
// within a quarter of the time left: refresh.RetryLeftDivisor) two thirds of
// the window to heal in.
const LeadDivisor = 3

// Lead is how long before expiry a token is renewed: refreshBefore, capped
// at a third of the token's lifetime when that is known (lifetime > 0). A
// marketplace whose tokens live shorter than refreshBefore is then called
// once per token, a third of its lifetime before expiry, instead of on
// every scan.
func Lead(refreshBefore, lifetime time.Duration) time.Duration {
	if lifetime > 0 && lifetime/LeadDivisor < refreshBefore {
		return lifetime / LeadDivisor
	}
	return refreshBefore
}

// RefreshAt is when a token expiring at expiresAt, of the given lifetime (0:
// unknown), is to be renewed.
func RefreshAt(expiresAt time.Time, refreshBefore, lifetime time.Duration) time.Time {
	return expiresAt.Add(-Lead(refreshBefore, lifetime))
}

// Due is the one definition of "due": no token yet (nil or zero expiry), or
// a token that expires before now + Lead(refreshBefore, lifetime). With the
// lifetime unknown (0) it is "expires before now + refreshBefore", which is
// what the store's SQL predicates compute (DueBefore); a known lifetime only
// ever makes a connection due later, so the SQL selects a superset that the
// scan narrows with this function (internal/scan).
func Due(expiresAt *time.Time, now time.Time, refreshBefore, lifetime time.Duration) bool {
	return expiresAt == nil || expiresAt.IsZero() || expiresAt.Before(now.Add(Lead(refreshBefore, lifetime)))
}

// MaxSpread bounds Spread.
const MaxSpread = 10 * time.Second

// Spread is how much earlier than its refresh point (RefreshAt) a scheduled
// refresh may run: a tenth of the lead, at most MaxSpread. Scheduled
// refreshes are jittered over it, so tokens issued in the same second (a
// fleet refreshed after an outage) reach the marketplace spread over up to
// ten seconds; running early, never late, keeps every token's full lead.
func Spread(lead time.Duration) time.Duration { return min(lead/10, MaxSpread) }

// DueBefore is the bound of the store's "due" SQL: a row is due when its
// expiry is NULL, zero or earlier than it (Due with the lifetime unknown).
func DueBefore(now time.Time, refreshBefore time.Duration) time.Time { return now.Add(refreshBefore) }

// Token is what a provider hands back.
type Token struct {
	AccessToken string
	// RefreshToken is empty when the provider issued none; the stored one is
	// then kept.
	RefreshToken string
	ExpiresAt    time.Time
}

// Provider renews the token of one connection. Implementations return a
// *Failure (possibly wrapped) for every error, so the caller can tell
// permanent from transient without parsing text.
type Provider interface {
	Refresh(ctx context.Context, c Connection) (Token, error)
}

// Target is one providers-file entry as the scan, the census and the
// refresh see it: the integration type whose connections it renews, its
// provider kind (a metric label, a log field) and how long before expiry its
// tokens are due (token.Due). registry.Entry.Target makes it.
type Target struct {
	IntegrationType string
	Kind            string
	RefreshBefore   time.Duration
	// Lifetime is the lifetime of every token the marketplace issues, when
	// its kind fixes it (token_ttl: expiry = obtained-at + Lifetime); zero
	// when each answer says (OAuth's expires_in).
	Lifetime time.Duration
}

// OwnClock reports whether a token of the target may be refreshed on its
// own clock, that is whether its lifetime may move its refresh point
// (Lead). It is false when every token of the target lives at least
// LeadDivisor × RefreshBefore: such a token is due at RefreshBefore, no
// lifetime is ever recorded for it, and nothing needs to look one up.
func (t Target) OwnClock() bool {
	return t.Lifetime <= 0 || Lead(t.RefreshBefore, t.Lifetime) < t.RefreshBefore
}

// DueConnection is what the scanner sees of a due connection: identifiers and
// the expiry that made it due, never a secret.
type DueConnection struct {
	ID              int64
	IntegrationType string
	ExpiresAt       *time.Time
}

// ScanStats counts what one pass over an integration type's connections saw.
type ScanStats struct {
	Active int   // active connection ids read from channels
	Due    int   // due and active connections
	BadIDs int   // channel rows whose connectionId is not a number
	LastID int64 // the highest active connection id read (0: none)
}
