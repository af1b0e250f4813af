package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Notifier turns the refresh handler's reports into events, one per state
// change of a connection, and enqueues their deliveries.
//
// Each connection that has failed holds a Redis hash (its notified state:
// failed or ok, the event of the last change, and whether its deliveries are
// queued). The change and the event are written by one Lua script, so when
// two replicas record the same failure at once exactly one of them changes
// the state. Enqueueing comes after, and the deliveries' task ids are the
// event id and the endpoint, so a replica that finds the change made but not
// yet marked queued (another replica is enqueueing, or one was killed
// between the two steps) enqueues the same tasks again and asynq keeps one
// of each. A delivery task is kept a day after it succeeds (Retention) so
// its id stays taken.
type Notifier struct {
	rdb       redis.UniversalClient
	client    *asynq.Client
	queue     string
	prefix    string
	endpoints []Endpoint
	enabled   map[string]bool
	cfg       NotifierConfig
	log       *zap.Logger
}

// NotifierConfig tunes a Notifier.
type NotifierConfig struct {
	// Events are the event names to send (default all); a state change of
	// another kind is still recorded, but nothing is sent.
	Events []string
	// MaxRetry caps a delivery's retries (default 25: about half a day with
	// RetryDelay's backoff); after it the task is archived.
	MaxRetry int
	// Timeout bounds one delivery attempt's task (default 30s).
	Timeout time.Duration
	// Retention keeps a delivered task, and so its id (default 24h).
	Retention time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// NewNotifier returns a notifier enqueueing on Queue(refreshQueue) of rdb.
func NewNotifier(rdb redis.UniversalClient, refreshQueue string, endpoints []Endpoint, cfg NotifierConfig, log *zap.Logger) *Notifier {
	if len(cfg.Events) == 0 {
		cfg.Events = Events
	}
	if cfg.MaxRetry <= 0 {
		cfg.MaxRetry = 25
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	enabled := map[string]bool{}
	for _, e := range cfg.Events {
		enabled[e] = true
	}
	return &Notifier{
		rdb: rdb, client: asynq.NewClientFromRedisClient(rdb), queue: Queue(refreshQueue),
		prefix: StateKeyPrefix(refreshQueue), endpoints: endpoints, enabled: enabled, cfg: cfg,
		log: log.Named("webhook"),
	}
}

// StateKeyPrefix is the prefix of the per-connection notified-state keys of
// a refresh queue; the key of connection id is the prefix and the id.
func StateKeyPrefix(refreshQueue string) string {
	return "token_refresher:{" + refreshQueue + "}:notified:"
}

// transition moves a connection's notified state to ARGV[1] and stores the
// event ARGV[2] (with its id ARGV[3]) when the state changes. It returns the
// event to enqueue: the new one, or the stored one when the state is already
// ARGV[1] but its deliveries were never marked queued; nil when there is
// nothing to send. With ARGV[4] = "0" a missing record stays missing (a
// connection never reported failed does not "recover").
var transition = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st == ARGV[1] then
  if redis.call('HGET', KEYS[1], 'queued') == '1' then return false end
  return redis.call('HGET', KEYS[1], 'event')
end
if (not st) and ARGV[4] == '0' then return false end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'event', ARGV[2], 'id', ARGV[3], 'queued', '0')
return ARGV[2]
`)

// markQueued records that the deliveries of event ARGV[1] are queued; a
// recovered connection's record is deleted instead (it has nothing left to
// remember). A record that moved on to a newer event is left alone.
var markQueued = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') == 'ok' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'queued', '1')
end
return 1
`)

// callTimeout bounds the Redis work of one report: the refresh it follows is
// done, and a slow Redis must not hold its worker.
const callTimeout = 5 * time.Second

// Failed reports a permanent failure of a connection, with its secret-free
// reason (token.Failure.Reason: the class is the event's, failed). The first
// report after the connection was fine sends connection.failed; the rest send
// nothing.
func (n *Notifier) Failed(ctx context.Context, connectionID int64, integrationType, kind, reason string) {
	n.report(ctx, "failed", true, Event{Type: EventFailed, Data: Data{
		ConnectionID: connectionID, IntegrationType: integrationType, Provider: kind, Reason: reason,
	}})
}

// Refreshed reports a stored token. It sends connection.recovered when the
// connection was reported failed, and costs one Redis round trip otherwise.
func (n *Notifier) Refreshed(ctx context.Context, connectionID int64, integrationType, kind string) {
	n.report(ctx, "ok", false, Event{Type: EventRecovered, Data: Data{
		ConnectionID: connectionID, IntegrationType: integrationType, Provider: kind,
	}})
}

func (n *Notifier) report(ctx context.Context, state string, create bool, ev Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	log := n.log.With(zap.Int64("connection_id", ev.Data.ConnectionID), zap.String("event", ev.Type))
	if err := n.Report(ctx, state, create, ev); err != nil {
		log.Warn("webhook event not queued; the next report of this connection queues it", zap.Error(err))
	}
}

// Report is Failed and Refreshed with the error: state is "failed" or "ok",
// create whether a connection with no record may change to it.
func (n *Notifier) Report(ctx context.Context, state string, create bool, ev Event) error {
	ev.ID = newID()
	ev.Timestamp = n.cfg.Now().UTC().Truncate(time.Second)
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	key := n.prefix + strconv.FormatInt(ev.Data.ConnectionID, 10)
	flag := "0"
	if create {
		flag = "1"
	}
	res, err := transition.Run(ctx, n.rdb, []string{key}, state, string(body), ev.ID, flag).Text()
	if errors.Is(err, redis.Nil) {
		return nil // no change, or already queued
	}
	if err != nil {
		return fmt.Errorf("record the connection's state: %w", err)
	}
	var stored Event
	if err := json.Unmarshal([]byte(res), &stored); err != nil {
		return fmt.Errorf("stored event does not parse: %w", err)
	}
	if n.enabled[stored.Type] {
		for _, e := range n.endpoints {
			if err := n.enqueue(ctx, stored.ID, e, []byte(res)); err != nil {
				return err
			}
		}
		n.log.Info("webhook event queued", zap.Int64("connection_id", stored.Data.ConnectionID),
			zap.String("event", stored.Type), zap.String("event_id", stored.ID), zap.Int("endpoints", len(n.endpoints)))
	}
	if err := markQueued.Run(ctx, n.rdb, []string{key}, stored.ID).Err(); err != nil {
		return fmt.Errorf("mark the event queued: %w", err)
	}
	return nil
}

// Payload is a delivery task's payload: the event's exact bytes and the
// endpoint's key (never its URL).
type Payload struct {
	Endpoint string          `json:"endpoint"`
	Event    json.RawMessage `json:"event"`
}

// TaskID is the delivery task id of an event to an endpoint.
func TaskID(eventID, endpointKey string) string { return "webhook:" + eventID + ":" + endpointKey }

func (n *Notifier) enqueue(ctx context.Context, eventID string, e Endpoint, body []byte) error {
	p, err := json.Marshal(Payload{Endpoint: e.Key, Event: body})
	if err != nil {
		return err
	}
	t := asynq.NewTask(TypeDeliver, p,
		asynq.TaskID(TaskID(eventID, e.Key)),
		asynq.Queue(n.queue),
		asynq.MaxRetry(n.cfg.MaxRetry),
		asynq.Timeout(n.cfg.Timeout),
		asynq.Retention(n.cfg.Retention),
	)
	_, err = n.client.EnqueueContext(ctx, t)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue delivery to endpoint %s: %w", e.Key, err)
	}
	return nil
}
