package token

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotFound means the connection does not exist or is not active.
var ErrNotFound = errors.New("connection not found or not active")

// ErrStale means the guarded write found the row changed since it was read:
// another worker stored a newer token first. The token in hand is dropped.
var ErrStale = errors.New("connection changed since it was read; newer token kept")

// ErrUnwritable marks a store error that says the database cannot take a
// write now, for every connection alike: a read-only server (MySQL errors
// 1290, 1792, 1836: a demoted primary, a maintenance window), an
// unreachable or silent server (a lost connection, a timeout), or one that
// refuses this user. A store wraps it (errors.Is) around such errors; an
// error of one row (a deadlock, a value the column refuses) does not carry
// it. A refresher that sees it stops calling marketplaces until a write
// succeeds again (internal/refresh), because a token issued then could not
// be stored.
var ErrUnwritable = errors.New("the database refuses writes")

// Failure is a refresh that did not produce a token. Reason is written for
// operators and is shown in the dashboard: it never holds a secret, a full URL
// with credentials, or a response body.
type Failure struct {
	// Permanent failures (credentials rejected, malformed inputFields) are not
	// retried in a loop; transient ones (network, timeout, 5xx, 429, garbage)
	// are retried with backoff until they heal.
	Permanent bool
	Reason    string
	// Status is the marketplace's HTTP status, 0 when no answer was read.
	Status int
	// RetryAfter is the marketplace's Retry-After, 0 when it gave none.
	RetryAfter time.Duration
	// Unusable marks a transient failure whose answer the product cannot
	// place (a 2xx of an unknown shape): it is retried with a backoff that
	// grows to hours, not seconds, and counted apart. Never with Permanent.
	Unusable bool
}

func (f *Failure) Error() string {
	kind := "transient"
	switch {
	case f.Permanent:
		kind = "permanent"
	case f.Unusable:
		kind = "unusable"
	}
	return kind + ": " + f.Reason
}

// Permanent returns a failure that must not be retried until something
// changes (credentials, cooldown, an operator).
func Permanent(format string, args ...any) *Failure {
	return &Failure{Permanent: true, Reason: fmt.Sprintf(format, args...)}
}

// Transient returns a failure that heals by retrying.
func Transient(format string, args ...any) *Failure {
	return &Failure{Reason: fmt.Sprintf(format, args...)}
}

// Unusable returns a transient failure of an answer the product cannot
// place: retried, but with a backoff growing to hours.
func Unusable(format string, args ...any) *Failure {
	return &Failure{Unusable: true, Reason: fmt.Sprintf(format, args...)}
}

// IsUnusable reports whether err is, or wraps, an unusable-answer failure.
func IsUnusable(err error) bool {
	var f *Failure
	return errors.As(err, &f) && f.Unusable && !f.Permanent
}

// IsPermanent reports whether err is, or wraps, a permanent failure.
func IsPermanent(err error) bool {
	var f *Failure
	return errors.As(err, &f) && f.Permanent
}

// RetryAfter returns the delay the marketplace asked for, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var f *Failure
	if errors.As(err, &f) && f.RetryAfter > 0 {
		return f.RetryAfter, true
	}
	return 0, false
}
