package token

import (
	"errors"
	"fmt"
	"strings"
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

// Class is what a failure comes to: how the product treats it. It is the
// one value every package passes around (the handler's outcome and metric
// label, the archived record, the API, the webhooks); its String is the
// word shown everywhere, and Failure.Error writes it first.
type Class uint8

// The classes of a failure. The zero Class is Transient: a failure nobody
// classified is retried.
const (
	// ClassTransient failures (network, timeout, 5xx, 429, garbage) are
	// retried with backoff until they heal.
	ClassTransient Class = iota
	// ClassPermanent failures (credentials rejected, malformed
	// inputFields) are not retried in a loop: they are archived with
	// their reason and tried again after FAILURE_COOLDOWN, when the
	// credentials change, or by an operator.
	ClassPermanent
	// ClassUnusable failures are transient ones whose answer the product
	// cannot place (a 2xx of an unknown shape): retried with a backoff that
	// grows to hours, not seconds, and counted apart.
	ClassUnusable
)

// Classes are the classes of a failure, in the order of their values.
var Classes = []Class{ClassTransient, ClassPermanent, ClassUnusable}

var classWords = [...]string{ClassTransient: "transient", ClassPermanent: "permanent", ClassUnusable: "unusable"}

// String is the class's word: "transient", "permanent" or "unusable".
func (c Class) String() string {
	if int(c) < len(classWords) {
		return classWords[c]
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// ParseClass returns the class whose word (String) is word.
func ParseClass(word string) (Class, bool) {
	for _, c := range Classes {
		if c.String() == word {
			return c, true
		}
	}
	return 0, false
}

// MarshalText writes the class's word, so a record holding a Class reads
// "permanent", not a number.
func (c Class) MarshalText() ([]byte, error) {
	if int(c) >= len(classWords) {
		return nil, fmt.Errorf("token: no failure class %d", int(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads a class's word.
func (c *Class) UnmarshalText(b []byte) error {
	v, ok := ParseClass(string(b))
	if !ok {
		return fmt.Errorf("token: %q is no failure class", b)
	}
	*c = v
	return nil
}

// Failure is a refresh that did not produce a token. Reason is written for
// operators and is shown in the dashboard: it never holds a secret, a full URL
// with credentials, or a response body.
type Failure struct {
	// Class says how the failure is treated: retried (transient, unusable)
	// or archived (permanent).
	Class  Class
	Reason string
	// Status is the marketplace's HTTP status, 0 when no answer was read.
	Status int
	// RetryAfter is the marketplace's Retry-After, 0 when it gave none.
	RetryAfter time.Duration
}

// Error is "<class>: <reason>" ("permanent: ajio rejected the credentials
// (success:false, statusCode 401)"). It is what asynq keeps as a task's
// last error; ParseFailure reads it back.
func (f *Failure) Error() string {
	return f.Class.String() + ": " + f.Reason
}

// ParseFailure reads back the text Failure.Error writes: the class and the
// reason. ok is false when s does not start with a class's word and ": ".
// It is the only reader of that text: a failure's class otherwise travels
// as a Class. Its readers are the ones of failures already stored as text
// (asynq's last error of a task, the records archived before they held a
// class).
func ParseFailure(s string) (c Class, reason string, ok bool) {
	word, reason, found := strings.Cut(s, ": ")
	if !found {
		return 0, "", false
	}
	if c, ok = ParseClass(word); !ok {
		return 0, "", false
	}
	return c, reason, true
}

// Fail returns a failure of class c.
func Fail(c Class, format string, args ...any) *Failure {
	return &Failure{Class: c, Reason: fmt.Sprintf(format, args...)}
}

// Permanent returns a failure that must not be retried until something
// changes (credentials, cooldown, an operator).
func Permanent(format string, args ...any) *Failure {
	return Fail(ClassPermanent, format, args...)
}

// Transient returns a failure that heals by retrying.
func Transient(format string, args ...any) *Failure {
	return Fail(ClassTransient, format, args...)
}

// Unusable returns a transient failure of an answer the product cannot
// place: retried, but with a backoff growing to hours.
func Unusable(format string, args ...any) *Failure {
	return Fail(ClassUnusable, format, args...)
}

// ClassOf is the class of the failure err is or wraps, and ClassTransient
// for any other error: a provider must classify its errors, and an
// unclassified one is retried.
func ClassOf(err error) Class {
	var f *Failure
	if errors.As(err, &f) {
		return f.Class
	}
	return ClassTransient
}

// IsUnusable reports whether err is, or wraps, an unusable-answer failure.
func IsUnusable(err error) bool {
	var f *Failure
	return errors.As(err, &f) && f.Class == ClassUnusable
}

// IsPermanent reports whether err is, or wraps, a permanent failure.
func IsPermanent(err error) bool {
	var f *Failure
	return errors.As(err, &f) && f.Class == ClassPermanent
}

// RetryAfter returns the delay the marketplace asked for, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var f *Failure
	if errors.As(err, &f) && f.RetryAfter > 0 {
		return f.RetryAfter, true
	}
	return 0, false
}
