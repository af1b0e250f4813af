package outbox_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

func secret(t *testing.T, what string) string {
	t.Helper()
	b := make([]byte, 18)
	rand.Read(b)
	return what + "-" + hex.EncodeToString(b)
}

func rawKey(t *testing.T) []byte {
	t.Helper()
	k, err := outbox.ParseKey(outbox.GenerateKey())
	require.NoError(t, err)
	return k
}

// entry returns an entry of connection id with distinctive secrets.
func entry(t *testing.T, id int64) outbox.Entry {
	t.Helper()
	obtained := time.Now().UTC().Truncate(time.Microsecond)
	rowExp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("IST", 5*3600+1800))
	return outbox.Entry{
		ConnectionID:    id,
		IntegrationType: "16",
		Token: token.Token{
			AccessToken:  secret(t, "access"),
			RefreshToken: secret(t, "refresh"),
			ExpiresAt:    obtained.Add(time.Hour),
		},
		Read: token.Connection{
			ID:              id,
			IntegrationType: "16",
			InputFields:     []byte(`{"clientSecret":"` + secret(t, "input") + `"}`),
			AccessToken:     secret(t, "oldaccess"),
			RefreshToken:    secret(t, "oldrefresh"),
			ExpiresAt:       &rowExp,
		},
		Obtained: obtained,
		Until:    obtained.Add(30 * 24 * time.Hour),
	}
}

// sameEntry checks that got is want as kept: the row's input fields and
// access token dropped.
func sameEntry(t *testing.T, want, got outbox.Entry) {
	t.Helper()
	assert.Equal(t, want.ConnectionID, got.ConnectionID)
	assert.Equal(t, want.IntegrationType, got.IntegrationType)
	assert.Equal(t, want.Token.AccessToken, got.Token.AccessToken)
	assert.Equal(t, want.Token.RefreshToken, got.Token.RefreshToken)
	assert.True(t, want.Token.ExpiresAt.Equal(got.Token.ExpiresAt), "token expiry %v, want %v", got.Token.ExpiresAt, want.Token.ExpiresAt)
	assert.Equal(t, want.Read.ID, got.Read.ID)
	assert.Equal(t, want.Read.IntegrationType, got.Read.IntegrationType)
	assert.Equal(t, want.Read.RefreshToken, got.Read.RefreshToken)
	assert.Empty(t, got.Read.InputFields, "input fields are not kept")
	assert.Empty(t, got.Read.AccessToken, "the row's access token is not kept")
	if want.Read.ExpiresAt == nil {
		assert.Nil(t, got.Read.ExpiresAt)
	} else if assert.NotNil(t, got.Read.ExpiresAt) {
		assert.True(t, want.Read.ExpiresAt.Equal(*got.Read.ExpiresAt), "row expiry %v, want %v", *got.Read.ExpiresAt, *want.Read.ExpiresAt)
		assert.NotSame(t, want.Read.ExpiresAt, got.Read.ExpiresAt, "the row expiry is copied")
	}
	assert.True(t, want.Obtained.Equal(got.Obtained), "obtained %v, want %v", got.Obtained, want.Obtained)
	assert.Equal(t, time.UTC, got.Obtained.Location(), "Obtained is UTC")
	assert.True(t, want.Until.Equal(got.Until), "until %v, want %v", got.Until, want.Until)
}

type impl struct {
	name string
	new  func(t *testing.T) outbox.Outbox
}

func redisOutbox(t *testing.T) outbox.Outbox {
	env := testenv.New(t)
	o, err := outbox.NewRedis(env.Redis, env.Queue, rawKey(t))
	require.NoError(t, err)
	return o
}

var impls = []impl{
	{"memory", func(*testing.T) outbox.Outbox { return outbox.NewMemory() }},
	{"redis", redisOutbox},
}

// TestRoundTrip: Put, Get, Has, All, Len and Delete keep one entry per
// connection, Put replaces, and Delete removes only the entry given.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			o := im.new(t)
			assert.Equal(t, im.name == "redis", o.Durable())

			n, err := o.Len(ctx)
			require.NoError(t, err)
			assert.Zero(t, n)
			all, bad, err := o.All(ctx)
			require.NoError(t, err)
			assert.Empty(t, all)
			assert.Empty(t, bad)

			a, b := entry(t, 12), entry(t, 7)
			b.Read.ExpiresAt = nil // a row with no token yet
			b.Until = time.Time{}  // no limit
			require.NoError(t, o.Put(ctx, a))
			require.NoError(t, o.Put(ctx, b))
			assert.NotEmpty(t, a.Read.InputFields, "Put does not change the caller's entry")

			got, ok, err := o.Get(ctx, 12)
			require.NoError(t, err)
			require.True(t, ok)
			sameEntry(t, a, got)
			got, ok, err = o.Get(ctx, 7)
			require.NoError(t, err)
			require.True(t, ok)
			sameEntry(t, b, got)

			_, ok, err = o.Get(ctx, 99)
			require.NoError(t, err)
			assert.False(t, ok, "no entry")
			has, err := o.Has(ctx, 12)
			require.NoError(t, err)
			assert.True(t, has)
			has, err = o.Has(ctx, 99)
			require.NoError(t, err)
			assert.False(t, has)
			n, err = o.Len(ctx)
			require.NoError(t, err)
			assert.Equal(t, 2, n)

			all, bad, err = o.All(ctx)
			require.NoError(t, err)
			assert.Empty(t, bad)
			require.Len(t, all, 2)
			sameEntry(t, b, all[0]) // by connection id
			sameEntry(t, a, all[1])

			// Put replaces.
			a2 := entry(t, 12)
			a2.Obtained = a.Obtained.Add(time.Minute)
			require.NoError(t, o.Put(ctx, a2))
			n, err = o.Len(ctx)
			require.NoError(t, err)
			assert.Equal(t, 2, n)
			got, ok, err = o.Get(ctx, 12)
			require.NoError(t, err)
			require.True(t, ok)
			sameEntry(t, a2, got)

			// Delete removes only the entry given.
			removed, err := o.Delete(ctx, a)
			require.NoError(t, err)
			assert.False(t, removed, "a replaced entry is not removed")
			removed, err = o.Delete(ctx, got)
			require.NoError(t, err)
			assert.True(t, removed)
			removed, err = o.Delete(ctx, got)
			require.NoError(t, err)
			assert.False(t, removed, "already gone")
			removed, err = o.Delete(ctx, b) // as put, not as read
			require.NoError(t, err)
			assert.True(t, removed)
			n, err = o.Len(ctx)
			require.NoError(t, err)
			assert.Zero(t, n)
			has, err = o.Has(ctx, 12)
			require.NoError(t, err)
			assert.False(t, has)
		})
	}
}

// TestExpiredDropped: an entry past its Until is dropped by Get and All.
func TestExpiredDropped(t *testing.T) {
	t.Parallel()
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			o := im.new(t)
			old, live := entry(t, 1), entry(t, 2)
			old.Until = time.Now().Add(-time.Second)
			require.NoError(t, o.Put(ctx, old))
			require.NoError(t, o.Put(ctx, live))
			_, ok, err := o.Get(ctx, 1)
			require.NoError(t, err)
			assert.False(t, ok, "past its Until")
			has, err := o.Has(ctx, 1)
			require.NoError(t, err)
			assert.False(t, has, "dropped by Get")

			require.NoError(t, o.Put(ctx, old))
			all, bad, err := o.All(ctx)
			require.NoError(t, err)
			assert.Empty(t, bad)
			require.Len(t, all, 1)
			sameEntry(t, live, all[0])
			n, err := o.Len(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "dropped by All")
		})
	}
}

// TestInvalidEntries: an entry without a connection, an access token or an
// Obtained time is refused, and the error quotes no secret.
func TestInvalidEntries(t *testing.T) {
	t.Parallel()
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			o := im.new(t)
			for name, mutate := range map[string]func(*outbox.Entry){
				"no connection":   func(e *outbox.Entry) { e.ConnectionID = 0 },
				"no access token": func(e *outbox.Entry) { e.Token.AccessToken = "" },
				"no obtained":     func(e *outbox.Entry) { e.Obtained = time.Time{} },
			} {
				e := entry(t, 5)
				mutate(&e)
				err := o.Put(context.Background(), e)
				require.Error(t, err, name)
				assertNoSecret(t, err.Error(), e)
			}
			n, err := o.Len(context.Background())
			require.NoError(t, err)
			assert.Zero(t, n)
		})
	}
}

// secrets lists every secret of an entry.
func secrets(e outbox.Entry) []string {
	return []string{e.Token.AccessToken, e.Token.RefreshToken, e.Read.RefreshToken, e.Read.AccessToken, string(e.Read.InputFields)}
}

// assertNoSecret checks that s holds none of e's secrets, raw or in base64
// or hex.
func assertNoSecret(t *testing.T, s string, e outbox.Entry) {
	t.Helper()
	for _, v := range secrets(e) {
		if v == "" {
			continue
		}
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)),
			base64.RawStdEncoding.EncodeToString([]byte(v)), base64.URLEncoding.EncodeToString([]byte(v)),
			hex.EncodeToString([]byte(v))} {
			assert.NotContains(t, s, form)
		}
		// The random part alone, in case a token were stored transformed.
		if i := strings.IndexByte(v, '-'); i > 0 && !strings.HasPrefix(v, "{") {
			assert.NotContains(t, s, v[i+1:])
		}
	}
}

// dump returns every key under the namespace with its values, plus the
// test kit's dump of the asynq keys.
func dump(t *testing.T, env *testenv.Env) string {
	t.Helper()
	ctx := context.Background()
	keys, err := env.Redis.Keys(ctx, "token-refresher:{"+env.Queue+"}*").Result()
	require.NoError(t, err)
	var b strings.Builder
	for _, k := range keys {
		v, err := env.Redis.HGetAll(ctx, k).Result()
		require.NoError(t, err)
		fmt.Fprintf(&b, "%s: %v\n", k, v)
		for f, raw := range v {
			fmt.Fprintf(&b, "%s %s %s\n", f, base64.StdEncoding.EncodeToString([]byte(raw)), hex.EncodeToString([]byte(raw)))
		}
	}
	return b.String() + env.RedisDump(t)
}

// TestNothingInPlaintext: Redis holds no secret of an entry, in any form.
func TestNothingInPlaintext(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	keyText := outbox.GenerateKey()
	key, err := outbox.ParseKey(keyText)
	require.NoError(t, err)
	o, err := outbox.NewRedis(env.Redis, env.Queue, key)
	require.NoError(t, err)
	ctx := context.Background()
	es := []outbox.Entry{entry(t, 1), entry(t, 2), entry(t, 3)}
	for _, e := range es {
		require.NoError(t, o.Put(ctx, e))
	}
	d := dump(t, env)
	require.Contains(t, d, o.Key(), "the dump sees the outbox")
	for _, e := range es {
		assertNoSecret(t, d, e)
	}
	assert.NotContains(t, d, keyText, "the key is not stored")
	assert.NotContains(t, d, hex.EncodeToString(key))
	assert.NotContains(t, d, base64.RawStdEncoding.EncodeToString(key))
	for _, e := range es { // and yet they open
		got, ok, err := o.Get(ctx, e.ConnectionID)
		require.NoError(t, err)
		require.True(t, ok)
		sameEntry(t, e, got)
	}
}

// TestSealedPerPut: the same entry put twice is stored as two different
// values (a fresh nonce per Put).
func TestSealedPerPut(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	o, err := outbox.NewRedis(env.Redis, env.Queue, rawKey(t))
	require.NoError(t, err)
	ctx := context.Background()
	e := entry(t, 4)
	require.NoError(t, o.Put(ctx, e))
	first, err := env.Redis.HGet(ctx, o.Key(), "4").Result()
	require.NoError(t, err)
	require.NoError(t, o.Put(ctx, e))
	second, err := env.Redis.HGet(ctx, o.Key(), "4").Result()
	require.NoError(t, err)
	assert.NotEqual(t, first, second)
	assert.Equal(t, "token-refresher:{"+env.Queue+"}:outbox", o.Key())
}

func unreadable(t *testing.T, err error) outbox.Unreadable {
	t.Helper()
	var u outbox.Unreadable
	require.True(t, errors.As(err, &u), "want an Unreadable, got %v", err)
	return u
}

// TestWrongKey: a replica with another key reports the entries as sealed
// with another key, and neither drops nor deletes them; a damaged value is
// reported corrupt.
func TestWrongKey(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := context.Background()
	mine, err := outbox.NewRedis(env.Redis, env.Queue, rawKey(t))
	require.NoError(t, err)
	theirs, err := outbox.NewRedis(env.Redis, env.Queue, rawKey(t))
	require.NoError(t, err)
	e := entry(t, 21)
	require.NoError(t, mine.Put(ctx, e))

	_, ok, err := theirs.Get(ctx, 21)
	require.Error(t, err)
	assert.False(t, ok)
	u := unreadable(t, err)
	assert.Equal(t, outbox.Unreadable{ConnectionID: 21, Reason: outbox.ReasonOtherKey}, u)
	assert.Equal(t, "outbox entry of connection 21 cannot be opened: sealed with another key", err.Error())
	has, err := theirs.Has(ctx, 21)
	require.NoError(t, err)
	assert.True(t, has, "Has does not open")

	all, bad, err := theirs.All(ctx)
	require.NoError(t, err)
	assert.Empty(t, all)
	assert.Equal(t, []outbox.Unreadable{{ConnectionID: 21, Reason: outbox.ReasonOtherKey}}, bad)

	removed, err := theirs.Delete(ctx, e)
	require.NoError(t, err)
	assert.False(t, removed, "another key cannot tell the entry: kept")
	n, err := theirs.Len(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "never dropped")
	got, ok, err := mine.Get(ctx, 21)
	require.NoError(t, err)
	require.True(t, ok)
	sameEntry(t, e, got)

	// Damaged values: garbage, a truncated value, an empty one, an unknown
	// version, a field that is not a connection id, a flipped bit.
	raw, err := env.Redis.HGet(ctx, mine.Key(), "21").Bytes()
	require.NoError(t, err)
	future := append([]byte(nil), raw...)
	future[0] = 9
	require.NoError(t, env.Redis.HSet(ctx, mine.Key(),
		"30", "garbage",
		"31", raw[:len(raw)/2],
		"32", "",
		"33", future,
		"nope", "whatever",
	).Err())
	// A flipped bit in a value at its own field (re-put 34 first, so the
	// AAD is right and only the ciphertext is damaged).
	e34 := entry(t, 34)
	require.NoError(t, mine.Put(ctx, e34))
	raw34, err := env.Redis.HGet(ctx, mine.Key(), "34").Bytes()
	require.NoError(t, err)
	raw34[len(raw34)-20] ^= 0x40
	require.NoError(t, env.Redis.HSet(ctx, mine.Key(), "34", raw34).Err())

	for _, id := range []int64{30, 31, 32, 34} {
		_, ok, err := mine.Get(ctx, id)
		assert.False(t, ok)
		assert.Equal(t, outbox.Unreadable{ConnectionID: id, Reason: outbox.ReasonCorrupt}, unreadable(t, err), "connection %d", id)
	}
	_, _, err = mine.Get(ctx, 33)
	assert.Equal(t, outbox.Unreadable{ConnectionID: 33, Reason: "unknown format version 9"}, unreadable(t, err))

	all, bad, err = mine.All(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)
	sameEntry(t, e, all[0])
	assert.Equal(t, []outbox.Unreadable{
		{ConnectionID: 0, Reason: outbox.ReasonBadField},
		{ConnectionID: 30, Reason: outbox.ReasonCorrupt},
		{ConnectionID: 31, Reason: outbox.ReasonCorrupt},
		{ConnectionID: 32, Reason: outbox.ReasonCorrupt},
		{ConnectionID: 33, Reason: "unknown format version 9"},
		{ConnectionID: 34, Reason: outbox.ReasonCorrupt},
	}, bad)
	n, err = mine.Len(ctx)
	require.NoError(t, err)
	assert.Equal(t, 7, n, "unreadable entries are never dropped")
	removed, err = mine.Delete(ctx, e34)
	require.NoError(t, err)
	assert.False(t, removed, "a corrupt value is not the entry")
}

// TestMovedValue: a sealed value copied to another connection's field, or
// to another namespace, does not open there.
func TestMovedValue(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := context.Background()
	key := rawKey(t)
	o, err := outbox.NewRedis(env.Redis, env.Queue, key)
	require.NoError(t, err)
	require.NoError(t, o.Put(ctx, entry(t, 1)))
	raw, err := env.Redis.HGet(ctx, o.Key(), "1").Bytes()
	require.NoError(t, err)

	require.NoError(t, env.Redis.HSet(ctx, o.Key(), "2", raw).Err())
	_, ok, err := o.Get(ctx, 2)
	assert.False(t, ok)
	assert.Equal(t, outbox.Unreadable{ConnectionID: 2, Reason: outbox.ReasonCorrupt}, unreadable(t, err))

	other, err := outbox.NewRedis(env.Redis, env.Queue+"_other", key)
	require.NoError(t, err)
	require.NoError(t, env.Redis.HSet(ctx, other.Key(), "1", raw).Err())
	t.Cleanup(func() { env.Redis.Del(context.Background(), other.Key()) })
	_, ok, err = other.Get(ctx, 1)
	assert.False(t, ok)
	assert.Equal(t, outbox.Unreadable{ConnectionID: 1, Reason: outbox.ReasonCorrupt}, unreadable(t, err))

	_, ok, err = o.Get(ctx, 1)
	require.NoError(t, err, "still opens at its own field")
	assert.True(t, ok)
}

// TestStaleDelete: a Delete of an entry that a newer Put replaced removes
// nothing, whether the entry was read (Get) or is the one put; a Delete of
// the same entry re-sealed by another Put removes it.
func TestStaleDelete(t *testing.T) {
	t.Parallel()
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			o := im.new(t)
			old := entry(t, 8)
			require.NoError(t, o.Put(ctx, old))
			read, ok, err := o.Get(ctx, 8)
			require.NoError(t, err)
			require.True(t, ok)

			newer := entry(t, 8)
			newer.Obtained = old.Obtained.Add(time.Second)
			require.NoError(t, o.Put(ctx, newer))
			for _, stale := range []outbox.Entry{read, old} {
				removed, err := o.Delete(ctx, stale)
				require.NoError(t, err)
				assert.False(t, removed)
			}
			// Same access token, another Obtained: another entry.
			sameToken := newer
			sameToken.Obtained = newer.Obtained.Add(-time.Nanosecond)
			removed, err := o.Delete(ctx, sameToken)
			require.NoError(t, err)
			assert.False(t, removed)
			got, ok, err := o.Get(ctx, 8)
			require.NoError(t, err)
			require.True(t, ok)
			sameEntry(t, newer, got)

			// An entry read, then changed by the caller, is not the one
			// stored.
			changed := got
			changed.Token.AccessToken = secret(t, "other")
			removed, err = o.Delete(ctx, changed)
			require.NoError(t, err)
			assert.False(t, removed)

			// The same entry put again (re-sealed): a Delete of it as read
			// before still removes it.
			require.NoError(t, o.Put(ctx, newer))
			removed, err = o.Delete(ctx, got)
			require.NoError(t, err)
			assert.True(t, removed)
			n, err := o.Len(ctx)
			require.NoError(t, err)
			assert.Zero(t, n)
		})
	}
}

// TestDeleteRacesPut: while one goroutine puts ever newer entries of a
// connection and another deletes each older one, the newest entry is never
// removed.
func TestDeleteRacesPut(t *testing.T) {
	t.Parallel()
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			o := im.new(t)
			const rounds = 50
			es := make([]outbox.Entry, rounds)
			base := entry(t, 3)
			for i := range es {
				es[i] = base
				es[i].Token.AccessToken = fmt.Sprintf("%s-%d", base.Token.AccessToken, i)
				es[i].Obtained = base.Obtained.Add(time.Duration(i) * time.Millisecond)
			}
			var wg sync.WaitGroup
			puts := make(chan int, rounds)
			wg.Add(2)
			go func() {
				defer wg.Done()
				defer close(puts)
				for i, e := range es {
					assert.NoError(t, o.Put(ctx, e))
					puts <- i
				}
			}()
			go func() {
				defer wg.Done()
				for i := range puts {
					if i > 0 {
						_, err := o.Delete(ctx, es[i-1])
						assert.NoError(t, err)
					}
				}
			}()
			wg.Wait()
			got, ok, err := o.Get(ctx, 3)
			require.NoError(t, err)
			require.True(t, ok, "the newest entry is kept")
			assert.Equal(t, es[rounds-1].Token.AccessToken, got.Token.AccessToken)
		})
	}
}

// TestNewRedisKey: the key must be 32 bytes, and the error says so without
// the key.
func TestNewRedisKey(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	short := []byte("0123456789abcdef")
	_, err := outbox.NewRedis(env.Redis, env.Queue, short)
	require.Error(t, err)
	assert.Equal(t, "outbox: key is 16 bytes; AES-256 needs 32", err.Error())
	_, err = outbox.NewRedis(env.Redis, "", rawKey(t))
	assert.Error(t, err)
	_, err = outbox.NewRedis(nil, env.Queue, rawKey(t))
	assert.Error(t, err)
}

// TestParseKey: base64 with or without padding and 64 hex characters are
// read; anything else is refused with an error that never repeats the
// input.
func TestParseKey(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	rand.Read(key)
	for name, in := range map[string]string{
		"base64":          base64.StdEncoding.EncodeToString(key),
		"base64 unpadded": base64.RawStdEncoding.EncodeToString(key),
		"hex":             hex.EncodeToString(key),
		"upper hex":       strings.ToUpper(hex.EncodeToString(key)),
		"with newline":    base64.StdEncoding.EncodeToString(key) + "\n",
	} {
		got, err := outbox.ParseKey(in)
		require.NoError(t, err, name)
		assert.Equal(t, key, got, name)
	}

	gen := outbox.GenerateKey()
	assert.Len(t, gen, 44)
	k, err := outbox.ParseKey(gen)
	require.NoError(t, err)
	assert.Len(t, k, 32)
	assert.NotEqual(t, gen, outbox.GenerateKey(), "random")

	short := base64.StdEncoding.EncodeToString(key[:16])
	for _, c := range []struct{ name, in, want string }{
		{"short base64", short, "outbox key decodes to 16 bytes; AES-256 needs 32"},
		{"short base64 unpadded", base64.RawStdEncoding.EncodeToString(key[:16]), "outbox key decodes to 16 bytes; AES-256 needs 32"},
		{"long base64", base64.StdEncoding.EncodeToString(append(key, key...)), "outbox key decodes to 64 bytes; AES-256 needs 32"},
		{"short hex", hex.EncodeToString(key[:16]), "outbox key is 32 hex characters (16 bytes); AES-256 needs 64 hex characters (32 bytes)"},
		{"long hex", hex.EncodeToString(append(key, 1)), "outbox key is 66 hex characters (33 bytes); AES-256 needs 64 hex characters (32 bytes)"},
		{"garbage", "this is not a key!!", "outbox key is neither standard base64 nor 64 hex characters"},
		{"url base64", base64.URLEncoding.EncodeToString(append([]byte{0xfb, 0xff}, key[:30]...)), "outbox key is neither standard base64 nor 64 hex characters"},
		{"empty", "  ", "outbox key is empty; want base64 or 64 hex characters of a 32-byte key"},
	} {
		got, err := outbox.ParseKey(c.in)
		require.Error(t, err, c.name)
		assert.Nil(t, got, c.name)
		assert.Equal(t, c.want, err.Error(), c.name)
		if strings.TrimSpace(c.in) != "" {
			assert.NotContains(t, err.Error(), c.in, c.name)
			assert.NotContains(t, err.Error(), c.in[:8], c.name)
		}
	}
}
