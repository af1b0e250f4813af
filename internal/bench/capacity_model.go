package bench

import (
	"math"
	"time"
)

// The capacity model of figure 10 (make bench-capacity): what a fleet of
// connections costs Redis, MariaDB and the product's processes, from unit
// costs measured on a small fleet. It is plain arithmetic, kept apart from
// the run so that docs/capacity.md can cite it and a test pins it.

// UnitCosts are what one refresh costs, what the processes cost with
// nothing due, and what a full pass over the fleet costs per connection.
// CPU figures are in CPU seconds; Background figures are per second of
// wall time.
type UnitCosts struct {
	// Per refresh, the idle background subtracted.
	RedisCommands  float64 // total_commands_processed (scripts' commands included)
	RedisCPU       float64 // INFO cpu used_cpu_user + used_cpu_sys
	ScanQueries    float64 // the scanner's statements (between full passes)
	ScanRows       float64 // rows the scanner read (between full passes)
	RefreshQueries float64 // the refreshers' statements
	RefreshRows    float64 // rows the refreshers read
	RefresherCPU   float64 // the refresher processes' user+system time
	ScannerCPU     float64 // the scanner process's user+system time
	MariaDBCPU     float64 // the mariadbd process's user+system time

	// Per connection, of a full pass (the scanner's first one, its
	// start included).
	FullPassQueries float64
	FullPassRows    float64
	FullPassCPU     float64 // the scanner's

	// Redis memory per task waiting in the queue. Nothing is modelled
	// per connection once its refresh is over: figure 9 measured nothing
	// kept, and the first 1,000,000-connection run of this figure kept
	// 6.6 kB in all where phase 1's 16 bytes a connection predicted 16 MB.
	BytesPerTask float64

	// Background is the idle rate, per second, with one scanner and one
	// refresher running and nothing due.
	Background Background
}

// Background is what the processes cost per second with nothing due.
type Background struct {
	RedisCommands float64
	RedisCPU      float64 // cores
	MariaDBCPU    float64 // cores
	ScanQueries   float64
	ScanRows      float64
	ScannerCPU    float64 // cores
	// Per refresher replica.
	RefreshQueries float64
	RefreshRows    float64
	RefresherCPU   float64 // cores
}

// CapacityModel predicts a fleet's rates from UnitCosts. Replicas is the
// number of refresher processes (each adds its idle background; 0 counts
// as 1); ScanInterval and FullScanInterval are the scanner's settings
// (0: the defaults, 1m and 10m).
type CapacityModel struct {
	Unit             UnitCosts
	Replicas         int
	ScanInterval     time.Duration
	FullScanInterval time.Duration
}

// Prediction is a fleet's steady state: rates per second averaged over a
// token generation, cores, and the queue's peak.
type Prediction struct {
	Connections int
	TTL, Before time.Duration // Before is the effective refresh_before
	Generation  time.Duration // TTL − Before: every connection is refreshed once in it
	Refreshes   float64       // R, per second

	RedisCommands  float64 // per second
	RedisCores     float64
	ScanQueries    float64 // per second, full passes amortized
	ScanRows       float64
	RefreshQueries float64
	RefreshRows    float64
	RefresherCores float64 // all replicas
	ScannerCores   float64
	MariaDBCores   float64

	PeakPending    float64 // tasks waiting at once: one SCAN_INTERVAL of refreshes
	RedisPeakBytes float64 // PeakPending × BytesPerTask
	Lapses         int     // tokens expired before their renewal: 0 while the rates are sustained
}

// Default scanner settings (the scanner's --help).
const (
	defaultScanInterval     = time.Minute
	defaultFullScanInterval = 10 * time.Minute
)

// EffectiveBefore is when a token falls due before its expiry: its
// refresh_before, or a third of its lifetime when that is shorter
// (docs/settings.md).
func EffectiveBefore(ttl, before time.Duration) time.Duration {
	return min(before, ttl/3)
}

// Generation is the time over which a fleet whose expiries are spread
// evenly refreshes every connection once: ttl less the effective
// refresh_before.
func Generation(ttl, before time.Duration) time.Duration {
	return ttl - EffectiveBefore(ttl, before)
}

func (m CapacityModel) replicas() int { return max(1, m.Replicas) }

func (m CapacityModel) scanInterval() time.Duration {
	if m.ScanInterval > 0 {
		return m.ScanInterval
	}
	return defaultScanInterval
}

func (m CapacityModel) fullScanInterval() time.Duration {
	if m.FullScanInterval > 0 {
		return m.FullScanInterval
	}
	return defaultFullScanInterval
}

// Predict is the steady state of connections tokens living ttl, refreshed
// refresh_before (before) ahead of expiry, their expiries spread evenly.
func (m CapacityModel) Predict(connections int, ttl, before time.Duration) Prediction {
	u, bg := m.Unit, m.Unit.Background
	k := float64(m.replicas())
	p := Prediction{Connections: connections, TTL: ttl, Before: EffectiveBefore(ttl, before), Generation: Generation(ttl, before)}
	n := float64(connections)
	if p.Generation > 0 {
		p.Refreshes = n / p.Generation.Seconds()
	}
	r := p.Refreshes
	full := n / m.fullScanInterval().Seconds() // connections a second the full passes read, amortized
	p.RedisCommands = r*u.RedisCommands + bg.RedisCommands
	p.RedisCores = r*u.RedisCPU + bg.RedisCPU
	p.ScanQueries = r*u.ScanQueries + bg.ScanQueries + full*u.FullPassQueries
	p.ScanRows = r*u.ScanRows + bg.ScanRows + full*u.FullPassRows
	p.RefreshQueries = r*u.RefreshQueries + k*bg.RefreshQueries
	p.RefreshRows = r*u.RefreshRows + k*bg.RefreshRows
	p.RefresherCores = r*u.RefresherCPU + k*bg.RefresherCPU
	p.ScannerCores = r*u.ScannerCPU + bg.ScannerCPU + full*u.FullPassCPU
	p.MariaDBCores = r*u.MariaDBCPU + bg.MariaDBCPU
	p.PeakPending = r * m.scanInterval().Seconds()
	p.RedisPeakBytes = p.PeakPending * u.BytesPerTask
	return p
}

// Queries is the statements a second of the scanner and the refreshers.
func (p Prediction) Queries() float64 { return p.ScanQueries + p.RefreshQueries }

// Rows is the rows read a second of the scanner and the refreshers.
func (p Prediction) Rows() float64 { return p.ScanRows + p.RefreshRows }

// ReplicasFor is how many refresher processes of cores CPUs each, busy at
// most utilization (0.7: 70%), carry p's refreshes: each spends its idle
// background, the rest goes to refreshes. 0 when one replica's idle
// background alone exceeds its budget.
func (m CapacityModel) ReplicasFor(p Prediction, cores, utilization float64) int {
	room := cores*utilization - m.Unit.Background.RefresherCPU
	if room <= 0 {
		return 0
	}
	return max(1, int(math.Ceil(p.Refreshes*m.Unit.RefresherCPU/room)))
}

// RedisLimit is the refresh rate (per second) at which one Redis spends
// cores CPU (Redis runs commands on one thread: 0.8 leaves it room).
func (m CapacityModel) RedisLimit(cores float64) float64 {
	if m.Unit.RedisCPU <= 0 {
		return math.Inf(1)
	}
	return max(0, (cores-m.Unit.Background.RedisCPU)/m.Unit.RedisCPU)
}

// ConnectionsAt is the fleet whose tokens (ttl, before) fall due at rate
// refreshes a second.
func ConnectionsAt(rate float64, ttl, before time.Duration) float64 {
	return rate * Generation(ttl, before).Seconds()
}

// ModelError is (predicted − measured) ÷ measured, in percent (NaN when
// nothing was measured).
func ModelError(predicted, measured float64) float64 {
	if measured == 0 {
		if predicted == 0 {
			return 0
		}
		return math.NaN()
	}
	return (predicted - measured) / measured * 100
}
