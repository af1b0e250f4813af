package token

import "time"

// StateCounts counts the active connections of one integration type by the
// state of their stored token at one moment. Every active connection is in
// exactly one of the three.
type StateCounts struct {
	Fresh   int // expires after the refresh window opens: nothing to do yet
	Due     int // inside the refresh window, still valid
	Expired int // already expired, or never generated: a lapse
	// ExpiredFailing is how many of Expired wait for their credentials to
	// be fixed (their refresh failed permanently): a lapse the service
	// cannot heal on its own.
	ExpiredFailing int
}

// Active is the number of active connections counted.
func (c StateCounts) Active() int { return c.Fresh + c.Due + c.Expired }

// State is what an operator sees of one connection: its token's state, or
// failing when its last refresh failed permanently (failing overrides the
// token's state).
type State string

// The states of a connection.
const (
	StateFresh   State = "fresh"   // expires after the refresh window opens
	StateDue     State = "due"     // inside the refresh window, still valid
	StateExpired State = "expired" // expired (at or before now) or never generated
	StateFailing State = "failing" // the refresh failed permanently (an archived task)
)

// StateAt classifies a stored expiry at now with the one definition of due
// (Due, the lifetime unknown, as the census counts), splitting due tokens into still valid and expired as the census
// counts them (internal/mysql CountStates): expired is NULL, zero or at or
// before now.
func StateAt(expiresAt *time.Time, now time.Time, refreshBefore time.Duration) State {
	switch {
	case !Due(expiresAt, now, refreshBefore, 0):
		return StateFresh
	case expiresAt == nil || expiresAt.IsZero() || !expiresAt.After(now):
		return StateExpired
	default:
		return StateDue
	}
}

// Described is what an operator may see of one connection: identifiers,
// whether it is active, and its token's expiry; never a secret.
type Described struct {
	ID              int64
	IntegrationType string
	// Active: a channels row with status '0' and an
	// ie_appinstall_connection row with isActive 'active'.
	Active bool
	// ExpiresAt is nil when no token was ever generated.
	ExpiresAt *time.Time
}
