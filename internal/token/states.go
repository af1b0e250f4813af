package token

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
