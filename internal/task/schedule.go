package task

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// TypeWake is the asynq task type of a scheduled refresh: at its time it
// enqueues the connection's refresh task (ID), so the refresh itself runs
// under the one id the scan and the API use, and their dedup holds. Only a
// token whose lifetime moves its refresh point (shorter than
// token.LeadDivisor × refresh_before) is scheduled; the scan finds the
// rest (internal/refresh scheduleNext).
const TypeWake = "token:wake"

// WakeID is the id of the wake-up of one token generation: the connection
// and the expiry of the token it renews. The refresh task that stores a
// token runs under ID(connection) while it schedules the next one, so the
// wake-up needs its own id; keying it by the expiry makes a second schedule
// of the same generation a no-op and never clashes with the next one.
func WakeID(connectionID int64, expiresAt time.Time) string {
	return "wake:" + strconv.FormatInt(connectionID, 10) + "@" + strconv.FormatInt(expiresAt.Unix(), 10)
}

// lifetimesKey is the Redis hash of the stored generation of each
// connection whose token is scheduled: field connection id, value "<expiry
// unix> <lifetime seconds>". The ie_appinstall_connection table has no
// issued-at column, so the lifetime is recorded where the refresher knows
// it: when it stores the token. A connection without a record is due at
// refresh_before.
func (q *Queue) lifetimesKey() string { return LifetimesKey(q.name) }

// LifetimesKey is the Redis key of queue's lifetime records.
func LifetimesKey(queue string) string { return "token_refresher:{" + queue + "}:lifetimes" }

// Generation is a connection's stored token as the refresher recorded it.
type Generation struct {
	ExpiresAt time.Time
	Lifetime  time.Duration
}

// Of returns the recorded lifetime of the token expiring at expiresAt, or 0
// when the record is of another generation (the row changed since) or
// there is none.
func (g Generation) Of(expiresAt *time.Time) time.Duration {
	if expiresAt == nil || expiresAt.IsZero() || g.Lifetime <= 0 || g.ExpiresAt.Unix() != expiresAt.Unix() {
		return 0
	}
	return g.Lifetime
}

// Schedule records the lifetime of the token generation p.DueExpiry just
// stored for p's connection, and schedules a wake-up at at that enqueues
// its refresh. A wake-up of that generation already scheduled is kept.
func (q *Queue) Schedule(ctx context.Context, p Payload, lifetime time.Duration, at time.Time) error {
	if p.DueExpiry == nil {
		return errors.New("task: a schedule needs the expiry of the stored token")
	}
	exp := *p.DueExpiry
	v := strconv.FormatInt(exp.Unix(), 10) + " " + strconv.FormatInt(int64(lifetime/time.Second), 10)
	if err := q.rdb.HSet(ctx, q.lifetimesKey(), strconv.FormatInt(p.ConnectionID, 10), v).Err(); err != nil {
		return fmt.Errorf("record the token lifetime of connection %d: %w", p.ConnectionID, err)
	}
	p.Forced = false
	shard := Shard(q.name, q.shards, p.ConnectionID)
	t, err := New(p, shard, q.timeout)
	if err != nil {
		return err
	}
	w := asynq.NewTask(TypeWake, t.Payload(),
		asynq.TaskID(WakeID(p.ConnectionID, exp)),
		asynq.Queue(shard),
		asynq.MaxRetry(MaxRetry),
		asynq.ProcessAt(at),
	)
	if _, err := q.client.EnqueueContext(ctx, w); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("schedule the refresh of connection %d: %w", p.ConnectionID, err)
	}
	return nil
}

// Generations returns the recorded generations of the given connections
// (absent when there is none), in one round trip.
func (q *Queue) Generations(ctx context.Context, ids []int64) (map[int64]Generation, error) {
	out := make(map[int64]Generation, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	fields := make([]string, len(ids))
	for i, id := range ids {
		fields[i] = strconv.FormatInt(id, 10)
	}
	vals, err := q.rdb.HMGet(ctx, q.lifetimesKey(), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read token lifetimes: %w", err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		exp, life, ok := strings.Cut(s, " ")
		e, err1 := strconv.ParseInt(exp, 10, 64)
		l, err2 := strconv.ParseInt(life, 10, 64)
		if !ok || err1 != nil || err2 != nil || l <= 0 {
			continue
		}
		out[ids[i]] = Generation{ExpiresAt: time.Unix(e, 0), Lifetime: time.Duration(l) * time.Second}
	}
	return out, nil
}

// Wake enqueues the refresh a wake-up task stands for. A refresh already
// queued, running or retrying for the connection is the same refresh: not
// an error.
func (q *Queue) Wake(ctx context.Context, t *asynq.Task) error {
	p, err := Parse(asynq.NewTask(TypeRefresh, t.Payload()))
	if err != nil {
		return err
	}
	_, err = q.Enqueue(ctx, p)
	return err
}
