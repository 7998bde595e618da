package sessiontest_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/sessiontest"
)

// casStore is the kind of store a third party writes over a key-value
// backend that has only a read and a put-if-version: Update is
// session.UpdateCAS. The suite checks that such a store keeps the whole
// contract, as the built-in stores (which apply a change in one step) do.
type casStore struct {
	mu   sync.Mutex
	recs map[string]*session.Record
	next int64
	// locks is a plain per-key lock, held in this process only.
	locks sync.Map // key -> chan struct{}
}

func newCASStore() *casStore { return &casStore{recs: map[string]*session.Record{}} }

func (s *casStore) live(key string) (*session.Record, bool) {
	rec, ok := s.recs[key]
	if !ok || !time.Now().Before(rec.Expires) {
		return nil, false
	}
	return rec, true
}

func copyRecord(rec *session.Record) *session.Record {
	c := *rec
	c.Values = maps.Clone(rec.Values)
	return &c
}

func (s *casStore) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.live(key)
	if !ok {
		return nil, session.ErrNotFound
	}
	return copyRecord(rec), nil
}

func (s *casStore) Create(ctx context.Context, key string, rec *session.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(key); ok {
		return session.ErrExists
	}
	s.next++
	rec.Version = s.next
	s.recs[key] = copyRecord(rec)
	return nil
}

func (s *casStore) Save(ctx context.Context, key string, rec *session.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.live(key)
	switch {
	case !ok:
		return session.ErrNotFound
	case old.Version != rec.Version:
		return session.ErrConflict
	}
	s.next++
	rec.Version = s.next
	s.recs[key] = copyRecord(rec)
	return nil
}

func (s *casStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	return session.UpdateCAS(ctx, s, key, ch)
}

func (s *casStore) Touch(ctx context.Context, key string, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.live(key)
	if !ok {
		return session.ErrNotFound
	}
	c := copyRecord(rec)
	c.Expires = expires
	s.recs[key] = c
	return nil
}

func (s *casStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, key)
	return nil
}

func (s *casStore) DeleteOwner(ctx context.Context, owner, exceptKey string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if owner == "" {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, rec := range s.recs {
		if rec.Owner == owner && k != exceptKey {
			delete(s.recs, k)
			n++
		}
	}
	return n, nil
}

func (s *casStore) Lock(ctx context.Context, key string) (session.Lease, error) {
	v, _ := s.locks.LoadOrStore(key, make(chan struct{}, 1))
	sem := v.(chan struct{})
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, errors.Join(session.ErrLockTimeout, ctx.Err())
		}
		return nil, ctx.Err()
	}
	return &casLease{s: s, sem: sem}, nil
}

type casLease struct {
	s    *casStore
	sem  chan struct{}
	once sync.Once
}

func (l *casLease) Store() session.Store { return l.s }
func (l *casLease) Unlock() error {
	l.once.Do(func() { <-l.sem })
	return nil
}

func TestCompareAndSwapStore(t *testing.T) {
	sessiontest.Run(t, func(*testing.T) session.Store { return newCASStore() })
}

func TestCompareAndSwapStoreHTTP(t *testing.T) {
	sessiontest.RunHTTP(t, func(*testing.T) func() session.Store {
		st := newCASStore()
		return func() session.Store { return st }
	})
}
