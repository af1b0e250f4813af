package breaker

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func setup(t *testing.T) (*Breaker, *clock, *[]string) {
	t.Helper()
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var changes []string
	b := New(Config{Failures: 3, Cooldown: 10 * time.Second, Now: c.Now,
		OnChange: func(from, to State) { changes = append(changes, from.String()+"->"+to.String()) }})
	return b, c, &changes
}

func call(t *testing.T, b *Breaker, r Result) {
	t.Helper()
	done, wait := b.Acquire()
	require.Zero(t, wait, "the call should be let through")
	require.NotNil(t, done)
	done(r)
}

func TestOpensAfterConsecutiveFailures(t *testing.T) {
	t.Parallel()
	b, c, changes := setup(t)
	call(t, b, Failure)
	call(t, b, Failure)
	call(t, b, Success) // resets the run
	call(t, b, Failure)
	call(t, b, Failure)
	assert.Equal(t, Closed, b.State(), "two in a row is under the threshold")
	call(t, b, Failure)
	assert.Equal(t, Open, b.State())

	done, wait := b.Acquire()
	assert.Nil(t, done, "no call while open")
	assert.Equal(t, 10*time.Second, wait, "wait is the rest of the cool-off")
	c.Add(4 * time.Second)
	_, wait = b.Acquire()
	assert.Equal(t, 6*time.Second, wait)
	assert.Equal(t, []string{"closed->open"}, *changes)
}

func TestHalfOpenLetsOneProbe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		probe Result
		want  State
	}{
		{"probe succeeds: closed", Success, Closed},
		{"probe fails: open again for a full cool-off", Failure, Open},
		{"probe says nothing: the next caller probes", Ignore, Open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, c, _ := setup(t)
			for range 3 {
				call(t, b, Failure)
			}
			c.Add(10 * time.Second)
			probe, wait := b.Acquire()
			require.Zero(t, wait)
			require.NotNil(t, probe)
			assert.Equal(t, HalfOpen, b.State())
			other, wait := b.Acquire()
			assert.Nil(t, other, "only one probe at a time")
			assert.Positive(t, wait)

			probe(tc.probe)
			probe(Failure) // a second report is ignored
			assert.Equal(t, tc.want, b.State())
			switch tc.probe {
			case Success:
				call(t, b, Success)
			case Failure:
				_, wait := b.Acquire()
				assert.Equal(t, 10*time.Second, wait)
			case Ignore:
				next, wait := b.Acquire()
				assert.Zero(t, wait)
				assert.NotNil(t, next, "the next caller becomes the probe")
				assert.Equal(t, HalfOpen, b.State())
			}
		})
	}
}

func TestLateReportsDoNotMoveIt(t *testing.T) {
	t.Parallel()
	b, c, _ := setup(t)
	// Five calls in flight when the marketplace goes down.
	var inflight []func(Result)
	for range 5 {
		done, _ := b.Acquire()
		inflight = append(inflight, done)
	}
	for _, d := range inflight[:3] {
		d(Failure)
	}
	require.Equal(t, Open, b.State())
	c.Add(5 * time.Second)
	inflight[3](Failure)
	inflight[4](Success)
	assert.Equal(t, Open, b.State(), "reports of calls begun before it opened change nothing")
	_, wait := b.Acquire()
	assert.Equal(t, 5*time.Second, wait, "and do not extend the cool-off")
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	b := New(Config{Failures: 2, Cooldown: time.Millisecond})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 500 {
				if done, _ := b.Acquire(); done != nil {
					done(Result((i + j) % 3))
				}
			}
		})
	}
	wg.Wait()
}
