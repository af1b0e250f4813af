// Package outbox keeps tokens a marketplace has issued but the database has
// not stored yet. When MySQL refuses writes (a read-only failover window), a
// token in hand, above all a rotated OAuth refresh token that retired the old
// one, must not be lost: it waits here until some refresher replica stores it
// and deletes it.
//
// Two implementations share one contract (Outbox):
//
//   - Redis (NewRedis) keeps entries in one Redis hash,
//     token-refresher:{<namespace>}:outbox, so they survive a SIGKILL and are
//     seen by every replica. Each value is sealed with AES-256-GCM: Redis never
//     holds a token in plaintext.
//   - Memory (NewMemory) keeps them in the process, for tests and for running
//     without a sealing key; its entries die with the process (Durable false).
//
// At most one entry is kept per connection: Put replaces. Delete is
// compare-and-delete, so a replica that stored an older token never removes a
// newer one put meanwhile.
//
// An entry past its Until is useless: Get and All drop it (and do not return
// it). Has and Len do not open entries, so they count such an entry until a
// Get or All has dropped it.
package outbox

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/internal/token"
)

// Entry is one token in hand that is not yet stored.
type Entry struct {
	// ConnectionID is the connection the token was issued for (> 0).
	ConnectionID    int64
	IntegrationType string
	// Token is the issued token (secret). Token.AccessToken must not be
	// empty: with Obtained it is the entry's identity (see Delete).
	Token token.Token
	// Read is what the row held when the marketplace call was made, as the
	// store's guarded write needs it (internal/mysql Store.Save): ID,
	// IntegrationType, RefreshToken (secret) and ExpiresAt. InputFields and
	// AccessToken are not kept: Put drops them.
	Read token.Connection
	// Obtained is when the marketplace call was made; kept in UTC, must not
	// be zero.
	Obtained time.Time
	// Until is the UTC wall time after which the token is useless and the
	// entry is dropped; zero means no limit.
	Until time.Time

	// sealed is the exact value a Redis outbox read for this entry (Get,
	// All), so that Delete can compare-and-delete without opening the
	// current value again. Put cannot fill it (Entry is passed by value).
	sealed *sealed
}

// sealed is a stored value and the identity of the entry it was read as.
type sealed struct {
	raw []byte
	id  [sha256.Size]byte
}

// Unreadable is a stored entry that cannot be opened. It is also the error
// Get returns for such an entry. Reason never holds a secret.
type Unreadable struct {
	// ConnectionID is the hash field's id; 0 when the field is not a
	// connection id.
	ConnectionID int64
	Reason       string
}

// Reasons of Unreadable.
const (
	// ReasonOtherKey: the value was sealed with a key other than this
	// outbox's (a replica with another OUTBOX key, or a rotated key).
	ReasonOtherKey = "sealed with another key"
	// ReasonCorrupt: the value does not open under this key for this
	// connection and namespace: damaged, truncated, or moved from another
	// field or namespace.
	ReasonCorrupt = "corrupt"
	// ReasonBadField: the hash field is not a decimal connection id.
	ReasonBadField = "field is not a connection id"
)

func (u Unreadable) Error() string {
	return fmt.Sprintf("outbox entry of connection %d cannot be opened: %s", u.ConnectionID, u.Reason)
}

// Outbox keeps entries by connection id; at most one entry per connection
// (Put replaces).
type Outbox interface {
	// Put keeps e, replacing the connection's entry if there is one.
	Put(ctx context.Context, e Entry) error
	// Get returns the entry of a connection, or (Entry{}, false, nil). An
	// entry that cannot be opened is returned as an Unreadable error and
	// left in place; an entry past its Until is dropped and not returned.
	Get(ctx context.Context, connectionID int64) (Entry, bool, error)
	// Has is cheaper than Get (no decryption). It reports an unreadable or
	// expired entry too.
	Has(ctx context.Context, connectionID int64) (bool, error)
	// All returns every entry, by connection id; entries that cannot be
	// opened (sealed with another key, corrupt) are returned in the second
	// result as connection ids with a reason, never dropped. Expired entries
	// are dropped and not returned.
	All(ctx context.Context) ([]Entry, []Unreadable, error)
	// Delete removes the connection's entry only if it is still the one
	// given (same Token.AccessToken and Obtained); it reports whether it
	// removed it. A newer Put for the same connection is never removed by an
	// older Delete.
	Delete(ctx context.Context, e Entry) (bool, error)
	// Len is the number of entries kept, readable or not.
	Len(ctx context.Context) (int, error)
	// Durable says whether entries survive the process (Redis) or not
	// (memory).
	Durable() bool
}

// KeySize is the size of a sealing key in bytes (AES-256).
const KeySize = 32

// ParseKey reads a sealing key written as standard base64 (with or without
// padding) or as 64 hex characters; surrounding white space is ignored. It
// returns the raw 32 bytes. Its errors say what is wrong and never repeat
// the input.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("outbox key is empty; want base64 or 64 hex characters of a 32-byte key")
	}
	// Standard base64 of 32 bytes is 44 characters ending in '=' (43
	// unpadded, an odd length), never an even run of hex digits.
	if isHex(s) && len(s)%2 == 0 {
		if len(s) != 2*KeySize {
			return nil, fmt.Errorf("outbox key is %d hex characters (%d bytes); AES-256 needs %d hex characters (%d bytes)",
				len(s), len(s)/2, 2*KeySize, KeySize)
		}
		k, err := hex.DecodeString(s)
		if err != nil { // not reached: isHex checked every character
			return nil, errors.New("outbox key is not valid hex")
		}
		return k, nil
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		k, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		// base64.CorruptInputError holds an offset only, but say it in our
		// own words: the input is a secret.
		return nil, errors.New("outbox key is neither standard base64 nor 64 hex characters")
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("outbox key decodes to %d bytes; AES-256 needs %d", len(k), KeySize)
	}
	return k, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// GenerateKey returns a new random sealing key as standard base64 of 32
// bytes (44 characters), the form ParseKey reads.
func GenerateKey() string {
	k := make([]byte, KeySize)
	rand.Read(k) // never fails (crypto/rand, Go 1.24+)
	return base64.StdEncoding.EncodeToString(k)
}

// validate checks what every implementation requires of an entry.
func validate(e Entry) error {
	if e.ConnectionID <= 0 {
		return fmt.Errorf("outbox: connection id %d is not positive", e.ConnectionID)
	}
	if e.Token.AccessToken == "" {
		return fmt.Errorf("outbox: entry of connection %d has no access token", e.ConnectionID)
	}
	if e.Obtained.IsZero() {
		return fmt.Errorf("outbox: entry of connection %d has no Obtained time", e.ConnectionID)
	}
	return nil
}

// normalize returns what is kept of e: its own copies, times of the entry in
// UTC, the row's input fields and access token dropped, no sealed value.
func normalize(e Entry) Entry {
	e.Obtained = e.Obtained.UTC()
	if !e.Until.IsZero() {
		e.Until = e.Until.UTC()
	}
	e.Read.InputFields = nil
	e.Read.AccessToken = ""
	if e.Read.ExpiresAt != nil {
		t := *e.Read.ExpiresAt
		e.Read.ExpiresAt = &t
	}
	e.sealed = nil
	return e
}

// clone returns a copy of a kept entry that shares no memory with it.
func clone(e Entry) Entry {
	if e.Read.ExpiresAt != nil {
		t := *e.Read.ExpiresAt
		e.Read.ExpiresAt = &t
	}
	return e
}

func expired(e Entry, now time.Time) bool {
	return !e.Until.IsZero() && now.After(e.Until)
}

// identity is the digest of what makes an entry the same entry for Delete:
// the connection, the access token and Obtained (to the nanosecond, zone
// ignored).
func identity(e Entry) [sha256.Size]byte {
	h := sha256.New()
	var b [8 * 4]byte
	binary.BigEndian.PutUint64(b[0:], uint64(e.ConnectionID))
	binary.BigEndian.PutUint64(b[8:], uint64(e.Obtained.Unix()))
	binary.BigEndian.PutUint64(b[16:], uint64(e.Obtained.Nanosecond()))
	binary.BigEndian.PutUint64(b[24:], uint64(len(e.Token.AccessToken)))
	h.Write(b[:])
	h.Write([]byte(e.Token.AccessToken))
	var id [sha256.Size]byte
	h.Sum(id[:0])
	return id
}

func sameEntry(a, b Entry) bool {
	return a.ConnectionID == b.ConnectionID && a.Obtained.Equal(b.Obtained) &&
		subtle.ConstantTimeCompare([]byte(a.Token.AccessToken), []byte(b.Token.AccessToken)) == 1
}

// --- Redis ---------------------------------------------------------------

// Sealed value layout: version (1 byte) | key id (8 bytes: the first 8
// bytes of SHA-256 of the key) | nonce (12 bytes) | AES-256-GCM ciphertext
// and tag of the entry's JSON. The additional data is namespace + ":" +
// decimal connection id.
const (
	version   = 1
	keyIDSize = 8
	headSize  = 1 + keyIDSize
)

// compareAndDelete removes a hash field only if it holds exactly ARGV[2].
// KEYS[1] hash, ARGV[1] field, ARGV[2] value; returns 1 if removed, else 0.
var compareAndDelete = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
	return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0`)

// Redis is an outbox in one Redis hash, each value sealed with AES-256-GCM.
// It is safe for concurrent use by any number of goroutines and replicas.
type Redis struct {
	rdb       redis.UniversalClient
	namespace string
	key       string
	aead      cipher.AEAD
	keyID     [keyIDSize]byte
	now       func() time.Time
}

var _ Outbox = (*Redis)(nil)

// NewRedis returns an outbox in the hash token-refresher:{namespace}:outbox
// (namespace: the scan queue's name, as for the leases), sealed with key:
// the raw 32 bytes of an AES-256 key (ParseKey reads its text forms). Every
// replica sharing the namespace must have the same key; an entry sealed
// with another key is reported (Unreadable), never dropped.
func NewRedis(rdb redis.UniversalClient, namespace string, key []byte) (*Redis, error) {
	if rdb == nil {
		return nil, errors.New("outbox: no Redis client")
	}
	if namespace == "" {
		return nil, errors.New("outbox: empty namespace")
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("outbox: key is %d bytes; AES-256 needs %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	r := &Redis{
		rdb:       rdb,
		namespace: namespace,
		key:       "token-refresher:{" + namespace + "}:outbox",
		aead:      aead,
		now:       time.Now,
	}
	sum := sha256.Sum256(key)
	copy(r.keyID[:], sum[:keyIDSize])
	return r, nil
}

// Key is the Redis key of the outbox's hash.
func (r *Redis) Key() string { return r.key }

// Durable is true: entries survive the process.
func (r *Redis) Durable() bool { return true }

func field(connectionID int64) string { return strconv.FormatInt(connectionID, 10) }

func (r *Redis) aad(field string) []byte { return []byte(r.namespace + ":" + field) }

// wire is the sealed JSON form of an entry.
type wire struct {
	ConnectionID        int64      `json:"connection_id"`
	IntegrationType     string     `json:"integration_type,omitempty"`
	AccessToken         string     `json:"access_token"`
	RefreshToken        string     `json:"refresh_token,omitempty"`
	ExpiresAt           time.Time  `json:"expires_at"`
	ReadID              int64      `json:"read_id,omitempty"`
	ReadIntegrationType string     `json:"read_integration_type,omitempty"`
	ReadRefreshToken    string     `json:"read_refresh_token,omitempty"`
	ReadExpiresAt       *time.Time `json:"read_expires_at,omitempty"`
	Obtained            time.Time  `json:"obtained"`
	Until               time.Time  `json:"until,omitzero"`
}

func toWire(e Entry) wire {
	return wire{
		ConnectionID: e.ConnectionID, IntegrationType: e.IntegrationType,
		AccessToken: e.Token.AccessToken, RefreshToken: e.Token.RefreshToken, ExpiresAt: e.Token.ExpiresAt,
		ReadID: e.Read.ID, ReadIntegrationType: e.Read.IntegrationType,
		ReadRefreshToken: e.Read.RefreshToken, ReadExpiresAt: e.Read.ExpiresAt,
		Obtained: e.Obtained, Until: e.Until,
	}
}

func (w wire) entry() Entry {
	return Entry{
		ConnectionID: w.ConnectionID, IntegrationType: w.IntegrationType,
		Token: token.Token{AccessToken: w.AccessToken, RefreshToken: w.RefreshToken, ExpiresAt: w.ExpiresAt},
		Read: token.Connection{ID: w.ReadID, IntegrationType: w.ReadIntegrationType,
			RefreshToken: w.ReadRefreshToken, ExpiresAt: w.ReadExpiresAt},
		Obtained: w.Obtained.UTC(), Until: w.Until,
	}
}

// seal returns the stored value of a normalized entry.
func (r *Redis) seal(e Entry) ([]byte, error) {
	plain, err := json.Marshal(toWire(e))
	if err != nil {
		// json names the failing type and, for a time, its year: no secret.
		return nil, fmt.Errorf("outbox: encode entry of connection %d: %w", e.ConnectionID, err)
	}
	defer clear(plain)
	out := make([]byte, headSize+r.aead.NonceSize(), headSize+r.aead.NonceSize()+len(plain)+r.aead.Overhead())
	out[0] = version
	copy(out[1:headSize], r.keyID[:])
	nonce := out[headSize:]
	rand.Read(nonce) // never fails (crypto/rand, Go 1.24+)
	return r.aead.Seal(out, nonce, plain, r.aad(field(e.ConnectionID))), nil
}

// open returns the entry a stored value holds, or an Unreadable.
func (r *Redis) open(connectionID int64, raw []byte) (Entry, *Unreadable) {
	bad := func(reason string) (Entry, *Unreadable) {
		return Entry{}, &Unreadable{ConnectionID: connectionID, Reason: reason}
	}
	ns := r.aead.NonceSize()
	if len(raw) < headSize+ns+r.aead.Overhead() {
		return bad(ReasonCorrupt) // too short for any sealed value
	}
	if raw[0] != version {
		// A newer release's format, or damage.
		return bad(fmt.Sprintf("unknown format version %d", raw[0]))
	}
	if !bytes.Equal(raw[1:headSize], r.keyID[:]) {
		return bad(ReasonOtherKey)
	}
	nonce := raw[headSize : headSize+ns]
	plain, err := r.aead.Open(nil, nonce, raw[headSize+ns:], r.aad(field(connectionID)))
	if err != nil {
		return bad(ReasonCorrupt)
	}
	defer clear(plain)
	var w wire
	if err := json.Unmarshal(plain, &w); err != nil || w.ConnectionID != connectionID {
		return bad(ReasonCorrupt)
	}
	e := w.entry()
	e.sealed = &sealed{raw: raw, id: identity(e)}
	return e, nil
}

// Put seals e and keeps it, replacing the connection's entry.
func (r *Redis) Put(ctx context.Context, e Entry) error {
	if err := validate(e); err != nil {
		return err
	}
	e = normalize(e)
	raw, err := r.seal(e)
	if err != nil {
		return err
	}
	if err := r.rdb.HSet(ctx, r.key, field(e.ConnectionID), raw).Err(); err != nil {
		return fmt.Errorf("outbox: put connection %d: %w", e.ConnectionID, err)
	}
	return nil
}

// Get returns the connection's entry. An entry that does not open is
// returned as an Unreadable error and kept.
func (r *Redis) Get(ctx context.Context, connectionID int64) (Entry, bool, error) {
	raw, err := r.rdb.HGet(ctx, r.key, field(connectionID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("outbox: get connection %d: %w", connectionID, err)
	}
	e, u := r.open(connectionID, raw)
	if u != nil {
		return Entry{}, false, *u
	}
	if expired(e, r.now()) {
		if _, err := r.compareAndDelete(ctx, connectionID, raw); err != nil {
			return Entry{}, false, fmt.Errorf("outbox: drop expired entry of connection %d: %w", connectionID, err)
		}
		return Entry{}, false, nil
	}
	return e, true, nil
}

// Has reports whether the connection has an entry, without opening it.
func (r *Redis) Has(ctx context.Context, connectionID int64) (bool, error) {
	ok, err := r.rdb.HExists(ctx, r.key, field(connectionID)).Result()
	if err != nil {
		return false, fmt.Errorf("outbox: look up connection %d: %w", connectionID, err)
	}
	return ok, nil
}

// All returns every readable entry by connection id, and every unreadable
// one by connection id.
func (r *Redis) All(ctx context.Context) ([]Entry, []Unreadable, error) {
	m, err := r.rdb.HGetAll(ctx, r.key).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: read all: %w", err)
	}
	now := r.now()
	var entries []Entry
	var unreadable []Unreadable
	for f, v := range m {
		id, perr := strconv.ParseInt(f, 10, 64)
		if perr != nil || id <= 0 || field(id) != f {
			unreadable = append(unreadable, Unreadable{Reason: ReasonBadField})
			continue
		}
		raw := []byte(v)
		e, u := r.open(id, raw)
		if u != nil {
			unreadable = append(unreadable, *u)
			continue
		}
		if expired(e, now) {
			if _, err := r.compareAndDelete(ctx, id, raw); err != nil {
				return nil, nil, fmt.Errorf("outbox: drop expired entry of connection %d: %w", id, err)
			}
			continue
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b Entry) int { return cmpID(a.ConnectionID, b.ConnectionID) })
	slices.SortStableFunc(unreadable, func(a, b Unreadable) int { return cmpID(a.ConnectionID, b.ConnectionID) })
	return entries, unreadable, nil
}

func cmpID(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Delete removes the connection's entry if it is still e (same access
// token and Obtained). With e as Get or All returned it, that is one atomic
// compare-and-delete of the exact value read; otherwise (or when the value
// was re-sealed since) the current value is read, opened and compared, and
// compare-and-deleted.
func (r *Redis) Delete(ctx context.Context, e Entry) (bool, error) {
	if e.ConnectionID <= 0 {
		return false, nil
	}
	if s := e.sealed; s != nil && s.id == identity(e) {
		ok, err := r.compareAndDelete(ctx, e.ConnectionID, s.raw)
		if err != nil || ok {
			return ok, err
		}
	}
	// The value changes between the read and the delete only if a Put
	// landed meanwhile; a few rounds settle any realistic race, and giving
	// up only keeps an entry (which is safe).
	for range 3 {
		raw, err := r.rdb.HGet(ctx, r.key, field(e.ConnectionID)).Bytes()
		if errors.Is(err, redis.Nil) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("outbox: delete connection %d: %w", e.ConnectionID, err)
		}
		cur, u := r.open(e.ConnectionID, raw)
		if u != nil || !sameEntry(cur, e) {
			return false, nil // another entry, or one this key cannot tell: kept
		}
		ok, err := r.compareAndDelete(ctx, e.ConnectionID, raw)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (r *Redis) compareAndDelete(ctx context.Context, connectionID int64, raw []byte) (bool, error) {
	n, err := compareAndDelete.Run(ctx, r.rdb, []string{r.key}, field(connectionID), raw).Int()
	if err != nil {
		return false, fmt.Errorf("outbox: delete connection %d: %w", connectionID, err)
	}
	return n == 1, nil
}

// Len is the number of entries in the hash, readable or not.
func (r *Redis) Len(ctx context.Context) (int, error) {
	n, err := r.rdb.HLen(ctx, r.key).Result()
	if err != nil {
		return 0, fmt.Errorf("outbox: count: %w", err)
	}
	return int(n), nil
}

// Sealed is the Redis outbox seen by a process without the key: it can
// tell which connections have a sealed entry, and how many there are, but
// open none. A refresher without OUTBOX_KEY uses it so that a token another
// replica sealed still stops calls for its connection (the token there is
// the connection's newest credential), and says so.
type Sealed struct {
	rdb redis.UniversalClient
	key string
}

// NewSealed returns the keyless view of the outbox of namespace.
func NewSealed(rdb redis.UniversalClient, namespace string) *Sealed {
	return &Sealed{rdb: rdb, key: "token-refresher:{" + namespace + "}:outbox"}
}

// Has reports whether the connection has a sealed entry.
func (s *Sealed) Has(ctx context.Context, connectionID int64) (bool, error) {
	ok, err := s.rdb.HExists(ctx, s.key, field(connectionID)).Result()
	if err != nil {
		return false, fmt.Errorf("outbox: look up connection %d: %w", connectionID, err)
	}
	return ok, nil
}

// Len is the number of sealed entries.
func (s *Sealed) Len(ctx context.Context) (int, error) {
	n, err := s.rdb.HLen(ctx, s.key).Result()
	if err != nil {
		return 0, fmt.Errorf("outbox: count: %w", err)
	}
	return int(n), nil
}

// --- Memory --------------------------------------------------------------

// Memory is an outbox in the process: the Redis outbox's semantics, but its
// entries die with the process. It is safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	entries map[int64]Entry
	now     func() time.Time
}

var _ Outbox = (*Memory)(nil)

// NewMemory returns an empty in-process outbox.
func NewMemory() *Memory {
	return &Memory{entries: make(map[int64]Entry), now: time.Now}
}

// Durable is false: entries die with the process.
func (m *Memory) Durable() bool { return false }

// Put keeps a copy of e, replacing the connection's entry.
func (m *Memory) Put(_ context.Context, e Entry) error {
	if err := validate(e); err != nil {
		return err
	}
	e = normalize(e)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[e.ConnectionID] = e
	return nil
}

// Get returns a copy of the connection's entry.
func (m *Memory) Get(_ context.Context, connectionID int64) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[connectionID]
	if !ok {
		return Entry{}, false, nil
	}
	if expired(e, m.now()) {
		delete(m.entries, connectionID)
		return Entry{}, false, nil
	}
	return clone(e), true, nil
}

// Has reports whether the connection has an entry.
func (m *Memory) Has(_ context.Context, connectionID int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.entries[connectionID]
	return ok, nil
}

// All returns copies of every entry by connection id; a memory outbox has
// no unreadable entries.
func (m *Memory) All(_ context.Context) ([]Entry, []Unreadable, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var entries []Entry
	for id, e := range m.entries {
		if expired(e, now) {
			delete(m.entries, id)
			continue
		}
		entries = append(entries, clone(e))
	}
	slices.SortFunc(entries, func(a, b Entry) int { return cmpID(a.ConnectionID, b.ConnectionID) })
	return entries, nil, nil
}

// Delete removes the connection's entry if it is still e (same access token
// and Obtained).
func (m *Memory) Delete(_ context.Context, e Entry) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.entries[e.ConnectionID]
	if !ok || !sameEntry(cur, e) {
		return false, nil
	}
	delete(m.entries, e.ConnectionID)
	return true, nil
}

// Len is the number of entries kept.
func (m *Memory) Len(_ context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries), nil
}
