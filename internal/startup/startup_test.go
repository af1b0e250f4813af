package startup_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/provider/ajio"
	"github.com/eshopbox/token-refresher/internal/startup"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/webhook"
	"github.com/eshopbox/token-refresher/internal/worker"
)

// TestConfigMirrorsThePackages: config imports none of the packages its
// settings are for, so it writes out their constants; they are the same.
func TestConfigMirrorsThePackages(t *testing.T) {
	t.Parallel()
	assert.Equal(t, task.MaxShards, config.MaxQueueShards)
	assert.Equal(t, task.DefaultClusterShards, config.DefaultClusterQueueShards)
	shown := map[string]string{}
	for _, s := range config.SettingsOf(config.BinRefresher) {
		shown[s.Name] = s.Shown()
	}
	assert.Equal(t, task.DefaultQueue, shown["REFRESH_QUEUE"])
	assert.Equal(t, "("+ajio.DefaultBaseURL+")", shown["AJIO_BASE_URL"])
	assert.Equal(t, strings.Join(webhook.Events, ","), shown["WEBHOOK_EVENTS"])
	assert.Contains(t, shown["REFRESH_QUEUE_SHARDS"], strconv.Itoa(task.DefaultClusterShards))
}

// TestNamed: worker.New's option errors become the setting's error, one
// line naming the variable; any other error is left as it is.
func TestNamed(t *testing.T) {
	t.Parallel()
	inner := errors.New("is not 32 bytes")
	for opt, name := range map[worker.Option]string{
		worker.OptionProviders: "PROVIDERS_FILE", worker.OptionOutboxKey: "OUTBOX_KEY", worker.OptionWebhookSecret: "WEBHOOK_SECRET",
	} {
		err := startup.Named(&worker.OptionError{Option: opt, Err: inner})
		var se *config.SettingError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, name, se.Name)
		assert.Equal(t, "invalid setting "+name+": is not 32 bytes", err.Error())
	}
	other := errors.New("other")
	assert.Equal(t, other, startup.Named(other))
	assert.NoError(t, startup.Named(nil))
}
