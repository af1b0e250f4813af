package demo

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/ops"
	"github.com/eshopbox/token-refresher/internal/webhook"
)

// demoWebhookKey signs the demo's events; it is the demo's own, not a
// secret anyone else holds.
var demoWebhookKey = []byte("demo-webhook-signing-key-0123456789")

// received is an event the demo's receiver accepted.
type received struct {
	ev       webhook.Event
	verified bool
}

// webhooks is what an operator runs to receive the failure notifications:
// a receiver (its own HTTP server) that checks each signature as docs/webhooks.md
// shows. The refresher's notifier and delivery workers are pointed at it
// (settings). Events the receiver accepts arrive on got, for the live lines.
type webhooks struct {
	endpoints []webhook.Endpoint
	got       chan received
	url       string
}

func startReceiver(ctx context.Context, log *zap.Logger) (*webhooks, error) {
	w := &webhooks{got: make(chan received, 64)}
	addr, _, err := ops.Serve(ctx, "127.0.0.1:0", http.HandlerFunc(w.receive), log.Named("receiver"))
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	w.url = "http://" + addr.String() + "/events"
	if w.endpoints, err = webhook.ParseURLs(w.url); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *webhooks) receive(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	mac := hmac.New(sha256.New, demoWebhookKey)
	mac.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	verified := hmac.Equal([]byte(r.Header.Get("webhook-signature")), []byte(want))
	var ev webhook.Event
	if err := json.Unmarshal(body, &ev); err != nil || !verified {
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	select {
	case w.got <- received{ev: ev, verified: verified}:
	default: // the live line is behind; the event was still received
	}
	rw.WriteHeader(http.StatusNoContent)
}

// line is the live line of a received event (the failure's reason is on
// the failed line already).
func (r received) line() string {
	return fmt.Sprintf("webhook received: %s for connection %d (%s), signature verified",
		r.ev.Type, r.ev.Data.ConnectionID, r.ev.Data.Provider)
}
