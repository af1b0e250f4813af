package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clock is a settable time for the rotation grace.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func start(t *testing.T) (*Server, *httptest.Server, *clock) {
	t.Helper()
	s := New()
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	s.now = c.Now
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv, c
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (a answer) str(k string) string { s, _ := a.body[k].(string); return s }

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&a.body))
	return a
}

func refreshForm(t *testing.T, base string, v url.Values) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader(v.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func refresh(t *testing.T, base, rt string) answer {
	t.Helper()
	return refreshForm(t, base, url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID},
		"client_secret": {DefaultClientSecret}, "refresh_token": {rt}})
}

func TestOAuthRequests(t *testing.T) {
	t.Parallel()
	s, srv, _ := start(t)
	s.AddClient("other-app", "other-secret")
	s.AddRefreshToken("other-app", "registered-seller", "registered-rt")
	good := RefreshToken("seller-1")
	tampered := RefreshToken("seller-2")
	tampered = tampered[:len(tampered)-16] + good[len(good)-16:] // seller-2 with seller-1's signature
	form := func(mod func(url.Values)) func() *http.Request {
		return func() *http.Request {
			v := url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID},
				"client_secret": {DefaultClientSecret}, "refresh_token": {good}}
			mod(v)
			r, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth/token", strings.NewReader(v.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}
	}
	tests := []struct {
		name     string
		req      func() *http.Request
		status   int
		wantCode string // "" = success
		subject  string
	}{
		{"form body", form(func(url.Values) {}), 200, "", "seller-1"},
		{"JSON body", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth/token", strings.NewReader(
				`{"grant_type":"refresh_token","client_id":"`+DefaultClientID+`","client_secret":"`+DefaultClientSecret+`","refresh_token":"`+good+`"}`))
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
			return r
		}, 200, "", "seller-1"},
		{"HTTP Basic client authentication", func() *http.Request {
			r := form(func(v url.Values) { v.Del("client_id"); v.Del("client_secret") })()
			r.SetBasicAuth(DefaultClientID, DefaultClientSecret)
			return r
		}, 200, "", "seller-1"},
		{"a registered token of another client", form(func(v url.Values) {
			v.Set("client_id", "other-app")
			v.Set("client_secret", "other-secret")
			v.Set("refresh_token", "registered-rt")
		}), 200, "", "registered-seller"},
		{"wrong client secret", form(func(v url.Values) { v.Set("client_secret", "nope") }), 401, "invalid_client", ""},
		{"unknown client", form(func(v url.Values) { v.Set("client_id", "nobody") }), 401, "invalid_client", ""},
		{"no client", form(func(v url.Values) { v.Del("client_id"); v.Del("client_secret") }), 401, "invalid_client", ""},
		{"unknown refresh token", form(func(v url.Values) { v.Set("refresh_token", "made-up") }), 400, "invalid_grant", ""},
		{"tampered generated token", form(func(v url.Values) { v.Set("refresh_token", tampered) }), 400, "invalid_grant", ""},
		{"another client's token", form(func(v url.Values) { v.Set("refresh_token", "registered-rt") }), 400, "invalid_grant", ""},
		{"another grant type", form(func(v url.Values) { v.Set("grant_type", "password") }), 400, "unsupported_grant_type", ""},
		{"no refresh token", form(func(v url.Values) { v.Del("refresh_token") }), 400, "invalid_request", ""},
		{"bad JSON", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth/token", strings.NewReader(`{"grant_type":`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, 400, "invalid_request", ""},
	}
	for _, tt := range tests {
		a := do(t, tt.req())
		assert.Equal(t, tt.status, a.status, tt.name)
		assert.Equal(t, "no-store", a.header.Get("Cache-Control"), tt.name)
		if tt.wantCode != "" {
			assert.Equal(t, tt.wantCode, a.str("error"), tt.name)
			assert.Empty(t, a.str("access_token"), tt.name)
			continue
		}
		assert.Equal(t, "Bearer", a.str("token_type"), tt.name)
		assert.EqualValues(t, DefaultOAuthExpiresIn, a.body["expires_in"], tt.name)
		_, rotated := a.body["refresh_token"]
		assert.False(t, rotated, "%s: rotation is off by default", tt.name)
		owner, ok := s.IssuedTo(a.str("access_token"))
		assert.True(t, ok, tt.name)
		assert.Equal(t, tt.subject, owner, tt.name)
	}
	assert.Equal(t, 7, s.Calls("seller-1"), "calls are counted by the refresh token's subject")
	assert.Equal(t, 2, s.Calls("registered-seller"))
	assert.Equal(t, len(tests), s.Stats().ByFlow["oauth2_refresh"])
}

func TestOAuthRejectAll(t *testing.T) {
	t.Parallel()
	s, srv, _ := start(t)
	s.SetFaults(Faults{RejectAll: true})
	a := refresh(t, srv.URL, RefreshToken("seller-1"))
	assert.Equal(t, 400, a.status)
	assert.Equal(t, "invalid_grant", a.str("error"))
	assert.Equal(t, 1, s.Stats().Rejected)
}

func TestOAuthRotationWithGrace(t *testing.T) {
	t.Parallel()
	s, srv, clk := start(t)
	s.SetFaults(Faults{Rotate: true, RotationGrace: 30 * time.Second, OAuthExpiresIn: 120})
	rt1 := RefreshToken("seller-r")

	a := refresh(t, srv.URL, rt1)
	require.Equal(t, 200, a.status)
	assert.EqualValues(t, 120, a.body["expires_in"])
	rt2 := a.str("refresh_token")
	require.NotEmpty(t, rt2, "rotation on: a new refresh token")
	assert.NotEqual(t, rt1, rt2)

	clk.Add(29 * time.Second)
	a = refresh(t, srv.URL, rt1)
	assert.Equal(t, 200, a.status, "the previous token is still accepted within the grace")
	rt3 := a.str("refresh_token")
	require.NotEmpty(t, rt3)

	clk.Add(2 * time.Second)
	a = refresh(t, srv.URL, rt1)
	assert.Equal(t, 400, a.status, "after the grace the previous token is refused")
	assert.Equal(t, "invalid_grant", a.str("error"))
	assert.False(t, s.RefreshTokenValid(rt1))
	assert.True(t, s.RefreshTokenValid(rt2), "the successors stay valid")
	assert.True(t, s.RefreshTokenValid(rt3))

	a = refresh(t, srv.URL, rt2)
	require.Equal(t, 200, a.status)
	owner, _ := s.IssuedTo(a.str("access_token"))
	assert.Equal(t, "seller-r", owner, "a rotated token keeps its subject")
}

func TestOAuthRotationWithoutGrace(t *testing.T) {
	t.Parallel()
	s, srv, _ := start(t)
	s.SetFaults(Faults{Rotate: true})
	rt1 := RefreshToken("seller-strict")
	a := refresh(t, srv.URL, rt1)
	require.Equal(t, 200, a.status)
	rt2 := a.str("refresh_token")
	assert.Equal(t, "invalid_grant", refresh(t, srv.URL, rt1).str("error"), "no grace: refused at once")
	assert.Equal(t, 200, refresh(t, srv.URL, rt2).status)
}

func TestOAuthWithoutRotation(t *testing.T) {
	t.Parallel()
	s, srv, clk := start(t)
	rt := RefreshToken("seller-steady")
	for range 3 {
		a := refresh(t, srv.URL, rt)
		require.Equal(t, 200, a.status)
		assert.NotContains(t, a.body, "refresh_token", "no rotation: no refresh token in the answer")
		clk.Add(time.Hour)
	}
	assert.Equal(t, 3, s.Calls("seller-steady"))
	assert.Equal(t, 3, s.Stats().Issued)
}

// TestRotatedTokenSurvivesRestart: a rotated token is signed, so a new
// sandbox (make run again) accepts what the database holds.
func TestRotatedTokenSurvivesRestart(t *testing.T) {
	t.Parallel()
	s1, srv1, _ := start(t)
	s1.SetFaults(Faults{Rotate: true})
	rt2 := refresh(t, srv1.URL, RefreshToken("seller-x")).str("refresh_token")
	require.NotEmpty(t, rt2)

	s2, srv2, _ := start(t)
	a := refresh(t, srv2.URL, rt2)
	require.Equal(t, 200, a.status)
	owner, _ := s2.IssuedTo(a.str("access_token"))
	assert.Equal(t, "seller-x", owner)
}

func TestUnicommerce(t *testing.T) {
	t.Parallel()
	s, srv, _ := start(t)
	s.AddSeller("uc@itc.com", "p&ss=1 2")
	get := func(q url.Values) answer {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/authToken?"+q.Encode(), nil)
		require.NoError(t, err)
		return do(t, req)
	}
	a := get(url.Values{"username": {"uc@itc.com"}, "password": {"p&ss=1 2"}})
	assert.Equal(t, 200, a.status)
	assert.Equal(t, "SUCCESS", a.str("status"))
	owner, ok := s.IssuedTo(a.str("accessToken"))
	assert.True(t, ok)
	assert.Equal(t, "uc@itc.com", owner)

	gen := "seller-9" + GeneratedDomain
	a = get(url.Values{"username": {gen}, "password": {Password(gen)}})
	assert.Equal(t, "SUCCESS", a.str("status"), "generated sellers work on this flow too")

	a = get(url.Values{"username": {"uc@itc.com"}, "password": {"wrong"}})
	assert.Equal(t, 200, a.status)
	assert.Equal(t, "FAILED", a.str("status"))
	assert.Empty(t, a.str("accessToken"))

	a = get(url.Values{"username": {"uc@itc.com"}})
	assert.Equal(t, 400, a.status)
	assert.Equal(t, "FAILED", a.str("status"))

	assert.Equal(t, 3, s.Calls("uc@itc.com"))
	assert.Equal(t, 4, s.Stats().ByFlow["unicommerce"])
	assert.Equal(t, 1, s.Stats().Rejected)
}

// TestFaultsApplyToEveryFlow: the switches answer all five flows alike.
func TestFaultsApplyToEveryFlow(t *testing.T) {
	t.Parallel()
	s, srv, _ := start(t)
	for _, fc := range everyFlow() {
		req := func() *http.Request { return fc.req(context.Background(), srv.URL) }
		s.SetFaults(Faults{ErrorRate: 1})
		assert.Equal(t, 500, do(t, req()).status, fc.flow)
		s.SetFaults(Faults{RateLimitRate: 1, RetryAfterSeconds: 3})
		a := do(t, req())
		assert.Equal(t, 429, a.status, fc.flow)
		assert.Equal(t, "3", a.header.Get("Retry-After"), fc.flow)
		s.SetFaults(Faults{RejectAll: true})
		assert.Empty(t, accessToken(do(t, req())), fc.flow)
		s.SetFaults(Faults{})
		assert.NotEmpty(t, accessToken(do(t, req())), fc.flow)
	}
	st := s.Stats()
	assert.Equal(t, 10, st.Faulted)
	assert.Equal(t, 5, st.Rejected)
	assert.Equal(t, 5, st.Issued)
}

// issued is the access token of an answer of Ajio, Unicommerce or OAuth
// (accessToken knows Shopzone too).
func issued(a answer) string {
	if r, ok := a.body["result"].(map[string]any); ok {
		s, _ := r["accessToken"].(string)
		return s
	}
	return a.str("accessToken") + a.str("access_token")
}

// TestOAuthReuseDetection: with ReuseDetection, presenting a rotated-away
// refresh token revokes the whole family: the live refresh token and the
// access tokens issued to the subject (RFC 9700 §4.14.2).
func TestOAuthReuseDetection(t *testing.T) {
	t.Parallel()
	s, srv, _ := start(t)
	s.SetFaults(Faults{Rotate: true, ReuseDetection: true})
	rt1 := RefreshToken("seller-family")
	a := refresh(t, srv.URL, rt1)
	require.Equal(t, 200, a.status)
	rt2, at := a.str("refresh_token"), a.str("access_token")
	_, ok := s.IssuedTo(at)
	require.True(t, ok)

	assert.Equal(t, "invalid_grant", refresh(t, srv.URL, rt1).str("error"), "the reuse is refused")
	assert.False(t, s.RefreshTokenValid(rt2), "and the live refresh token is revoked with it")
	_, ok = s.IssuedTo(at)
	assert.False(t, ok, "so is the access token")
	assert.Equal(t, "invalid_grant", refresh(t, srv.URL, rt2).str("error"))
	assert.Equal(t, 1, s.Stats().FamiliesRevoked)
}

// TestGenerationsAndPeakPerUser: tokens are numbered in each seller's
// issuance order, and two calls of one seller at once show in the peak.
func TestGenerationsAndPeakPerUser(t *testing.T) {
	t.Parallel()
	s, srv, _ := start(t)
	s.SetFaults(Faults{Latency: 300 * time.Millisecond})
	u := "gen" + GeneratedDomain
	login := func() string {
		body := strings.NewReader(`{"username":"` + u + `","password":"` + Password(u) + `"}`)
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/authToken", body)
		require.NoError(t, err)
		return issued(do(t, req))
	}
	first := login()
	assert.Equal(t, 1, s.Stats().PeakInFlightPerUser)
	var wg sync.WaitGroup
	var second, third string
	wg.Go(func() { second = login() })
	wg.Go(func() { third = login() })
	wg.Wait()
	assert.Equal(t, 2, s.Stats().PeakInFlightPerUser, "two calls of one seller overlapped")

	g := s.GenerationsOf([]string{first, second, third, "unknown"})
	assert.Equal(t, IssuedToken{User: u, Seq: 1}, g.Tokens[first])
	assert.ElementsMatch(t, []int{2, 3}, []int{g.Tokens[second].Seq, g.Tokens[third].Seq})
	assert.NotContains(t, g.Tokens, "unknown")
	assert.Equal(t, 3, g.Users[u].Issued)
	// A call counts as answered when its handler returns, which may be a
	// moment after the client read the answer.
	deadline := time.Now().Add(5 * time.Second)
	for s.GenerationsOf([]string{first}).Users[u].InFlight != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	assert.Zero(t, s.GenerationsOf([]string{first}).Users[u].InFlight)
}
