package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(kv map[string]string) Getenv {
	base := map[string]string{
		"WMS_DB_DSN": "root@tcp(127.0.0.1:3306)/wms",
		"IE_DB_DSN":  "root@tcp(127.0.0.1:3306)/ie",
	}
	for k, v := range kv {
		base[k] = v
	}
	return func(k string) string { return base[k] }
}

func TestRefresherReliabilitySettings(t *testing.T) {
	t.Parallel()
	cfg, err := LoadRefresher(env(nil))
	require.NoError(t, err)
	assert.Equal(t, time.Second, cfg.RetryBaseDelay)
	assert.Equal(t, time.Minute, cfg.RetryMaxDelay)
	assert.Equal(t, time.Second, cfg.RetryCheck)
	assert.Equal(t, 5, cfg.BreakerFailures)
	assert.Equal(t, 30*time.Second, cfg.BreakerCooldown)
	assert.Equal(t, 25*time.Second, cfg.DrainTimeout)

	cfg, err = LoadRefresher(env(map[string]string{
		"RETRY_BASE_DELAY": "250ms", "RETRY_MAX_DELAY": "2s", "RETRY_CHECK_INTERVAL": "100ms",
		"BREAKER_FAILURES": "3", "BREAKER_COOLDOWN": "5s", "DRAIN_TIMEOUT": "1s",
	}))
	require.NoError(t, err)
	assert.Equal(t, 250*time.Millisecond, cfg.RetryBaseDelay)
	assert.Equal(t, 100*time.Millisecond, cfg.RetryCheck)
	assert.Equal(t, 3, cfg.BreakerFailures)
	assert.Equal(t, 5*time.Second, cfg.BreakerCooldown)

	for _, tc := range []struct {
		name, key, value, setting string
	}{
		{"base longer than the cap", "RETRY_BASE_DELAY", "2m", "RETRY_BASE_DELAY"},
		{"breaker threshold zero", "BREAKER_FAILURES", "0", "BREAKER_FAILURES"},
		{"breaker cool-off not a duration", "BREAKER_COOLDOWN", "soon", "BREAKER_COOLDOWN"},
		{"retry check negative", "RETRY_CHECK_INTERVAL", "-1s", "RETRY_CHECK_INTERVAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadRefresher(env(map[string]string{tc.key: tc.value}))
			var se *SettingError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.setting, se.Name)
		})
	}
}
