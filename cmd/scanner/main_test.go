package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

func getenv(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestInvalidSettingStopsStartup(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--once"}, getenv(map[string]string{
		"WMS_DB_DSN":    "root:hunter2@tcp(127.0.0.1:3306)/a",
		"IE_DB_DSN":     "root@tcp(127.0.0.1:3306)/b",
		"SCAN_INTERVAL": "often",
	}), &stdout, &stderr)
	assert.Equal(t, 2, code)
	assert.Equal(t, "scanner: invalid setting SCAN_INTERVAL: \"often\" is not a duration (like 30s, 1m, 1h)\n", stderr.String())
}

func TestDryRunPrintsDueAndEnqueuesNothing(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	old := time.Date(2022, 8, 17, 16, 25, 8, 0, time.UTC)
	env.Insert(t,
		testenv.Row{ID: 11, InputFields: testenv.Str(`{"username":"abc@itc.com","password":"abc123"}`), ExpiresAt: &old, AccessToken: testenv.Str("AT-secret")},
		testenv.Row{ID: 12, InputFields: testenv.Str(`{"username":"x","password":"pw-x"}`)},
		testenv.Row{ID: 13, InputFields: testenv.Str(`{}`), ExpiresAt: testenv.Time(time.Now().Add(time.Hour))},
	)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--dry-run"}, getenv(map[string]string{
		"WMS_DB_DSN": env.WMSDSN, "IE_DB_DSN": env.IEDSN, "REDIS_URL": env.RedisURL, "REFRESH_QUEUE": env.Queue,
	}), &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	out := stdout.String()
	assert.Contains(t, out, "connection_id=11 integration_type=16 provider=ajio expires_at=2022-08-17T16:25:08Z\n")
	assert.Contains(t, out, "connection_id=12 integration_type=16 provider=ajio expires_at=never\n")
	assert.NotContains(t, out, "connection_id=13")
	for _, secret := range []string{"abc123", "pw-x", "AT-secret"} {
		assert.NotContains(t, out+stderr.String(), secret)
	}
	_, err := asynq.NewInspectorFromRedisClient(env.Redis).GetQueueInfo(env.Queue)
	require.Error(t, err, "a dry run enqueues nothing: the queue does not exist")
	assert.Contains(t, err.Error(), "does not exist")
}

func TestOnceEnqueuesAndExits(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.Insert(t, testenv.Row{ID: 11, InputFields: testenv.Str(`{}`)}, testenv.Row{ID: 12, InputFields: testenv.Str(`{}`)})
	vars := map[string]string{"WMS_DB_DSN": env.WMSDSN, "IE_DB_DSN": env.IEDSN, "REDIS_URL": env.RedisURL, "REFRESH_QUEUE": env.Queue}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"--once"}, getenv(vars), &stdout, &stderr), stderr.String())
	info, err := asynq.NewInspectorFromRedisClient(env.Redis).GetQueueInfo(env.Queue)
	require.NoError(t, err)
	assert.Equal(t, 2, info.Pending)
	assert.True(t, strings.Contains(stderr.String(), `"enqueued":2`), stderr.String())

	// A second scan finds both already queued.
	stderr.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"--once"}, getenv(vars), &stdout, &stderr))
	assert.Contains(t, stderr.String(), `"already_queued":2`)
}

func TestOnceFailsWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--once"}, getenv(map[string]string{
		"WMS_DB_DSN": env.WMSDSN, "IE_DB_DSN": env.IEDSN, "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0",
	}), &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "REDIS_URL: cannot reach Redis at 127.0.0.1:1")
	assert.NotContains(t, stderr.String(), "hunter2")
}

// TestShardedScanAndAMismatchedShardCount: with REFRESH_QUEUE_SHARDS=2 a scan
// puts each connection's task in its shard (the id modulo 2), and a scanner
// started afterwards with another number stops with one line naming the
// setting and enqueues nothing: its tasks would land in queues the
// refreshers do not serve.
func TestShardedScanAndAMismatchedShardCount(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.Insert(t, testenv.Row{ID: 11, InputFields: testenv.Str(`{}`)}, testenv.Row{ID: 12, InputFields: testenv.Str(`{}`)},
		testenv.Row{ID: 13, InputFields: testenv.Str(`{}`)})
	vars := map[string]string{"WMS_DB_DSN": env.WMSDSN, "IE_DB_DSN": env.IEDSN, "REDIS_URL": env.RedisURL,
		"REFRESH_QUEUE": env.Queue, "REFRESH_QUEUE_SHARDS": "2"}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"--once"}, getenv(vars), &stdout, &stderr), stderr.String())
	insp := asynq.NewInspectorFromRedisClient(env.Redis)
	for name, want := range map[string]int{env.Queue: 1, env.Queue + ".1": 2} {
		info, err := insp.GetQueueInfo(name)
		require.NoError(t, err, name)
		assert.Equal(t, want, info.Pending, name)
	}

	// Redis lost the record (its master restarted empty): the next scan
	// writes it back.
	require.NoError(t, env.Redis.Del(context.Background(), task.ShardsKey(env.Queue)).Err())
	require.Equal(t, 0, run(context.Background(), []string{"--once"}, getenv(vars), &stdout, &stderr), stderr.String())
	assert.Equal(t, "2", env.Redis.Get(context.Background(), task.ShardsKey(env.Queue)).Val())

	env.Insert(t, testenv.Row{ID: 14, InputFields: testenv.Str(`{}`)})
	vars["REFRESH_QUEUE_SHARDS"] = "3"
	stderr.Reset()
	assert.Equal(t, 1, run(context.Background(), []string{"--once"}, getenv(vars), &stdout, &stderr))
	assert.Contains(t, stderr.String(), "invalid setting REFRESH_QUEUE_SHARDS")
	assert.Contains(t, stderr.String(), "has 2 in Redis")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, "one line: %s", stderr.String())
	for _, name := range []string{env.Queue, env.Queue + ".2"} {
		info, err := insp.GetQueueInfo(name)
		if name == env.Queue {
			require.NoError(t, err)
			assert.Equal(t, 1, info.Pending, "nothing enqueued by the refused scanner")
		} else {
			assert.Error(t, err, "no shard 2 was made")
		}
	}
}
