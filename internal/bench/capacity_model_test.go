package bench

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestCapacityModelPredict(t *testing.T) {
	t.Parallel()
	m := CapacityModel{
		Unit: UnitCosts{
			RedisCommands: 24, RedisCPU: 20e-6,
			ScanQueries: 0.01, ScanRows: 1.5, RefreshQueries: 3, RefreshRows: 2,
			RefresherCPU: 400e-6, ScannerCPU: 30e-6, MariaDBCPU: 100e-6,
			FullPassQueries: 0.002, FullPassRows: 2, FullPassCPU: 5e-6,
			BytesPerTask: 500,
			Background: Background{RedisCommands: 45, RedisCPU: 0.002, MariaDBCPU: 0.001, ScanQueries: 2, ScanRows: 1,
				ScannerCPU: 0.001, RefreshQueries: 0.5, RefreshRows: 0.25, RefresherCPU: 0.003},
		},
		Replicas: 2,
	}
	// 1,320,000 connections over a 22-minute generation: 1,000 a second.
	p := m.Predict(1_320_000, 30*time.Minute, 8*time.Minute)
	assert.Equal(t, 8*time.Minute, p.Before)
	assert.Equal(t, 22*time.Minute, p.Generation)
	assert.InDelta(t, 1000, p.Refreshes, 1e-9)
	assert.InDelta(t, 1000*24+45, p.RedisCommands, 1e-6)
	assert.InDelta(t, 0.02+0.002, p.RedisCores, 1e-9)
	full := 1_320_000 / 600.0 // default FULL_SCAN_INTERVAL 10m
	assert.InDelta(t, 10+2+full*0.002, p.ScanQueries, 1e-9)
	assert.InDelta(t, 1500+1+full*2, p.ScanRows, 1e-9)
	assert.InDelta(t, 3000+2*0.5, p.RefreshQueries, 1e-9, "each replica adds its background")
	assert.InDelta(t, 2000+2*0.25, p.RefreshRows, 1e-9)
	assert.InDelta(t, 0.4+2*0.003, p.RefresherCores, 1e-9)
	assert.InDelta(t, 0.03+0.001+full*5e-6, p.ScannerCores, 1e-9)
	assert.InDelta(t, 0.1+0.001, p.MariaDBCores, 1e-9)
	assert.InDelta(t, 60_000, p.PeakPending, 1e-6, "one default SCAN_INTERVAL (1m) of refreshes")
	assert.InDelta(t, 60_000*500, p.RedisPeakBytes, 1e-3)
	assert.Equal(t, 0, p.Lapses)
	assert.InDelta(t, p.ScanQueries+p.RefreshQueries, p.Queries(), 1e-9)
	assert.InDelta(t, p.ScanRows+p.RefreshRows, p.Rows(), 1e-9)

	// A short token is due a third of its lifetime before expiry.
	q := m.Predict(3600, 30*time.Minute, 20*time.Minute)
	assert.Equal(t, 10*time.Minute, q.Before)
	assert.InDelta(t, 3, q.Refreshes, 1e-9)

	// Settings given replace the defaults.
	m2 := m
	m2.ScanInterval, m2.FullScanInterval = 30*time.Second, 20*time.Minute
	r := m2.Predict(1_320_000, 30*time.Minute, 8*time.Minute)
	assert.InDelta(t, 30_000, r.PeakPending, 1e-6)
	assert.InDelta(t, 1500+1+1100*2, r.ScanRows, 1e-9)
}

func TestCapacityModelLimits(t *testing.T) {
	t.Parallel()
	m := CapacityModel{Unit: UnitCosts{RedisCPU: 20e-6, RefresherCPU: 400e-6,
		Background: Background{RedisCPU: 0.002, RefresherCPU: 0.004}}}
	// 0.8 core less 0.002 idle, at 20 µs a refresh.
	assert.InDelta(t, 39_900, m.RedisLimit(0.8), 1e-6)
	// 2 cores at 70%: 1.4 − 0.004 = 1.396 cores for refreshes, 0.4 ms each.
	p := Prediction{Refreshes: 3489}
	assert.Equal(t, 1, m.ReplicasFor(p, 2, 0.7))
	p.Refreshes = 3491 // 3,490 is the edge
	assert.Equal(t, 2, m.ReplicasFor(p, 2, 0.7))
	p.Refreshes = 0.1
	assert.Equal(t, 1, m.ReplicasFor(p, 2, 0.7), "at least one")
	assert.Equal(t, 0, CapacityModel{Unit: UnitCosts{Background: Background{RefresherCPU: 2}}}.ReplicasFor(p, 2, 0.7))
	assert.True(t, math.IsInf(CapacityModel{}.RedisLimit(0.8), 1))

	assert.InDelta(t, 39_900*20*60, ConnectionsAt(39_900, 30*time.Minute, 10*time.Minute), 1e-6)
	assert.Equal(t, 50*time.Minute, Generation(time.Hour, 10*time.Minute))
	assert.InDelta(t, 10, ModelError(110, 100), 1e-9)
	assert.InDelta(t, -50, ModelError(50, 100), 1e-9)
	assert.Equal(t, 0.0, ModelError(0, 0))
	assert.True(t, math.IsNaN(ModelError(1, 0)))
}
