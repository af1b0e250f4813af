package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

const expiredGauge = `token_refresher_expired_connections{integration_type="16",provider="ajio"} 1`

func (r *process) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(r.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestCensusGaugesFromOneRefresher: with no scanner at all (a deployment
// whose scanner is a --once cron job), two refresher replicas on real
// MariaDB and Redis serve the census gauges between them: exactly one takes
// the census lease, computes and serves them, the other serves none. When
// the holder stops, the other takes over.
func TestCensusGaugesFromOneRefresher(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	sb := httptest.NewServer(sandbox.New().Handler())
	t.Cleanup(sb.Close)
	past := time.Now().UTC().Add(-time.Hour)
	// Malformed inputFields: nothing could refresh it even if a task came.
	env.Insert(t, testenv.Row{ID: 31, InputFields: testenv.Str(`{"username":`), ExpiresAt: &past})

	a := startRefresher(t, env, sb.URL)
	b := startRefresher(t, env, sb.URL)
	var holder, other *process
	testenv.Eventually(t, 30*time.Second, "one refresher serving the expired gauge", func() bool {
		ma, mb := strings.Contains(a.metrics(t), expiredGauge), strings.Contains(b.metrics(t), expiredGauge)
		switch {
		case ma && !mb:
			holder, other = a, b
		case mb && !ma:
			holder, other = b, a
		}
		return holder != nil
	})
	// The other has asked for the lease several times by now (every 5s;
	// the holder took it at once): still exactly one computes.
	time.Sleep(6 * time.Second)
	assert.Contains(t, holder.metrics(t), expiredGauge)
	om := other.metrics(t)
	for _, name := range []string{"token_refresher_connections{", "token_refresher_expired_connections{", "token_refresher_expired_failing_connections{"} {
		assert.NotContains(t, om, name, "the replica without the census lease serves no census gauge")
	}
	const took = "took the census lease"
	assert.Equal(t, 1, strings.Count(holder.stderr.String(), took))
	assert.NotContains(t, other.stderr.String(), took)

	holder.stop()
	testenv.Eventually(t, 30*time.Second, "the other refresher taking the census over", func() bool {
		return strings.Contains(other.metrics(t), expiredGauge)
	})
	assert.Equal(t, 1, strings.Count(other.stderr.String(), took))
}
