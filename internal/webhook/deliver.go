package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"
)

// Deliverer is the asynq handler of delivery tasks: it POSTs the event to
// its endpoint, signed, and fails (so asynq retries) unless the receiver
// answers 2xx.
type Deliverer struct {
	endpoints map[string]Endpoint
	signer    *standardwebhooks.Webhook
	client    *http.Client
	now       func() time.Time
	log       *zap.Logger
}

var _ asynq.Handler = (*Deliverer)(nil)

// NewDeliverer signs with key (ParseSecret's bytes). timeout bounds one POST
// (default 10s).
func NewDeliverer(endpoints []Endpoint, key []byte, timeout time.Duration, log *zap.Logger) (*Deliverer, error) {
	signer, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	m := make(map[string]Endpoint, len(endpoints))
	for _, e := range endpoints {
		m[e.Key] = e
	}
	return &Deliverer{
		endpoints: m, signer: signer, now: time.Now, log: log.Named("webhook"),
		client: &http.Client{
			Timeout: timeout,
			// A redirect would send the event where nobody configured it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Headers are the Standard Webhooks headers of one delivery attempt:
// webhook-id (the event id), webhook-timestamp (Unix seconds of the attempt)
// and webhook-signature ("v1," and the standard base64 of HMAC-SHA256 over
// "<id>.<timestamp>.<body>").
func (d *Deliverer) Headers(id string, at time.Time, body []byte) (http.Header, error) {
	sig, err := d.signer.Sign(id, at, body)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "token-refresher-webhook/1")
	return h, nil
}

// ProcessTask implements asynq.Handler.
func (d *Deliverer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p Payload
	var ev Event
	if err := json.Unmarshal(t.Payload(), &p); err != nil || json.Unmarshal(p.Event, &ev) != nil || ev.ID == "" {
		return fmt.Errorf("malformed webhook delivery payload: %w", asynq.SkipRetry)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	log := d.log.With(zap.String("event_id", ev.ID), zap.String("event", ev.Type),
		zap.Int64("connection_id", ev.Data.ConnectionID), zap.String("endpoint", p.Endpoint), zap.Int("attempt", retried+1))
	e, ok := d.endpoints[p.Endpoint]
	if !ok {
		log.Error("webhook endpoint is no longer configured; delivery dropped")
		return fmt.Errorf("endpoint %s is not configured: %w", p.Endpoint, asynq.SkipRetry)
	}
	log = log.With(zap.String("host", e.Host))
	h, err := d.Headers(ev.ID, d.now(), p.Event)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(p.Event))
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", e.Key, asynq.SkipRetry)
	}
	req.Header = h
	resp, err := d.client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which may hold a token: keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		log.Warn("webhook delivery failed; will retry", zap.Error(err))
		return fmt.Errorf("endpoint %s (%s): %w", e.Key, e.Host, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		log.Warn("webhook receiver refused the event; will retry", zap.Int("status", resp.StatusCode))
		return fmt.Errorf("endpoint %s (%s) answered HTTP %d", e.Key, e.Host, resp.StatusCode)
	}
	log.Info("webhook delivered", zap.Int("status", resp.StatusCode))
	return nil
}

// RetryDelay is the delivery tasks' backoff: retry n (from 0) waits between
// half and all of min(base·2ⁿ, maxDelay), so the first redelivery comes
// within base (10s by default: well within a minute) and later ones spread
// out to maxDelay (default 1h).
func RetryDelay(base, maxDelay time.Duration) asynq.RetryDelayFunc {
	if base <= 0 {
		base = 10 * time.Second
	}
	if maxDelay < base {
		maxDelay = max(base, time.Hour)
	}
	return func(n int, _ error, _ *asynq.Task) time.Duration {
		d := maxDelay
		if n >= 0 && n < 40 {
			if b := base << n; b > 0 && b < maxDelay {
				d = b
			}
		}
		return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
}
