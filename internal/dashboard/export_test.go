package dashboard

import "time"

// SetClock replaces the clock of d's failed-login throttle.
func SetClock(d *Dashboard, now func() time.Time) { d.throttle.now = now }
