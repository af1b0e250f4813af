package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/sharedenv"
	"github.com/eshopbox/token-refresher/internal/task"
)

// productDBConns is the refresher's default DB_MAX_OPEN_CONNS.
const productDBConns = 32

// PartRow is one piece of a refresh measured alone, at figure 2's
// concurrency, in the same run: Rates[i] is operations per second in run i.
// Floor parts are those no refresh can avoid; they compose the ceiling.
type PartRow struct {
	Key   string
	Name  string
	Floor bool
	Rates []float64
}

// Cost is the median wall time per operation in µs at the part's
// concurrency: what one operation costs the machine when the machine does
// only that.
func (p PartRow) Cost() float64 { return 1e6 / median(p.Rates) }

// part returns the row keyed key (nil when not measured).
func (d DrainResult) part(key string) *PartRow {
	for i := range d.Parts {
		if d.Parts[i].Key == key {
			return &d.Parts[i]
		}
	}
	return nil
}

// ceilingOf is run i's composed ceiling in tasks/s: one over the sum of
// the per-task costs of bare asynq dequeue and acknowledge and of each
// floor part, all measured at the same concurrency. Each part alone keeps
// the machine as busy as that concurrency can, so 1/rate is its cost per
// task to the machine; a refresh does them all, one after another per
// worker and side by side across workers, so their costs add.
func (d DrainResult) ceilingOf(i int) float64 {
	if i >= len(d.Bare) {
		return 0
	}
	cost := 1 / d.Bare[i].Rate
	for _, p := range d.Parts {
		if p.Floor && i < len(p.Rates) {
			cost += 1 / p.Rates[i]
		}
	}
	return 1 / cost
}

// Ceiling is the median over runs of the composed ceiling.
func (d DrainResult) Ceiling() float64 {
	v := make([]float64, len(d.Bare))
	for i := range v {
		v[i] = d.ceilingOf(i)
	}
	return median(v)
}

// Ratio is the median over runs of the product's rate over the ceiling
// composed in the same run.
func (d DrainResult) Ratio() float64 {
	v := make([]float64, len(d.Product))
	for i, p := range d.Product {
		v[i] = p.Rate / d.ceilingOf(i)
	}
	return median(v)
}

// Gap is where a refresh's time beyond the ceiling goes, in µs per task
// (medians): Total is the product's cost per task less the ceiling's, and
// Parts the costs of the product's own extra steps measured alone.
type Gap struct {
	Total float64
	Parts []GapPart
}

// GapPart is one extra step of the product's refresh and its cost per task.
type GapPart struct {
	Name string
	Cost float64
}

// Rest is Total less what the parts explain (negative: the parts measured
// alone cost more than the product spent beyond the ceiling).
func (g Gap) Rest() float64 {
	r := g.Total
	for _, p := range g.Parts {
		r -= p.Cost
	}
	return r
}

// Gap composes the refresh's extra steps: the lease (take and release),
// the schedule of the next refresh, and serving
// two queues (urgent and scan) instead of one.
func (d DrainResult) Gap() Gap {
	g := Gap{Total: 1e6/median(rates(d.Product)) - 1e6/d.Ceiling()}
	if p := d.part("lease"); p != nil {
		g.Parts = append(g.Parts, GapPart{"the connection's lease (take and release: Redis round trips)", p.Cost()})
	}
	if p := d.part("schedule"); p != nil {
		g.Parts = append(g.Parts, GapPart{"scheduling the next refresh (Redis writes: lifetime record and wake-up task)", p.Cost()})
	}
	if len(d.BareProductQueues) > 0 && len(d.Bare) > 0 {
		g.Parts = append(g.Parts, GapPart{"serving the urgent and scan queues (1:9) instead of one",
			1e6/median(rates(d.BareProductQueues)) - 1e6/median(rates(d.Bare))})
	}
	return g
}

// measureParts measures each part once at concurrency conc over f's
// connections and appends the rates to rows (created on the first run).
func (r *runner) measureParts(ctx context.Context, f fleet, conc int, rows *[]PartRow) error {
	db, err := sqlx.Open("mysql", r.env.productIE)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(productDBConns)
	db.SetMaxIdleConns(productDBConns)
	if err := warm(ctx, db, productDBConns); err != nil {
		return err
	}
	client := provider.NewHTTPClient(conc)
	defer client.CloseIdleConnections()
	r.market.reset(sandbox.Faults{}, 0)

	leases := lease.New(r.env.rdb, r.env.newQueue("l"), 0)
	sq := r.env.newQueue("s")
	defer r.env.dropQueue(sq)
	sched := task.NewQueue(r.env.rdb, sq, taskTimeout)

	exp := time.Now().UTC().Add(30 * time.Minute).Truncate(time.Second)
	tok := "ajio-at-" + sharedenv.RandomID() + sharedenv.RandomID() + sharedenv.RandomID() + sharedenv.RandomID()
	id := func(i int) int64 { return f.First + int64(i%f.N) }
	parts := []struct {
		key, name string
		floor     bool
		op        func(ctx context.Context, i int) error
	}{
		{"select", "one SELECT by primary key (the refresher's load), " + fmt.Sprint(productDBConns) + " database connections", true,
			func(ctx context.Context, i int) error {
				var row struct {
					ID           int64      `db:"id"`
					InputFields  []byte     `db:"inputFields"`
					RefreshToken *string    `db:"refreshToken"`
					ExpiresAt    *time.Time `db:"accessTokenExpiryAt"`
				}
				return db.GetContext(ctx, &row, `SELECT id, inputFields, refreshToken, accessTokenExpiryAt
					FROM ie_appinstall_connection WHERE id = ? AND isActive = 'active'`, id(i))
			}},
		{"http", "one HTTP call to the sandbox at 0 ms (POST /authToken, provider.NewHTTPClient)", true,
			func(ctx context.Context, i int) error { return r.callSandbox(ctx, client, id(i)) }},
		{"update", "one single-row UPDATE by primary key, " + fmt.Sprint(productDBConns) + " database connections", true,
			func(ctx context.Context, i int) error {
				_, err := db.ExecContext(ctx, `UPDATE ie_appinstall_connection
					SET accessToken = ?, accessTokenExpiryAt = ? WHERE id = ?`, tok, exp, id(i))
				return err
			}},
		{"lease", "take and release a connection's lease (internal/lease)", false,
			func(ctx context.Context, i int) error {
				h, err := leases.Acquire(ctx, id(i), "bench")
				if err != nil {
					return err
				}
				h.Release()
				return nil
			}},
		{"schedule", "schedule a next refresh (task.Queue.Schedule)", false,
			func(ctx context.Context, i int) error {
				e := exp.Add(time.Duration(i) * time.Second)
				return sched.Schedule(ctx, task.Payload{ConnectionID: id(i), IntegrationType: f.Type, DueExpiry: &e},
					30*time.Minute, time.Now().Add(20*time.Minute))
			}},
	}
	for _, p := range parts {
		rate, err := parallel(ctx, conc, f.N, p.op)
		if err != nil {
			return fmt.Errorf("%s: %w", p.key, err)
		}
		i := 0
		for i < len(*rows) && (*rows)[i].Key != p.key {
			i++
		}
		if i == len(*rows) {
			*rows = append(*rows, PartRow{Key: p.key, Name: p.name, Floor: p.floor})
		}
		(*rows)[i].Rates = append((*rows)[i].Rates, rate)
	}
	return nil
}

// callSandbox makes the call a refresh makes to an Ajio-shaped marketplace.
func (r *runner) callSandbox(ctx context.Context, client *http.Client, id int64) error {
	u := username(id)
	body, err := json.Marshal(map[string]string{"username": u, "password": sandbox.Password(u)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.market.url+"/authToken", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sandbox answered %s", resp.Status)
	}
	return nil
}

// warm opens n connections of db before a clock starts.
func warm(ctx context.Context, db *sqlx.DB, n int) error {
	var conns []*sqlx.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := db.Connx(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	return nil
}

// parallel runs op n times from conc goroutines and returns operations per
// second; the first error stops it.
func parallel(ctx context.Context, conc, n int, op func(ctx context.Context, i int) error) (float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				if err := op(ctx, int(i)); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return float64(n) / took.Seconds(), nil
}
