package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/token"
)

// TestVerdictIsAClass: a failing verdict is a failure's class, and the
// failure Fail makes of it carries that class; Stored has none.
func TestVerdictIsAClass(t *testing.T) {
	t.Parallel()
	_, ok := Stored.Class()
	assert.False(t, ok, "Stored is no failure")
	assert.Equal(t, "stored", Stored.String())
	assert.Equal(t, Stored, Verdict(0), "the zero Verdict is Stored")
	for v, c := range map[Verdict]token.Class{Permanent: token.ClassPermanent, Transient: token.ClassTransient, Unusable: token.ClassUnusable} {
		got, ok := v.Class()
		assert.True(t, ok)
		assert.Equal(t, c, got)
		assert.Equal(t, v, Fails(c))
		assert.Equal(t, c.String(), v.String())
		a := Answer{Status: 400}
		assert.Equal(t, c, a.Fail(v, "r").Class)
	}
	for _, c := range token.Classes {
		got, _ := Fails(c).Class()
		assert.Equal(t, c, got, "every class is a verdict")
	}
}
