package scan_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

// seedFleet inserts n active connections of type 16, every tenth of them
// due, in multi-row INSERTs.
func seedFleet(b *testing.B, env *testenv.Env, n int) (due int) {
	b.Helper()
	now := time.Now().UTC()
	fresh := now.Add(time.Hour).Format(time.DateTime)
	expired := now.Add(-time.Hour).Format(time.DateTime)
	const batch = 2000
	for start := 1; start <= n; start += batch {
		var ch, conn strings.Builder
		ch.WriteString("INSERT INTO channels (connectionId, integrationType, status) VALUES ")
		conn.WriteString("INSERT INTO ie_appinstall_connection (id, inputFields, accessTokenExpiryAt, isActive) VALUES ")
		for i := start; i < start+batch && i <= n; i++ {
			if i > start {
				ch.WriteByte(',')
				conn.WriteByte(',')
			}
			fmt.Fprintf(&ch, "(%d,'16','0')", i)
			exp := fresh
			if i%10 == 0 {
				exp = expired
				due++
			}
			fmt.Fprintf(&conn, `(%d,'{"username":"s%d@sandbox.test","password":"x"}','%s','active')`, i, i, exp)
		}
		env.WMS.MustExec(ch.String())
		env.IE.MustExec(conn.String())
	}
	return due
}

// BenchmarkScan measures one full scan of a fleet of 100,000 active
// connections of which 10,000 are due: the chunked MySQL read alone
// (dry run), and the read plus one asynq enqueue per due connection.
func BenchmarkScan(b *testing.B) {
	env := testenv.New(b)
	const n = 100_000
	due := seedFleet(b, env, n)
	store, err := mysql.Open(context.Background(), env.WMSDSN, env.IEDSN, mysql.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	targets := []token.Target{{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}}

	b.Run("read-only", func(b *testing.B) {
		s := scan.New(store, nil, scan.Config{Targets: targets, DryRun: true}, zap.NewNop(), nil)
		for b.Loop() {
			res, err := s.RunOnce(context.Background())
			if err != nil || res[0].Due != due {
				b.Fatalf("scan: %v, due %d, want %d", err, res[0].Due, due)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "connections/s")
	})
	for _, conc := range []int{16, 64} {
		b.Run(fmt.Sprintf("enqueue-concurrency-%d", conc), func(b *testing.B) {
			round := 0
			for b.Loop() {
				// A fresh queue per round, so every due connection is new
				// work; testenv drops them all (same name prefix).
				b.StopTimer()
				round++
				q := task.NewQueue(env.Redis, fmt.Sprintf("%s_c%d_%d", env.Queue, conc, round), time.Minute)
				s := scan.New(store, q, scan.Config{Targets: targets, Concurrency: conc}, zap.NewNop(), nil)
				b.StartTimer()
				res, err := s.RunOnce(context.Background())
				if err != nil || res[0].Enqueued != due {
					b.Fatalf("scan: %v, enqueued %d, want %d", err, res[0].Enqueued, due)
				}
			}
			b.ReportMetric(float64(due)*float64(b.N)/b.Elapsed().Seconds(), "enqueued/s")
		})
	}
}
