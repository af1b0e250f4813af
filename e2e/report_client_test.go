package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

// The client of docs/rejected-tokens.md, verbatim: keep the two the same.

// ErrStillRefreshing: the wait ended with the refresh still running or
// retrying; try the call again later, or report again.
var ErrStillRefreshing = errors.New("the refresher is still refreshing the token")

// ReportRejected tells the refresher that the marketplace refused tok for
// connection id, waits up to 20s for its replacement, and reads the new
// token from MySQL. The refresher sees only the token's SHA-256.
func ReportRejected(ctx context.Context, db *sql.DB, client *http.Client, base, apiToken string, id int64, tok string) (string, error) {
	sum := sha256.Sum256([]byte(tok))
	body, _ := json.Marshal(map[string]string{"rejected_token_sha256": hex.EncodeToString(sum[:])})
	url := fmt.Sprintf("%s/v1/connections/%d/refresh?wait=20s", base, id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req) // client.Timeout must exceed the wait
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var answer struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
		Error  string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer); err != nil {
		return "", fmt.Errorf("refresher: HTTP %d: %w", resp.StatusCode, err)
	}
	switch resp.StatusCode {
	case http.StatusOK: // the row holds another token
	case http.StatusAccepted:
		return "", ErrStillRefreshing
	case http.StatusUnprocessableEntity:
		return "", fmt.Errorf("connection %d needs its seller or an operator: %s", id, answer.Reason)
	default:
		return "", fmt.Errorf("refresher: HTTP %d: %s", resp.StatusCode, answer.Error)
	}
	var next string
	err = db.QueryRowContext(ctx, `SELECT accessToken FROM ie_appinstall_connection WHERE id = ?`, id).Scan(&next)
	return next, err
}

// TestReportClientExample runs the documented Go client against the real
// refresher, MariaDB and sandbox: it gets the new token from MySQL after one
// call, and a second report of the token it was refused costs none.
func TestReportClientExample(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	u, p := seller("example-9")
	fresh := time.Now().UTC().Add(25 * time.Minute).Truncate(time.Second)
	b.env.Insert(t, testenv.Row{ID: 9, InputFields: creds(u, p), AccessToken: testenv.Str("at-example-9"), ExpiresAt: &fresh})
	b.startRefresher(t)
	r := &reporter{t: t}
	r.serveAPI(b)
	client := &http.Client{Timeout: 30 * time.Second}

	next, err := ReportRejected(context.Background(), b.env.IE.DB, client, r.urls[0], reportAPIToken, 9, "at-example-9")
	require.NoError(t, err)
	assert.NotEqual(t, "at-example-9", next)
	owner, ok := b.sandbox.IssuedTo(next)
	assert.True(t, ok && owner == u, "the token the call issued")
	again, err := ReportRejected(context.Background(), b.env.IE.DB, client, r.urls[0], reportAPIToken, 9, "at-example-9")
	require.NoError(t, err)
	assert.Equal(t, next, again)
	assert.Equal(t, 1, b.sandbox.Calls(u), "the second report found the token replaced")
}
