package sandbox

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIndexRoutesAreServed: GET / names the flows, and every route it
// lists is served (an empty request may be refused, never 404 or 405).
func TestIndexRoutesAreServed(t *testing.T) {
	t.Parallel()
	_, srv, _ := start(t)
	resp, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var got struct {
		Name  string
		Flows []Route
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Contains(t, got.Name, "sandbox")
	require.Len(t, got.Flows, 4)

	for _, r := range append(Index.Flows, Index.Control...) {
		req, err := http.NewRequest(r.Method, srv.URL+r.Path, strings.NewReader("{}"))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, r.Path)
		resp.Body.Close()
		assert.NotContains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, resp.StatusCode, "%s %s", r.Method, r.Path)
	}
	resp, err = http.Get(srv.URL + "/nothing-here")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "only the root answers the index")
}
