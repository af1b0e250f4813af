package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestAnswerShapesEndToEnd drives the refresher through the answer shapes
// of issue 11, one seller each, via the sandbox's per-seller switch:
//   - an explicit refusal under HTTP 200, in each kind's words, is archived
//     after one call (never a storm);
//   - Ajio's success:false with statusCode 503 is transient: retried, never
//     archived, and it heals when the marketplace does;
//   - an answer the product cannot place is retried, not archived, with a
//     backoff that keeps growing where a transient failure's stops at its
//     cap: it makes fewer calls.
func TestAnswerShapesEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, allKinds)})
	expired := time.Now().UTC().Add(-time.Hour)
	refusedAjio, pa := seller("refused-ajio")
	refusedUC, pu := seller("refused-uc")
	retryAjio, pr := seller("retry-ajio")
	unknownAjio, pn := seller("unknown-ajio")
	downUC, pd := seller("down-uc")
	row := func(id int64, typ string, fields *string) testenv.Row {
		return testenv.Row{ID: id, IntegrationType: typ, InputFields: fields, AccessToken: testenv.Str("old"), ExpiresAt: &expired}
	}
	oauthRow := row(3, "42", testenv.Str(`{}`))
	oauthRow.RefreshToken = testenv.Str(sandbox.RefreshToken("refused-oauth"))
	b.env.Insert(t,
		row(1, "16", creds(refusedAjio, pa)),
		row(2, "43", creds(refusedUC, pu)),
		oauthRow,
		row(4, "16", creds(retryAjio, pr)),
		row(5, "16", creds(unknownAjio, pn)),
		row(6, "43", creds(downUC, pd)),
	)
	b.sandbox.SetFaults(sandbox.Faults{ShapeBy: map[string]string{
		refusedAjio: sandbox.ShapeRefusalIn200, refusedUC: sandbox.ShapeRefusalIn200, "refused-oauth": sandbox.ShapeRefusalIn200,
		retryAjio:   sandbox.ShapeServerErrorIn200,
		unknownAjio: sandbox.ShapeUnknown,
		// Unicommerce answers HTTP 503 in this shape: a transient failure
		// on another marketplace (its own breaker), the clock of the
		// comparison.
		downUC: sandbox.ShapeServerErrorIn200,
	}})
	b.scanOnce(t)
	b.startRefresher(t)

	testenv.Eventually(t, 30*time.Second, "the three refusals archived", func() bool {
		a := b.archived(t)
		_, ok1 := a[1]
		_, ok2 := a[2]
		_, ok3 := a[3]
		return ok1 && ok2 && ok3
	})
	testenv.Eventually(t, 120*time.Second, "15 calls of a transient failure", func() bool {
		return b.sandbox.Calls(downUC) >= 15
	})
	archived := b.archived(t)
	assert.Contains(t, archived[1].LastErr, "ajio rejected the credentials (success:false, no statusCode, HTTP 200)")
	assert.Contains(t, archived[2].LastErr, "unicommerce rejected the credentials (status INVALID_CREDENTIALS, HTTP 200)")
	assert.Contains(t, archived[3].LastErr, `refused the refresh with an unrecognised error code (error "account_suspended") (HTTP 200)`)
	for _, u := range []string{refusedAjio, refusedUC, "refused-oauth"} {
		assert.Equal(t, 1, b.sandbox.Calls(u), "%s: a refusal is one call, then archived", u)
	}
	_, retryArchived := archived[4]
	assert.False(t, retryArchived, "success:false with statusCode 503 is transient, never archived")
	unknown := b.sandbox.Calls(unknownAjio)
	t.Logf("FIGURE shapes: unplaceable answer %d calls while a transient failure made %d", unknown, b.sandbox.Calls(downUC))
	assert.GreaterOrEqual(t, unknown, 1)
	// How far the backoff grows is refresh.RetryDelay's unit test; here it
	// only shows: fewer calls than the transient failure's.
	assert.Less(t, unknown, b.sandbox.Calls(downUC), "an unplaceable answer backs off past the transient cap")
	_, unknownArchived := archived[5]
	assert.False(t, unknownArchived, "an unplaceable answer is not a refusal")
	assert.True(t, strings.Contains(b.logs.String(), "unusable"), "the unusable outcome is logged")

	// The marketplace heals: the 503-in-200 seller gets its token.
	b.sandbox.SetFaults(sandbox.Faults{})
	testenv.Eventually(t, 30*time.Second, "the transient one healed", func() bool {
		r := b.env.Get(t, 4)
		return r.AccessToken != nil && strings.HasPrefix(*r.AccessToken, "ajio-at-")
	})
}
