package scan

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// The package's one set of fakes, for its white-box tests and, exported from
// this _test file (the export_test.go idiom), for the black-box tests of
// package scan_test.

// FakeStore serves due connections from memory, in chunks of 2.
type FakeStore struct {
	// Due holds each integration type's due connections.
	Due map[string][]token.DueConnection
	// Prints holds the connections' inputFields fingerprints; an id absent
	// from it is absent from the answer (as the store leaves out a row it
	// did not find).
	Prints map[int64]string
	// ErrFor is an integration type whose scan fails.
	ErrFor string
}

var _ Store = (*FakeStore)(nil)

// ScanDue implements Store.
func (s *FakeStore) ScanDue(_ context.Context, typ string, _ time.Time, fn func([]token.DueConnection) error) (token.ScanStats, error) {
	if typ == s.ErrFor {
		return token.ScanStats{}, errors.New("table is gone")
	}
	d := s.Due[typ]
	for i := 0; i < len(d); i += 2 {
		if err := fn(d[i:min(i+2, len(d))]); err != nil {
			return token.ScanStats{}, err
		}
	}
	return token.ScanStats{Active: len(d), Due: len(d)}, nil
}

// CredentialsChanged implements Store: a connection's credentials changed
// when its Prints entry differs from the recorded fingerprint.
func (s *FakeStore) CredentialsChanged(_ context.Context, recorded map[int64]string) (map[int64]bool, error) {
	out := map[int64]bool{}
	for id, fp := range recorded {
		if now, ok := s.Prints[id]; ok {
			out[id] = now != fp
		}
	}
	return out, nil
}

// FakeQueue records enqueues and retries. An id in Taken is already queued
// (Enqueue answers false, as asynq's task-id conflict does); Fail fails
// every Enqueue. Read Enqueued and Retried after the scan returns.
type FakeQueue struct {
	mu       sync.Mutex
	Taken    map[int64]bool
	Enqueued []int64
	Retried  []int64
	Archived map[int64]task.Archived
	Fail     error
}

var _ Queue = (*FakeQueue)(nil)

// Enqueue implements Queue.
func (q *FakeQueue) Enqueue(_ context.Context, p task.Payload) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.Fail != nil {
		return false, q.Fail
	}
	if q.Taken[p.ConnectionID] {
		return false, nil
	}
	if q.Taken == nil {
		q.Taken = map[int64]bool{}
	}
	q.Taken[p.ConnectionID] = true
	q.Enqueued = append(q.Enqueued, p.ConnectionID)
	return true, nil
}

// Retry implements Queue.
func (q *FakeQueue) Retry(_ context.Context, p task.Payload) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.Retried = append(q.Retried, p.ConnectionID)
	return true, nil
}

// ListArchived implements Queue.
func (q *FakeQueue) ListArchived() (map[int64]task.Archived, error) { return q.Archived, nil }
