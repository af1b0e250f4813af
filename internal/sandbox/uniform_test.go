package sandbox

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// flowCase is one good call of one flow: its request, whom it counts for,
// and how to find the access token in its answer.
type flowCase struct {
	flow   string
	seller string
	req    func(ctx context.Context, base string) *http.Request
}

func loginSeller(name string) (string, string) {
	u := name + GeneratedDomain
	return u, Password(u)
}

// everyFlow is a good call of each of the five flows.
func everyFlow() []flowCase {
	ajioU, ajioP := loginSeller("ajio-u")
	ucU, ucP := loginSeller("uc-u")
	szU, szP := loginSeller("sz-u")
	oauthForm := func(v url.Values) func(ctx context.Context, base string) *http.Request {
		return func(ctx context.Context, base string) *http.Request {
			r, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth/token", strings.NewReader(v.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}
	}
	return []flowCase{
		{"ajio", ajioU, func(ctx context.Context, base string) *http.Request {
			r, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/authToken",
				strings.NewReader(`{"username":"`+ajioU+`","password":"`+ajioP+`"}`))
			return r
		}},
		{"unicommerce", ucU, func(ctx context.Context, base string) *http.Request {
			q := url.Values{"username": {ucU}, "password": {ucP}}
			r, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/authToken?"+q.Encode(), nil)
			return r
		}},
		{"oauth2_refresh", "oauth-subject", oauthForm(url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID},
			"client_secret": {DefaultClientSecret}, "refresh_token": {RefreshToken("oauth-subject")}})},
		{"oauth2_client_credentials", DefaultClientID, oauthForm(url.Values{"grant_type": {"client_credentials"},
			"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}})},
		{"shopzone", szU, func(ctx context.Context, base string) *http.Request {
			v := url.Values{"login": {szU}, "secret": {szP}, "client": {"eshopbox"}}
			r, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+ShopzonePath, strings.NewReader(v.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("X-Api-Version", "2")
			return r
		}},
	}
}

// accessToken is the access token of an answer of any of the five flows.
func accessToken(a answer) string {
	if tok := issued(a); tok != "" {
		return tok
	}
	data, _ := a.body["data"].(map[string]any)
	auth, _ := data["auth"].(map[string]any)
	tok, _ := auth["token"].(string)
	return tok
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEveryFlowIsCountedAlike: the wrapper counts every flow the same
// way. A call held by the hang fault is in flight (Stats.InFlight and its
// seller's Generation.InFlight) until the caller gives up; a good call is
// counted for its flow and its seller, and its token is issued: IssuedTo
// knows its seller and Generations numbers it.
func TestEveryFlowIsCountedAlike(t *testing.T) {
	t.Parallel()
	for _, fc := range everyFlow() {
		t.Run(fc.flow, func(t *testing.T) {
			t.Parallel()
			s, srv, _ := start(t)

			s.SetFaults(Faults{HangRate: 1})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			gaveUp := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(fc.req(ctx, srv.URL))
				if err == nil {
					resp.Body.Close()
				}
				gaveUp <- err
			}()
			waitFor(t, "the held call in flight", func() bool { return s.Stats().InFlight == 1 })
			s.mu.Lock()
			held := s.userIn[fc.seller]
			s.mu.Unlock()
			assert.Equal(t, 1, held, "the held call is in flight for its seller")
			cancel()
			assert.True(t, errors.Is(<-gaveUp, context.Canceled), "the hang answered nothing")
			waitFor(t, "the given-up call to leave", func() bool { return s.Stats().InFlight == 0 })

			s.SetFaults(Faults{})
			a := do(t, fc.req(context.Background(), srv.URL))
			require.Equal(t, http.StatusOK, a.status)
			tok := accessToken(a)
			require.NotEmpty(t, tok)
			owner, ok := s.IssuedTo(tok)
			assert.True(t, ok && owner == fc.seller, "the token is issued to %q, not %q", fc.seller, owner)
			g := s.GenerationsOf([]string{tok})
			assert.Equal(t, IssuedToken{User: fc.seller, Seq: 1}, g.Tokens[tok], "noteIssued numbered the token")
			assert.Equal(t, 1, g.Users[fc.seller].Issued)

			st := s.Stats()
			assert.Equal(t, 2, st.Calls)
			assert.Equal(t, map[string]int{fc.flow: 2}, st.ByFlow)
			assert.Equal(t, 1, st.Issued)
			assert.Equal(t, 1, st.Faulted, "the hang")
			assert.Equal(t, 1, st.PeakInFlightPerUser)
			assert.Equal(t, 2, s.Calls(fc.seller))
			waitFor(t, "the answered call to leave", func() bool { return s.Stats().InFlight == 0 })
		})
	}
}

// TestEveryFlowTakesEveryShape: a shape set for one seller answers that
// seller's call of any flow in the shape (a refusal, a failure or an
// unknown answer in the flow's words, a token only in a success shape)
// and counts the non-token shapes as faulted.
func TestEveryFlowTakesEveryShape(t *testing.T) {
	t.Parallel()
	noRedirect := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, fc := range everyFlow() {
		t.Run(fc.flow, func(t *testing.T) {
			t.Parallel()
			s, srv, _ := start(t)
			faulted := 0
			for _, shape := range Shapes {
				s.SetFaults(Faults{ShapeBy: map[string]string{fc.seller: shape}})
				issuedBefore := s.Stats().Issued
				resp, err := noRedirect.Do(fc.req(context.Background(), srv.URL))
				if shape == ShapeDrop {
					require.Error(t, err, shape)
					faulted++
					continue
				}
				require.NoError(t, err, shape)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				tokenShape := s.Stats().Issued > issuedBefore
				switch shape {
				case ShapeForm, ShapeTextPlain, ShapeExpiresInString, ShapeAbsurdExpiresIn, ShapeNoExpiresIn:
					assert.True(t, tokenShape, "%s: a success shape issues a token", shape)
				default:
					assert.False(t, tokenShape, "%s: no token", shape)
					faulted++
				}
				switch shape {
				case ShapeForm:
					assert.Equal(t, "application/x-www-form-urlencoded", resp.Header.Get("Content-Type"), shape)
				case ShapeTextPlain:
					assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"), shape)
				case ShapeRefusalIn200, ShapeUnknown:
					assert.Equal(t, http.StatusOK, resp.StatusCode, shape)
				case ShapeRedirect:
					assert.Equal(t, http.StatusFound, resp.StatusCode, shape)
				case ShapeEmpty:
					assert.Empty(t, body, shape)
				case ShapeHuge:
					assert.Greater(t, len(body), 1<<20, shape)
				}
			}
			assert.Equal(t, faulted, s.Stats().Faulted)
		})
	}
}

// TestClientCredentialsShapes: the client credentials grant answers in the
// shapes as the refresh grant does, per client id.
func TestClientCredentialsShapes(t *testing.T) {
	t.Parallel()
	s, srv, _ := start(t)
	s.AddClient("plain-client", "plain-secret")
	grant := func(id, secret string) *http.Request {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
		r, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth/token", strings.NewReader(v.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
	raw := func(shape string) (*http.Response, string) {
		s.SetFaults(Faults{ShapeBy: map[string]string{DefaultClientID: shape}})
		resp, err := http.DefaultClient.Do(grant(DefaultClientID, DefaultClientSecret))
		require.NoError(t, err, shape)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := raw(ShapeForm)
	assert.Equal(t, "application/x-www-form-urlencoded", resp.Header.Get("Content-Type"))
	form, err := url.ParseQuery(body)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(form.Get("access_token"), "cc-at-"), body)
	assert.Equal(t, "3600", form.Get("expires_in"))

	resp, body = raw(ShapeTextPlain)
	assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, body, `"access_token":"cc-at-`)

	for shape, want := range map[string]string{
		ShapeExpiresInString:  `"expires_in":"3600"`,
		ShapeAbsurdExpiresIn:  `"expires_in":1000000000000`,
		ShapeRefusalIn200:     `{"error":"account_suspended"}`,
		ShapeServerErrorIn200: `{"error":"temporarily_unavailable"}`,
		ShapeUnknown:          `"token_type":"Bearer"`,
	} {
		resp, body = raw(shape)
		assert.Equal(t, http.StatusOK, resp.StatusCode, shape)
		assert.Contains(t, body, want, shape)
	}
	_, body = raw(ShapeNoExpiresIn)
	assert.Contains(t, body, `"access_token":"cc-at-`)
	assert.NotContains(t, body, "expires_in")

	s.SetFaults(Faults{ShapeBy: map[string]string{DefaultClientID: ShapeRefusalIn200}})
	a := do(t, grant("plain-client", "plain-secret"))
	assert.True(t, strings.HasPrefix(a.str("access_token"), "cc-at-"), "another client is answered normally")
	s.SetFaults(Faults{Shape: ShapeServerErrorIn200})
	assert.Equal(t, "temporarily_unavailable", do(t, grant("plain-client", "plain-secret")).str("error"), "Shape: every client")
	assert.Equal(t, 4, s.Stats().Faulted, "refusal, server error and unknown, then the global shape")
}
