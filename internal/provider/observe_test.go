package provider_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/provider"
)

type recorder struct {
	mu    sync.Mutex
	calls []string
	codes []int
}

func (r *recorder) Answered(kind string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, kind)
	r.codes = append(r.codes, status)
}

func TestObservedClientReportsEveryCall(t *testing.T) {
	t.Parallel()
	statuses := []int{http.StatusTooManyRequests, http.StatusOK}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		s := statuses[0]
		statuses = statuses[1:]
		mu.Unlock()
		w.WriteHeader(s)
	}))
	t.Cleanup(srv.Close)

	rec := &recorder{}
	shared := provider.NewHTTPClient(4)
	client := provider.Observed(shared, "ajio", rec)
	require.NotSame(t, shared, client, "the shared client must stay unobserved")
	assert.NotNil(t, client.CheckRedirect, "the no-redirect policy is kept")

	for range 2 {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/authToken?password=hunter2", nil)
		require.NoError(t, err)
		_, err = provider.Do(context.Background(), client, req, 5*time.Second)
		require.NoError(t, err)
	}

	// Nothing listens on a closed server's port: no answer, status 0.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	req, err := http.NewRequest(http.MethodGet, closed.URL, nil)
	require.NoError(t, err)
	_, err = provider.Do(context.Background(), client, req, 5*time.Second)
	require.Error(t, err)

	assert.Equal(t, []string{"ajio", "ajio", "ajio"}, rec.calls)
	assert.Equal(t, []int{429, 200, 0}, rec.codes)
}

func TestObservedWithoutObserverIsTheSameClient(t *testing.T) {
	t.Parallel()
	c := provider.NewHTTPClient(2)
	assert.Same(t, c, provider.Observed(c, "ajio", nil))
}
