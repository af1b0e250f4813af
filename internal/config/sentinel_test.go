package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/config"
)

// TestSentinelURL: a redis-sentinel URL fills every field of asynq's failover
// option, the same for the scanner, the refresher and the dashboard: the
// userinfo is the sentinels' password (asynq's form), the master's username
// and password come from the query (go-redis's form).
func TestSentinelURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		want asynq.RedisFailoverClientOpt
		tls  string // the TLS server name, when TLS is on
	}{
		{"asynq's documented form", "redis-sentinel://:s3cret@h1:26379,h2:26379,h3:26379?master=mymaster",
			asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"h1:26379", "h2:26379", "h3:26379"},
				SentinelPassword: "s3cret"}, ""},
		{"master credentials and db", "redis-sentinel://:s3cret@h1:26379,h2:26380/3?master=tokens&username=app&password=m%40ster%26pw",
			asynq.RedisFailoverClientOpt{MasterName: "tokens", SentinelAddrs: []string{"h1:26379", "h2:26380"},
				SentinelPassword: "s3cret", Username: "app", Password: "m@ster&pw", DB: 3}, ""},
		{"no sentinel password", "redis-sentinel://10.0.0.1:26379?master=m&password=pw",
			asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"10.0.0.1:26379"}, Password: "pw"}, ""},
		{"sentinel user", "redis-sentinel://watch:s3cret@h1:26379?master=m",
			asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"h1:26379"}, SentinelUsername: "watch", SentinelPassword: "s3cret"}, ""},
		{"tls parameter and timeouts", "redis-sentinel://h1:26379,h2:26379/1?master=m&password=pw&tls=true&dial_timeout=2s&read_timeout=4s&write_timeout=5s&pool_size=7",
			asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"h1:26379", "h2:26379"}, Password: "pw", DB: 1,
				DialTimeout: 2 * time.Second, ReadTimeout: 4 * time.Second, WriteTimeout: 5 * time.Second, PoolSize: 7}, "h1"},
		{"rediss-style scheme", "rediss-sentinel://:s@h1:26379?master=m",
			asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"h1:26379"}, SentinelPassword: "s"}, "h1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kv := map[string]string{"REDIS_URL": tt.url}
			s, err := config.LoadScanner(env(kv))
			require.NoError(t, err)
			r, err := config.LoadRefresher(env(kv))
			require.NoError(t, err)
			d, err := config.LoadDashboard(env(map[string]string{"REDIS_URL": tt.url, "DASHBOARD_USER": "u", "DASHBOARD_PASSWORD": "p-0123456789"}))
			require.NoError(t, err)
			for _, opt := range []asynq.RedisConnOpt{s.Redis, r.Redis, d.Redis} {
				got, ok := opt.(asynq.RedisFailoverClientOpt)
				require.True(t, ok, "%T", opt)
				if tt.tls == "" {
					assert.Nil(t, got.TLSConfig)
				} else {
					require.NotNil(t, got.TLSConfig)
					assert.Equal(t, tt.tls, got.TLSConfig.ServerName)
					assert.False(t, got.TLSConfig.InsecureSkipVerify)
				}
				got.TLSConfig = nil
				assert.Equal(t, tt.want, got)
			}
		})
	}
}

// TestSentinelURLErrors: a bad redis-sentinel URL stops start-up with one
// line naming REDIS_URL and the part that is wrong, and no password from it.
func TestSentinelURLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, url, want string }{
		{"no master", "redis-sentinel://:hunter2@h1:26379?password=hunter2", "needs the master name"},
		{"no hosts", "redis-sentinel:///0?master=m&password=hunter2", "needs sentinel addresses"},
		{"no port", "redis-sentinel://:hunter2@h1,h2:26379?master=m", "sentinel address 1 is not host:port"},
		{"bad port", "redis-sentinel://:hunter2@h1:26379,h2:0?master=m", "sentinel address 2 has no valid port"},
		{"bad db", "redis-sentinel://:hunter2@h1:26379/hunter2?master=m", "database number"},
		{"unknown parameter", "redis-sentinel://h1:26379?master=m&passwd=hunter2", `unknown redis-sentinel parameter "passwd"`},
		{"repeated parameter", "redis-sentinel://h1:26379?master=m&password=hunter2&password=hunter2", `"password" is given more than once`},
		{"bad tls", "redis-sentinel://h1:26379?master=m&password=hunter2&tls=hunter2", "tls is not true or false"},
		{"skip_verify without tls", "redis-sentinel://h1:26379?master=m&skip_verify=true&password=hunter2", "needs tls=true"},
		{"bad timeout", "redis-sentinel://h1:26379?master=m&password=hunter2&read_timeout=hunter2", "read_timeout has an invalid value"},
	}
	redisURLErrors(t, tests)
}

// redisURLErrors checks that each bad REDIS_URL stops start-up with one
// line naming the setting and holding want, and never hunter2 (every
// test URL's password).
func redisURLErrors(t *testing.T, tests []struct{ name, url, want string }) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.LoadRefresher(env(map[string]string{"REDIS_URL": tt.url}))
			require.Error(t, err)
			var se *config.SettingError
			require.True(t, errors.As(err, &se), "%v", err)
			assert.Equal(t, "REDIS_URL", se.Name)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "hunter2")
			assert.False(t, strings.Contains(err.Error(), "\n"), "one line")
		})
	}
}
