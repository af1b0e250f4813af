package config_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/redisconn"
)

// TestClusterURL: a redis-cluster URL becomes go-redis's cluster options,
// whose client is the *redis.ClusterClient asynq and asynqmon know a
// cluster by, the same for the scanner, the refresher and the dashboard,
// with the slot map reread every redisconn.ClusterStateReload; its scan tasks
// are spread over
// config.DefaultClusterQueueShards queues unless REFRESH_QUEUE_SHARDS says
// otherwise.
func TestClusterURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		want redis.ClusterOptions
		tls  string // the TLS server name, when TLS is on
	}{
		{"three seeds", "redis-cluster://h1:7000,h2:7001,h3:7002",
			redis.ClusterOptions{Addrs: []string{"h1:7000", "h2:7001", "h3:7002"}}, ""},
		{"password, percent-encoded", "redis-cluster://:m%40ster%26pw@10.0.0.1:6379,10.0.0.2:6379/",
			redis.ClusterOptions{Addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379"}, Password: "m@ster&pw"}, ""},
		{"ACL user", "redis-cluster://app:pw@h1:6379",
			redis.ClusterOptions{Addrs: []string{"h1:6379"}, Username: "app", Password: "pw"}, ""},
		{"timeouts and redirects", "redis-cluster://h1:6379,h2:6379?dial_timeout=2s&read_timeout=4s&write_timeout=5s&max_redirects=3",
			redis.ClusterOptions{Addrs: []string{"h1:6379", "h2:6379"}, DialTimeout: 2 * time.Second,
				ReadTimeout: 4 * time.Second, WriteTimeout: 5 * time.Second, MaxRedirects: 3}, ""},
		{"tls parameter", "redis-cluster://:pw@h1:6379,h2:6379?tls=true",
			redis.ClusterOptions{Addrs: []string{"h1:6379", "h2:6379"}, Password: "pw"}, "h1"},
		{"rediss-cluster scheme", "rediss-cluster://h1:6379",
			redis.ClusterOptions{Addrs: []string{"h1:6379"}}, "h1"},
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
			assert.Equal(t, config.DefaultClusterQueueShards, s.QueueShards)
			assert.Equal(t, config.DefaultClusterQueueShards, r.QueueShards)
			for _, opt := range []asynq.RedisConnOpt{s.Redis, r.Redis, d.Redis} {
				co, ok := opt.(redisconn.ClusterOpt)
				require.True(t, ok, "%T", opt)
				client := opt.MakeRedisClient()
				assert.IsType(t, &redis.ClusterClient{}, client)
				client.(*redis.ClusterClient).Close()
				got := *co.Options
				assert.Equal(t, redisconn.ClusterStateReload, got.ClusterStateReloadInterval)
				if tt.tls == "" {
					assert.Nil(t, got.TLSConfig)
				} else {
					require.NotNil(t, got.TLSConfig)
					assert.Equal(t, tt.tls, got.TLSConfig.ServerName)
					assert.False(t, got.TLSConfig.InsecureSkipVerify)
				}
				got.TLSConfig = nil
				assert.Equal(t, tt.want.Addrs, got.Addrs)
				assert.Equal(t, tt.want.Username, got.Username)
				assert.Equal(t, tt.want.Password, got.Password)
				assert.Equal(t, tt.want.DialTimeout, got.DialTimeout)
				assert.Equal(t, tt.want.ReadTimeout, got.ReadTimeout)
				assert.Equal(t, tt.want.WriteTimeout, got.WriteTimeout)
				assert.Equal(t, tt.want.MaxRedirects, got.MaxRedirects)
			}
		})
	}
}

// TestClusterURLErrors: a bad redis-cluster URL stops start-up with one
// line naming REDIS_URL and the part that is wrong, and no password from it.
func TestClusterURLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, url, want string }{
		{"no hosts", "redis-cluster://:hunter2@", "needs node addresses"},
		{"no port", "redis-cluster://:hunter2@h1,h2:6379", "node address 1 is not host:port"},
		{"bad port", "redis-cluster://:hunter2@h1:6379,h2:0", "node address 2 has no valid port"},
		{"a database", "redis-cluster://:hunter2@h1:6379/2", "has no database number"},
		{"unknown parameter", "redis-cluster://h1:6379?password=hunter2", `unknown redis-cluster parameter "password"`},
		{"repeated parameter", "redis-cluster://:hunter2@h1:6379?read_timeout=1s&read_timeout=2s", `"read_timeout" is given more than once`},
		{"bad tls", "redis-cluster://:hunter2@h1:6379?tls=hunter2", "tls is not true or false"},
		{"skip_verify (go-redis has none for a cluster)", "rediss-cluster://:hunter2@h1:6379?skip_verify=true", `unknown redis-cluster parameter "skip_verify"`},
		{"bad timeout", "redis-cluster://:hunter2@h1:6379?read_timeout=hunter2", "read_timeout has an invalid value"},
		{"bad redirects", "redis-cluster://:hunter2@h1:6379?max_redirects=hunter2", "max_redirects has an invalid value"},
	}
	redisURLErrors(t, tests)
}

// TestQueueShardsSetting: REFRESH_QUEUE_SHARDS is 1 on one Redis unless
// set, is read as given on either kind of Redis, and a bad value names the
// setting.
func TestQueueShardsSetting(t *testing.T) {
	t.Parallel()
	s, err := config.LoadScanner(env(nil))
	require.NoError(t, err)
	assert.Equal(t, 1, s.QueueShards, "one Redis: one queue, as before shards")

	for _, url := range []string{"redis://127.0.0.1:6379/0", "redis-cluster://h1:6379"} {
		r, err := config.LoadRefresher(env(map[string]string{"REDIS_URL": url, "REFRESH_QUEUE_SHARDS": "24"}))
		require.NoError(t, err)
		assert.Equal(t, 24, r.QueueShards, url)
	}
	for _, bad := range []string{"0", "many", "100000"} {
		_, err := config.LoadScanner(env(map[string]string{"REFRESH_QUEUE_SHARDS": bad}))
		var se *config.SettingError
		require.True(t, errors.As(err, &se), "%q: %v", bad, err)
		assert.Equal(t, "REFRESH_QUEUE_SHARDS", se.Name)
	}
}
