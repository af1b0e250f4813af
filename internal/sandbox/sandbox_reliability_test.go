package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func login(t *testing.T, url, user, pass string) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	resp, err := http.Post(url+"/authToken", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestCountsAndOwners(t *testing.T) {
	t.Parallel()
	sb := New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	u := "a" + GeneratedDomain
	for range 3 {
		status, out := login(t, srv.URL, u, Password(u))
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, true, out["success"])
	}
	_, out := login(t, srv.URL, u, Password(u))
	tok := out["result"].(map[string]any)["accessToken"].(string)
	login(t, srv.URL, "b"+GeneratedDomain, "wrong")

	st := sb.Stats()
	assert.Equal(t, 5, st.Calls)
	assert.Equal(t, 4, st.Issued)
	assert.Equal(t, 1, st.Rejected)
	assert.Zero(t, st.InFlight)
	assert.GreaterOrEqual(t, st.PeakInAnySecond, st.PeakPerSecond)
	assert.LessOrEqual(t, st.PeakInAnySecond, 5)

	resp, err := http.Get(srv.URL + "/_sandbox/calls")
	require.NoError(t, err)
	var calls map[string]int
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&calls))
	resp.Body.Close()
	assert.Equal(t, map[string]int{u: 4, "b" + GeneratedDomain: 1}, calls)

	body, _ := json.Marshal([]string{tok, "not-issued"})
	resp, err = http.Post(srv.URL+"/_sandbox/owners", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	var owners map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&owners))
	resp.Body.Close()
	assert.Equal(t, map[string]string{tok: u}, owners)
}

func TestSlowAnswerStillIssues(t *testing.T) {
	t.Parallel()
	sb := New()
	sb.SetFaults(Faults{SlowRate: 1, SlowLatency: 1})
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	u := "slow" + GeneratedDomain
	status, out := login(t, srv.URL, u, Password(u))
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, true, out["success"])
	assert.Equal(t, 1, sb.Stats().Faulted)
}
