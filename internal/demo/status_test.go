package demo

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/token"
)

// "due" means one thing in the live line, the status JSON and the summary:
// a token to refresh (expired, within its window, or never generated) on a
// connection that has not failed permanently. Refreshing and retrying ones
// can be due; a failed one is counted as failed only.
func TestDueHasOneMeaning(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := start.Add(90 * time.Second)
	mk := func(id int64) conn {
		return conn{Row: Row{ID: id}, Target: token.Target{IntegrationType: "16", Kind: "ajio", RefreshBefore: time.Minute}}
	}
	tr := newTracker([]conn{mk(1), mk(2), mk(3), mk(4), mk(5), mk(6)}, start, func() time.Time { return now })
	expired, fresh, soon := now.Add(-time.Minute), now.Add(time.Hour), now.Add(30*time.Second)
	tr.expiry = map[int64]*time.Time{1: &expired, 2: &expired, 3: &expired, 4: &fresh, 5: &soon, 6: nil}
	tr.archived = map[int64]string{2: "permanent: ajio rejected the credentials"}
	tr.retrying = map[int64]string{3: "transient: HTTP 503"}
	tr.polled = true

	s := tr.status()
	due := map[int64]bool{}
	for _, c := range s.Connections {
		due[c.ID] = c.Due
	}
	assert.Equal(t, map[int64]bool{1: true, 2: false, 3: true, 4: false, 5: true, 6: true}, due,
		"1 expired, 2 failed, 3 retrying, 4 fresh, 5 within its window, 6 never generated")
	assert.Equal(t, 4, s.Due)
	assert.Equal(t, 1, s.Failed)
	assert.Contains(t, s.Line(), "due 4 ")

	var out bytes.Buffer
	newPrinter(&out, false, time.Second).summary(s)
	assert.Contains(t, out.String(), "still due: 4 [1 3 5 6]")
	assert.Contains(t, out.String(), "failed:    2", "failed and retrying are listed as failures")

	b, err := json.Marshal(s)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"due":4`)
}

// The JSON gives durations in seconds, named so; the page in words.
func TestStatusDurations(t *testing.T) {
	t.Parallel()
	s := Status{Elapsed: 90*time.Second + 400*time.Millisecond, NextDueIn: 55 * time.Second, Due: 1}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, 90.0, m["elapsed_seconds"])
	assert.Equal(t, 55.0, m["next_due_in_seconds"])
	assert.NotContains(t, m, "elapsed")
	assert.NotContains(t, m, "next_due_in")
	assert.NotContains(t, string(b), "90400000000", "no nanoseconds")

	for d, want := range map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", 125 * time.Second: "2m 05s", 63 * time.Minute: "1h 03m", 52 * time.Hour: "2d 4h",
	} {
		assert.Equal(t, want, human(d), "%s", d)
	}

	exp := time.Now().Add(10 * time.Minute)
	mux := http.NewServeMux()
	demoPage(mux, func() Status {
		return Status{Elapsed: 125 * time.Second, NextDueIn: 55 * time.Second, Due: 3,
			Connections: []Connection{{ID: 11, Kind: "ajio", IntegrationType: "16", State: StateFresh, ExpiresAt: &exp}}}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Contains(t, string(page), "Running for 2m 05s: 3 due")
	assert.Contains(t, string(page), "the next token comes due in 55s")
	assert.Regexp(t, `\(in (9m \d\ds|10m 00s)\)`, string(page))
}
