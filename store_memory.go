package session

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed013449c2/session/internal/keylock"
)

// memShards is how many independently locked parts a MemoryStore has, so
// requests of different sessions rarely wait for each other. A power of two,
// so a key's shard is a mask of its hash.
const memShards = 64

// memSweepBatch bounds how many records a sweep examines while it holds a
// shard's lock, so a request never waits behind a whole shard's cleanup.
const memSweepBatch = 256

// MemoryOptions configures a [MemoryStore]. The zero value is ready to use.
type MemoryOptions struct {
	// MaxSessions caps how many sessions the store holds, so that a flood of
	// new sessions cannot exhaust memory. At the cap, Create first evicts
	// expired records and then fails with an error wrapping [ErrFull];
	// existing sessions keep working. Zero or less means 1,000,000.
	MaxSessions int

	// CleanupInterval is how often a background sweep frees expired
	// records. Expired records are never returned in the meantime: the
	// sweep only returns their memory. Zero or less means one minute.
	CleanupInterval time.Duration
}

// MemoryStore keeps sessions in the process's memory: the default store, and
// the right one for a single process. Sessions do not survive a restart and
// are not shared between processes; use a database store for that.
//
// It implements [Store], [OwnerStore] and [Locker]. Load returns the stored record itself
// without copying or allocating: records are never changed once stored (Update
// stores a new record, Touch a copy), so a request never sees
// another's half-done change.
//
// Create one with [NewMemoryStore], which starts a cleanup goroutine; call
// Close to stop it.
type MemoryStore struct {
	seed   maphash.Seed
	shards [memShards]memShard
	max    int64

	// count is the number of records held, live or expired but not yet
	// swept; it is what MaxSessions caps.
	count atomic.Int64
	// earliest is a lower bound, in Unix nanoseconds, of the Expires of
	// every record held. Until it passes nothing can be evicted, so a full
	// store under a flood of Creates answers ErrFull without scanning.
	earliest atomic.Int64
	// sweeping lets one sweep run at a time.
	sweeping atomic.Bool

	now func() time.Time // time.Now; tests set a clock of their own

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// memShard holds the records whose key hashes to it. Records live in a slice,
// not only in the map, so that a sweep can resume where it left off after
// releasing the lock, which a map iteration cannot.
type memShard struct {
	mu      sync.RWMutex
	index   map[string]int // key -> position in recs
	recs    []memEntry
	owners  map[string]map[string]struct{} // owner -> keys in this shard
	version int64                          // last version given out here

	locks keylock.Locks

	_ [64]byte // keeps the next shard's lock off this shard's cache line
}

type memEntry struct {
	key string
	rec *Record
}

var (
	errMemNilRecord = errors.New("session: memory store: nil record")
	errMemNilChange = errors.New("session: memory store: nil change")
)

// NewMemoryStore returns a MemoryStore and starts its cleanup goroutine.
func NewMemoryStore(opts MemoryOptions) *MemoryStore {
	return newMemoryStore(opts, time.Now)
}

func newMemoryStore(opts MemoryOptions, now func() time.Time) *MemoryStore {
	maxSessions := opts.MaxSessions
	if maxSessions <= 0 {
		maxSessions = 1_000_000
	}
	interval := opts.CleanupInterval
	if interval <= 0 {
		interval = time.Minute
	}
	s := &MemoryStore{
		seed: maphash.MakeSeed(),
		max:  int64(maxSessions),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		now:  now,
	}
	s.earliest.Store(math.MaxInt64)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.index = make(map[string]int)
		sh.owners = make(map[string]map[string]struct{})
	}
	go s.cleanup(interval)
	return s
}

// Close stops the cleanup goroutine and waits for it to return. The store
// keeps working without it: expiry is checked on every read anyway. Close
// may be called more than once.
func (s *MemoryStore) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

// Len reports how many live sessions the store holds. It walks every record,
// so it is meant for tests and metrics, not for each request.
func (s *MemoryStore) Len() int {
	now := s.now()
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, e := range sh.recs {
			if memLive(e.rec, now) {
				n++
			}
		}
		sh.mu.RUnlock()
	}
	return n
}

// Load implements [Store]. It returns the stored record itself.
func (s *MemoryStore) Load(ctx context.Context, key string) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sh := s.shard(key)
	var rec *Record
	sh.mu.RLock()
	if i, ok := sh.index[key]; ok {
		rec = sh.recs[i].rec
	}
	sh.mu.RUnlock()
	if rec == nil || !memLive(rec, s.now()) {
		return nil, ErrNotFound
	}
	return rec, nil
}

// Create implements [Store].
func (s *MemoryStore) Create(ctx context.Context, key string, rec *Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rec == nil {
		return errMemNilRecord
	}
	sh := s.shard(key)
	now := s.now()
	for evicted := false; ; evicted = true {
		sh.mu.Lock()
		i, ok := sh.index[key]
		switch {
		case ok && memLive(sh.recs[i].rec, now):
			sh.mu.Unlock()
			return ErrExists
		case ok:
			// An expired record no sweep has removed yet: reuse its room.
			rec.Version = sh.nextVersion()
			sh.set(i, rec)
		case s.count.Add(1) <= s.max:
			rec.Version = sh.nextVersion()
			sh.insert(key, rec)
		default:
			s.count.Add(-1)
			sh.mu.Unlock()
			if evicted || !s.sweepIfDue(now) {
				return fmt.Errorf("session: memory store holds its maximum of %d sessions: %w", s.max, ErrFull)
			}
			continue
		}
		sh.mu.Unlock()
		s.noteExpiry(rec.Expires)
		return nil
	}
}

// Update implements [Store]: the change is applied under the shard's lock,
// so concurrent requests of one session never retry.
func (s *MemoryStore) Update(ctx context.Context, key string, ch *Change) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ch == nil {
		// Checked before the shard's lock: Apply would panic under it
		// and leave the shard locked for good.
		return nil, errMemNilChange
	}
	sh := s.shard(key)
	sh.mu.Lock()
	i, ok := s.liveLocked(sh, key, s.now())
	if !ok {
		sh.mu.Unlock()
		return nil, ErrNotFound
	}
	next, err := ch.Apply(sh.recs[i].rec)
	if err != nil {
		sh.mu.Unlock()
		return nil, err
	}
	if len(next.Values) == 0 {
		s.removeLocked(sh, i)
		sh.mu.Unlock()
		return next, nil
	}
	next.Version = sh.nextVersion()
	sh.set(i, next)
	sh.mu.Unlock()
	s.noteExpiry(next.Expires)
	return next, nil
}

// Touch implements [Store]. It stores a copy of the record that shares its
// Values, so that callers holding the old record see no change.
func (s *MemoryStore) Touch(ctx context.Context, key string, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	i, ok := s.liveLocked(sh, key, s.now())
	if !ok {
		sh.mu.Unlock()
		return ErrNotFound
	}
	touched := *sh.recs[i].rec
	touched.Expires = expires
	sh.recs[i].rec = &touched
	sh.mu.Unlock()
	s.noteExpiry(expires)
	return nil
}

// liveLocked returns the position of key's live record in sh, removing an
// expired one on the way. The caller holds sh.mu for writing.
func (s *MemoryStore) liveLocked(sh *memShard, key string, now time.Time) (int, bool) {
	i, ok := sh.index[key]
	if !ok {
		return 0, false
	}
	if !memLive(sh.recs[i].rec, now) {
		s.removeLocked(sh, i)
		return 0, false
	}
	return i, true
}

// Delete implements [Store].
func (s *MemoryStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	if i, ok := sh.index[key]; ok {
		s.removeLocked(sh, i)
	}
	sh.mu.Unlock()
	return nil
}

// DeleteOwner implements [OwnerStore]. Each shard indexes its records by owner,
// so the cost follows the owner's sessions, not the store's. The count
// includes expired records that had not been swept yet.
func (s *MemoryStore) DeleteOwner(ctx context.Context, owner, exceptKey string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if owner == "" {
		return 0, nil
	}
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		// Removing entries of the set being ranged over is allowed.
		for key := range sh.owners[owner] {
			if key != exceptKey {
				s.removeLocked(sh, sh.index[key])
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n, nil
}

// Lock implements [Locker] within this process. The lease cannot be lost.
func (s *MemoryStore) Lock(ctx context.Context, key string) (Lease, error) {
	unlock, err := s.shard(key).locks.Lock(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("session: memory store: lock: %w", err)
	}
	return &memLease{store: s, unlock: unlock}, nil
}

// memLease is the Lease of a lock that lives in this process alone: it
// cannot be lost, and its store is the store itself.
type memLease struct {
	store  Store
	unlock func()
}

func (l *memLease) Store() Store  { return l.store }
func (l *memLease) Unlock() error { l.unlock(); return nil }

func (s *MemoryStore) shard(key string) *memShard {
	return &s.shards[maphash.String(s.seed, key)&(memShards-1)]
}

// memLive reports whether rec is still live at now; a record is dead from the
// instant of its Expires on.
func memLive(rec *Record, now time.Time) bool {
	return now.Before(rec.Expires)
}

// nextVersion numbers the records of a shard from one counter, so a key never
// sees a version twice, not even when it is created again after expiring.
func (sh *memShard) nextVersion() int64 {
	sh.version++
	return sh.version
}

func (sh *memShard) insert(key string, rec *Record) {
	sh.index[key] = len(sh.recs)
	sh.recs = append(sh.recs, memEntry{key: key, rec: rec})
	sh.indexOwner(rec.Owner, key)
}

// set replaces the record at position i, keeping the owner index in step.
func (sh *memShard) set(i int, rec *Record) {
	e := &sh.recs[i]
	if e.rec.Owner != rec.Owner {
		sh.unindexOwner(e.rec.Owner, e.key)
		sh.indexOwner(rec.Owner, e.key)
	}
	e.rec = rec
}

// removeLocked removes the record at position i by moving the last one into
// its place; sh.mu must be held for writing.
func (s *MemoryStore) removeLocked(sh *memShard, i int) {
	e := sh.recs[i]
	sh.unindexOwner(e.rec.Owner, e.key)
	delete(sh.index, e.key)
	last := len(sh.recs) - 1
	if i != last {
		sh.recs[i] = sh.recs[last]
		sh.index[sh.recs[i].key] = i
	}
	sh.recs[last] = memEntry{} // let the record be collected
	sh.recs = sh.recs[:last]
	s.count.Add(-1)
}

func (sh *memShard) indexOwner(owner, key string) {
	if owner == "" {
		return
	}
	keys := sh.owners[owner]
	if keys == nil {
		keys = make(map[string]struct{}, 1)
		sh.owners[owner] = keys
	}
	keys[key] = struct{}{}
}

func (sh *memShard) unindexOwner(owner, key string) {
	if owner == "" {
		return
	}
	keys := sh.owners[owner]
	delete(keys, key)
	if len(keys) == 0 {
		delete(sh.owners, owner)
	}
}

func (s *MemoryStore) cleanup(interval time.Duration) {
	defer close(s.done)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-ticker.C:
			s.sweepIfDue(s.now())
		}
	}
}

// sweepIfDue removes the records expired at now, unless none can have
// expired yet or another sweep is under way, and reports whether it swept.
func (s *MemoryStore) sweepIfDue(now time.Time) bool {
	if memUnixNano(now) < s.earliest.Load() || !s.sweeping.CompareAndSwap(false, true) {
		return false
	}
	defer s.sweeping.Store(false)

	// Writers lower earliest for whatever they store from here on; the
	// sweep accounts for everything it finds still live.
	s.earliest.Store(math.MaxInt64)
	low := int64(math.MaxInt64)
	for i := range s.shards {
		low = min(low, s.sweepShard(&s.shards[i], now))
	}
	s.lowerEarliest(low)
	return true
}

// sweepShard removes the records of sh expired at now, memSweepBatch at a
// time, and returns the earliest expiry among those it kept. It walks from
// the end: a removal moves the last record into the hole, so records not yet
// visited never move past the cursor while the lock is released.
func (s *MemoryStore) sweepShard(sh *memShard, now time.Time) int64 {
	low := int64(math.MaxInt64)
	for i := math.MaxInt; i >= 0; {
		sh.mu.Lock()
		i = min(i, len(sh.recs)-1)
		for stop := i - memSweepBatch; i > stop && i >= 0; i-- {
			if rec := sh.recs[i].rec; memLive(rec, now) {
				low = min(low, memUnixNano(rec.Expires))
			} else {
				s.removeLocked(sh, i)
			}
		}
		sh.mu.Unlock()
	}
	return low
}

// noteExpiry keeps earliest a lower bound once a record expiring at t is
// stored.
func (s *MemoryStore) noteExpiry(t time.Time) {
	s.lowerEarliest(memUnixNano(t))
}

func (s *MemoryStore) lowerEarliest(ns int64) {
	for {
		cur := s.earliest.Load()
		if ns >= cur || s.earliest.CompareAndSwap(cur, ns) {
			return
		}
	}
}

// memUnixNano is t.UnixNano clamped to the int64 range, where UnixNano itself
// is undefined (a zero Expires is year 1).
func memUnixNano(t time.Time) int64 {
	const limit = math.MaxInt64 / int64(time.Second)
	switch sec := t.Unix(); {
	case sec <= -limit:
		return math.MinInt64
	case sec >= limit:
		return math.MaxInt64
	}
	return t.UnixNano()
}
