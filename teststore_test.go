package session_test

// The test stores. Each wraps a real store (a memory store, mostly) and
// passes every call on, except what it is for: countingStore counts the
// calls, faultStore fails the ones it is told to, slowStore holds them
// until released, staleStore returns records a store should have dropped.
// plainStore hides the optional interfaces, leaseStore gives its locks a
// store of their own, and casStore is a store with only a compare-and-swap
// write.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed013449c2/session"
)

// countingStore counts the calls of each kind and keeps the key of every
// Create: what the store sees of an id.
type countingStore struct {
	session.Store
	loads, creates, updates, touches, deletes atomic.Int64

	mu   sync.Mutex
	keys []string
}

func (c *countingStore) Load(ctx context.Context, key string) (*session.Record, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, key)
}

func (c *countingStore) Create(ctx context.Context, key string, rec *session.Record) error {
	c.creates.Add(1)
	c.mu.Lock()
	c.keys = append(c.keys, key)
	c.mu.Unlock()
	return c.Store.Create(ctx, key, rec)
}

func (c *countingStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	c.updates.Add(1)
	return c.Store.Update(ctx, key, ch)
}

func (c *countingStore) Touch(ctx context.Context, key string, exp time.Time) error {
	c.touches.Add(1)
	return c.Store.Touch(ctx, key, exp)
}

func (c *countingStore) Delete(ctx context.Context, key string) error {
	c.deletes.Add(1)
	return c.Store.Delete(ctx, key)
}

func (c *countingStore) DeleteOwner(ctx context.Context, owner, except string) (int, error) {
	return deleteOwner(ctx, c.Store, owner, except)
}

// calls is the number of calls so far; writes leaves out the loads.
func (c *countingStore) calls() int64 { return c.loads.Load() + c.writes() }

func (c *countingStore) writes() int64 {
	return c.creates.Load() + c.updates.Load() + c.touches.Load() + c.deletes.Load()
}

// created returns the keys of every Create so far.
func (c *countingStore) created() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.keys)
}

func (c *countingStore) reset() {
	for _, n := range []*atomic.Int64{&c.loads, &c.creates, &c.updates, &c.touches, &c.deletes} {
		n.Store(0)
	}
}

// deleteOwner passes DeleteOwner on to st: a test wrapper keeps the
// optional OwnerStore of the store it wraps, so that SetOwner works
// through it.
func deleteOwner(ctx context.Context, st session.Store, owner, except string) (int, error) {
	o, ok := st.(session.OwnerStore)
	if !ok {
		return 0, fmt.Errorf("test store: %T is not a session.OwnerStore: %w", st, errors.ErrUnsupported)
	}
	return o.DeleteOwner(ctx, owner, except)
}

// faultStore fails the operations it is told to ("load", "create",
// "update", "touch", "delete", "deleteOwner") with the error it is given,
// and answers ErrCorrupt for the records it is told are corrupt, as a
// store does for a row edited by hand.
type faultStore struct {
	session.Store
	mu      sync.Mutex
	fail    map[string]error
	corrupt map[string]bool
}

// set makes op fail with err from now on; a nil err heals it.
func (f *faultStore) set(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]error{}
	}
	f.fail[op] = err
}

// spoil makes the record under key corrupt.
func (f *faultStore) spoil(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.corrupt == nil {
		f.corrupt = map[string]bool{}
	}
	f.corrupt[key] = true
}

func (f *faultStore) err(op, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op == "load" && f.corrupt[key] {
		return fmt.Errorf("test store: decode record: %w", session.ErrCorrupt)
	}
	return f.fail[op]
}

func (f *faultStore) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := f.err("load", key); err != nil {
		return nil, err
	}
	return f.Store.Load(ctx, key)
}

func (f *faultStore) Create(ctx context.Context, key string, rec *session.Record) error {
	if err := f.err("create", key); err != nil {
		return err
	}
	return f.Store.Create(ctx, key, rec)
}

func (f *faultStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	if err := f.err("update", key); err != nil {
		return nil, err
	}
	return f.Store.Update(ctx, key, ch)
}

func (f *faultStore) Touch(ctx context.Context, key string, exp time.Time) error {
	if err := f.err("touch", key); err != nil {
		return err
	}
	return f.Store.Touch(ctx, key, exp)
}

func (f *faultStore) Delete(ctx context.Context, key string) error {
	if err := f.err("delete", key); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

func (f *faultStore) DeleteOwner(ctx context.Context, owner, except string) (int, error) {
	if err := f.err("deleteOwner", ""); err != nil {
		return 0, err
	}
	return deleteOwner(ctx, f.Store, owner, except)
}

// Lock takes the wrapped store's lock, with f as the lease's store, so
// that the faults go on while the lock is held. That is only right for a
// store whose lease store is the store itself, as the memory store's is.
func (f *faultStore) Lock(ctx context.Context, key string) (session.Lease, error) {
	l, ok := f.Store.(session.Locker)
	if !ok {
		return nil, fmt.Errorf("test store: %T is not a session.Locker", f.Store)
	}
	lease, err := l.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	if lease.Store() != f.Store {
		lease.Unlock()
		return nil, fmt.Errorf("test store: %T's lease has a store of its own, which faultStore cannot wrap", f.Store)
	}
	return wrappedLease{lease, f}, nil
}

// wrappedLease is a held lock whose store is a test wrapper.
type wrappedLease struct {
	session.Lease
	store session.Store
}

func (l wrappedLease) Store() session.Store { return l.store }

// slowStore holds the operations it is armed for until release is closed
// or their context ends, as the contract asks of a store that waits on a
// database. It reports each held call on entered and its result on left.
type slowStore struct {
	session.Store
	mu      sync.Mutex
	armed   map[string]bool
	release chan struct{}
	entered chan string
	left    chan error
}

func newSlowStore(st session.Store) *slowStore {
	return &slowStore{Store: st, release: make(chan struct{}), entered: make(chan string, 16), left: make(chan error, 16)}
}

// arm makes the named operations ("load", "create", "update", "touch",
// "delete") wait from now on, and no other.
func (s *slowStore) arm(ops ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = map[string]bool{}
	for _, op := range ops {
		s.armed[op] = true
	}
}

// do runs f, first waiting if op is armed.
func (s *slowStore) do(ctx context.Context, op string, f func() error) error {
	s.mu.Lock()
	armed := s.armed[op]
	s.mu.Unlock()
	if !armed {
		return f()
	}
	s.entered <- op
	var err error
	select {
	case <-s.release:
		err = f()
	case <-ctx.Done():
		err = fmt.Errorf("slow store: %s: %w", op, ctx.Err())
	}
	s.left <- err
	return err
}

func (s *slowStore) Load(ctx context.Context, key string) (rec *session.Record, err error) {
	err = s.do(ctx, "load", func() error { rec, err = s.Store.Load(ctx, key); return err })
	return rec, err
}

func (s *slowStore) Create(ctx context.Context, key string, rec *session.Record) error {
	return s.do(ctx, "create", func() error { return s.Store.Create(ctx, key, rec) })
}

func (s *slowStore) Update(ctx context.Context, key string, ch *session.Change) (rec *session.Record, err error) {
	err = s.do(ctx, "update", func() error { rec, err = s.Store.Update(ctx, key, ch); return err })
	return rec, err
}

func (s *slowStore) Touch(ctx context.Context, key string, exp time.Time) error {
	return s.do(ctx, "touch", func() error { return s.Store.Touch(ctx, key, exp) })
}

func (s *slowStore) Delete(ctx context.Context, key string) error {
	return s.do(ctx, "delete", func() error { return s.Store.Delete(ctx, key) })
}

// staleStore lies about expiry, as a store whose cleanup lags and whose
// clock is wrong: it returns every record it ever stored, even once the
// real store has dropped it, with its Expires moved to now+shift. The
// middleware must enforce the timeouts itself.
type staleStore struct {
	session.Store
	now   func() time.Time
	shift time.Duration
	mu    sync.Mutex
	seen  map[string]session.Record
}

func (s *staleStore) remember(key string, rec *session.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]session.Record{}
	}
	s.seen[key] = *rec
}

func (s *staleStore) Create(ctx context.Context, key string, rec *session.Record) error {
	s.remember(key, rec)
	return s.Store.Create(ctx, key, rec)
}

func (s *staleStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	rec, err := s.Store.Update(ctx, key, ch)
	if err == nil {
		s.remember(key, rec)
	}
	return rec, err
}

func (s *staleStore) DeleteOwner(ctx context.Context, owner, except string) (int, error) {
	return deleteOwner(ctx, s.Store, owner, except)
}

func (s *staleStore) Load(ctx context.Context, key string) (*session.Record, error) {
	rec, err := s.Store.Load(ctx, key)
	s.mu.Lock()
	old, ok := s.seen[key]
	s.mu.Unlock()
	if errors.Is(err, session.ErrNotFound) && ok {
		rec, err = &old, nil
	}
	if err != nil {
		return nil, err
	}
	stale := *rec
	stale.Expires = s.now().Add(s.shift)
	return &stale, nil
}

// plainStore hides every optional interface of the store it wraps: it is a
// Store and nothing more.
type plainStore struct{ st session.Store }

func (p plainStore) Load(ctx context.Context, key string) (*session.Record, error) {
	return p.st.Load(ctx, key)
}

func (p plainStore) Create(ctx context.Context, key string, rec *session.Record) error {
	return p.st.Create(ctx, key, rec)
}

func (p plainStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	return p.st.Update(ctx, key, ch)
}

func (p plainStore) Touch(ctx context.Context, key string, exp time.Time) error {
	return p.st.Touch(ctx, key, exp)
}

func (p plainStore) Delete(ctx context.Context, key string) error { return p.st.Delete(ctx, key) }

// leaseStore wraps a memory store in a Locker whose leases have a store of
// their own, as a database store's leases run every call on the lock's
// connection. It counts the calls made on the store itself and those made
// through a lease. Once lost is set, a lease's calls fail with ErrLockLost
// and its Unlock reports the loss, as when the lock's connection died.
type leaseStore struct {
	countingStore                // calls on the store itself
	leased         countingStore // calls through a lease
	lost           atomic.Bool
	locks, unlocks atomic.Int64
}

func newLeaseStore(st session.Store) *leaseStore {
	s := &leaseStore{}
	s.countingStore.Store, s.leased.Store = st, st
	return s
}

func (s *leaseStore) Lock(ctx context.Context, key string) (session.Lease, error) {
	lease, err := s.countingStore.Store.(session.Locker).Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	s.locks.Add(1)
	return &testLease{Lease: lease, s: s}, nil
}

func (s *leaseStore) reset() {
	s.countingStore.reset()
	s.leased.reset()
	s.locks.Store(0)
	s.unlocks.Store(0)
}

type testLease struct {
	session.Lease
	s *leaseStore
}

func (l *testLease) Store() session.Store { return leasedStore{l.s} }

func (l *testLease) Unlock() error {
	l.s.unlocks.Add(1)
	if err := l.Lease.Unlock(); err != nil {
		return err
	}
	if l.s.lost.Load() {
		return fmt.Errorf("test lease: its connection died: %w", session.ErrLockLost)
	}
	return nil
}

// leasedStore is the store of a leaseStore's lease.
type leasedStore struct{ s *leaseStore }

func (l leasedStore) check() error {
	if l.s.lost.Load() {
		return fmt.Errorf("test lease: %w", session.ErrLockLost)
	}
	return nil
}

func (l leasedStore) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	return l.s.leased.Load(ctx, key)
}

func (l leasedStore) Create(ctx context.Context, key string, rec *session.Record) error {
	if err := l.check(); err != nil {
		return err
	}
	return l.s.leased.Create(ctx, key, rec)
}

func (l leasedStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	return l.s.leased.Update(ctx, key, ch)
}

func (l leasedStore) Touch(ctx context.Context, key string, exp time.Time) error {
	if err := l.check(); err != nil {
		return err
	}
	return l.s.leased.Touch(ctx, key, exp)
}

func (l leasedStore) Delete(ctx context.Context, key string) error {
	if err := l.check(); err != nil {
		return err
	}
	return l.s.leased.Delete(ctx, key)
}

// casStore is a store with only a read and a put-if-version, as many
// key-value backends offer: its Update is session.UpdateCAS over its own
// Load and Save, which merges a change onto the freshest record and retries
// on conflict. It counts the conflicts. When gate is set, each Update's
// first load waits there for the others, so that they all save against one
// version.
type casStore struct {
	mu        sync.Mutex
	recs      map[string]session.Record
	version   int64
	conflicts atomic.Int64
	gate      *sync.WaitGroup
}

// casTry is one Update's view of a casStore.
type casTry struct {
	*casStore
	loaded bool
}

func (t *casTry) Load(ctx context.Context, key string) (*session.Record, error) {
	rec, err := t.casStore.Load(ctx, key)
	if !t.loaded && t.gate != nil {
		t.loaded = true
		t.gate.Done()
		t.gate.Wait()
	}
	return rec, err
}

func (s *casStore) live(key string) (session.Record, bool) {
	rec, ok := s.recs[key]
	return rec, ok && time.Now().Before(rec.Expires)
}

func (s *casStore) Load(ctx context.Context, key string) (*session.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.live(key)
	if !ok {
		return nil, session.ErrNotFound
	}
	return &rec, nil
}

func (s *casStore) Create(ctx context.Context, key string, rec *session.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(key); ok {
		return session.ErrExists
	}
	if s.recs == nil {
		s.recs = map[string]session.Record{}
	}
	s.version++
	rec.Version = s.version
	s.recs[key] = *rec
	return nil
}

func (s *casStore) Save(ctx context.Context, key string, rec *session.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.live(key)
	switch {
	case !ok:
		return session.ErrNotFound
	case old.Version != rec.Version:
		s.conflicts.Add(1)
		return session.ErrConflict
	}
	s.version++
	rec.Version = s.version
	s.recs[key] = *rec
	return nil
}

func (s *casStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	return session.UpdateCAS(ctx, &casTry{casStore: s}, key, ch)
}

func (s *casStore) Touch(ctx context.Context, key string, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.live(key)
	if !ok {
		return session.ErrNotFound
	}
	rec.Expires = exp
	s.recs[key] = rec
	return nil
}

func (s *casStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, key)
	return nil
}
