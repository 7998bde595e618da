package session

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
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

	// MaxBytes caps the memory the sessions take, as the store counts it
	// (keys, values, owner, and a fixed overhead per record and per value
	// measured on amd64): a few large sessions must not exhaust memory
	// any more than many small ones. Past it, Create, and an Update that
	// grows a session, first evict expired records and then fail with an
	// error wrapping [ErrFull]. Zero or less means 1 GiB.
	MaxBytes int64

	// CleanupInterval is how often a background sweep frees expired
	// records. Expired records are never returned in the meantime: the
	// sweep only returns their memory. Zero or less means one minute.
	CleanupInterval time.Duration
}

// MemoryStore keeps sessions in the process's memory: the default store, and
// the right one for a single process. Sessions do not survive a restart and
// are not shared between processes; use a database store for that.
//
// It implements [Store], [OwnerStore], [DeviceStore], [Renamer] and [Locker].
// Records are never changed once stored (Update stores a new record, Touch a
// copy), so a request never sees another's half-done change, and the
// middleware reads the stored record itself, without copying or allocating.
// Once Update or Rename has changed a session of more than 16 values,
// they live in a persistent map of which a change copies a small part, so
// that a request that changes one value of a session of hundreds neither
// copies nor leaves behind the rest;
// Load, Update and Rename return such a record as a copy with its values in
// Values.
//
// Create one with [NewMemoryStore], which starts a cleanup goroutine; call
// Close to stop it.
type MemoryStore struct {
	seed     maphash.Seed
	shards   [memShards]memShard
	max      int64
	maxBytes int64

	// count is the number of records held, live or expired but not yet
	// swept; it is what MaxSessions caps.
	count atomic.Int64
	// bytes is what the records held take, as memSize counts it; it is
	// what MaxBytes caps.
	bytes atomic.Int64
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
	peak    int                            // most records held since the index was last rebuilt

	locks keylock.Locks

	_ [64]byte // keeps the next shard's lock off this shard's cache line
}

type memEntry struct {
	key  string
	rec  *Record
	size int64 // memSize(key, rec)
}

// The fixed costs memSize adds, measured with runtime.MemStats over 100,000
// sessions of an owner and two small values (TestMemoryStoreBytesMatchHeap):
// the record, its index and slice entries and its values map, and each
// value's map slot and slice header.
const (
	memRecordOverhead = 500
	memValueOverhead  = 40
	memOwnerOverhead  = 300
)

// memTreeMin is the most values a session keeps in a map: copying a small
// map costs less than the few allocations of a change to a tree.
const memTreeMin = 16

// memTree returns rec for a change: with its values in a tree once it
// holds more than memTreeMin of them.
func memTree(rec *Record) *Record {
	if rec.tree == nil && len(rec.Values) > memTreeMin {
		return rec.asTree()
	}
	return rec
}

// memSize is what a record takes in the store, for MaxBytes.
func memSize(key string, rec *Record) int64 {
	n := memRecordOverhead + 2*len(key)
	if rec.Owner != "" {
		n += memOwnerOverhead + len(rec.Owner)
	}
	n += len(rec.Label) + len(rec.Handle) + memValueOverhead*rec.numValues()
	if sz, ok := rec.knownSizes(); ok {
		return int64(n + sz.raw)
	}
	for k, v := range rec.Values {
		n += len(k) + len(v)
	}
	if rec.tree != nil {
		for k, v := range rec.tree.All() {
			n += len(k) + len(v)
		}
	}
	return int64(n)
}

// MemoryStats is what a MemoryStore holds.
type MemoryStats struct {
	// Sessions counts the records held, expired ones not yet swept
	// included: what MaxSessions caps.
	Sessions int64
	// Bytes is what they take as the store counts it: what MaxBytes caps.
	Bytes int64
	// BytesPerSession is Bytes / Sessions, or 0.
	BytesPerSession int64
}

// Stats reports what the store holds, for metrics and for sizing
// MaxSessions and MaxBytes. It reads two counters and costs nothing.
func (s *MemoryStore) Stats() MemoryStats {
	st := MemoryStats{Sessions: s.count.Load(), Bytes: s.bytes.Load()}
	if st.Sessions > 0 {
		st.BytesPerSession = st.Bytes / st.Sessions
	}
	return st
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
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	interval := opts.CleanupInterval
	if interval <= 0 {
		interval = time.Minute
	}
	s := &MemoryStore{
		seed:     maphash.MakeSeed(),
		max:      int64(maxSessions),
		maxBytes: maxBytes,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		now:      now,
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

// Load implements [Store]. It returns the stored record itself, or, for a
// session that Update changed, a copy with its values in Values (see
// loadTree).
func (s *MemoryStore) Load(ctx context.Context, key string) (*Record, error) {
	rec, err := s.loadTree(ctx, key)
	return rec.flat(), err
}

// loadTree is Load for the middleware: it returns the stored record
// itself, whose values may be in a tree (see record_values.go), without
// copying or allocating.
func (s *MemoryStore) loadTree(ctx context.Context, key string) (*Record, error) {
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
	size := memSize(key, rec)
	for evicted := false; ; evicted = true {
		sh.mu.Lock()
		i, ok := sh.index[key]
		var full error
		switch {
		case ok && memLive(sh.recs[i].rec, now):
			sh.mu.Unlock()
			return ErrExists
		case ok && s.bytes.Load()+size-sh.recs[i].size > s.maxBytes:
			full = s.errFullBytes()
		case ok:
			// An expired record no sweep has removed yet: reuse its room.
			rec.Version = sh.nextVersion()
			s.set(sh, i, rec, size)
		case s.bytes.Load()+size > s.maxBytes:
			full = s.errFullBytes()
		case s.count.Add(1) <= s.max:
			rec.Version = sh.nextVersion()
			s.insert(sh, key, rec, size)
		default:
			s.count.Add(-1)
			full = fmt.Errorf("session: memory store holds its maximum of %d sessions: %w", s.max, ErrFull)
		}
		sh.mu.Unlock()
		if full != nil {
			if evicted || !s.sweepIfDue(now) {
				return full
			}
			continue
		}
		s.noteExpiry(rec.Expires)
		return nil
	}
}

func (s *MemoryStore) errFullBytes() error {
	return fmt.Errorf("session: memory store holds its maximum of %d bytes: %w", s.maxBytes, ErrFull)
}

// Update implements [Store]: the change is applied under the shard's lock,
// so concurrent requests of one session never retry. The session's values
// are kept in a persistent map from then on, which a change copies only a
// small part of, however many values the session holds.
func (s *MemoryStore) Update(ctx context.Context, key string, ch *Change) (*Record, error) {
	rec, err := s.updateTree(ctx, key, ch)
	return rec.flat(), err
}

// updateTree is Update for the middleware: the record it returns may keep
// its values in a tree.
func (s *MemoryStore) updateTree(ctx context.Context, key string, ch *Change) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ch == nil {
		// Checked before the shard's lock: Apply would panic under it
		// and leave the shard locked for good.
		return nil, errMemNilChange
	}
	sh := s.shard(key)
	now := s.now()
	for evicted := false; ; evicted = true {
		sh.mu.Lock()
		i, ok := s.liveLocked(sh, key, now)
		if !ok {
			sh.mu.Unlock()
			return nil, ErrNotFound
		}
		next, err := ch.Apply(memTree(sh.recs[i].rec))
		if err != nil {
			sh.mu.Unlock()
			return nil, err
		}
		if next.numValues() == 0 {
			s.removeLocked(sh, i)
			sh.mu.Unlock()
			return next, nil
		}
		size := memSize(key, next)
		if grow := size - sh.recs[i].size; grow > 0 && s.bytes.Load()+grow > s.maxBytes {
			sh.mu.Unlock()
			if evicted || !s.sweepIfDue(now) {
				return nil, s.errFullBytes()
			}
			continue
		}
		next.Version = sh.nextVersion()
		s.set(sh, i, next, size)
		sh.mu.Unlock()
		s.noteExpiry(next.Expires)
		return next, nil
	}
}

// Rename implements [Renamer]: under the locks of both keys' shards, the
// live record moves to newKey with ch applied, in one step, and counts
// once against MaxSessions throughout, so a full store still lets its
// visitors log in.
func (s *MemoryStore) Rename(ctx context.Context, oldKey, newKey string, ch *Change) (*Record, error) {
	rec, err := s.renameTree(ctx, oldKey, newKey, ch)
	return rec.flat(), err
}

// renameTree is Rename for the middleware: the record it returns may keep
// its values in a tree.
func (s *MemoryStore) renameTree(ctx context.Context, oldKey, newKey string, ch *Change) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ch == nil {
		return nil, errMemNilChange
	}
	a, b := s.shardIndex(oldKey), s.shardIndex(newKey)
	from, to := &s.shards[a], &s.shards[b]
	first, second := from, to
	if a > b {
		first, second = second, first // one order for every pair: no deadlock
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if second != first {
		second.mu.Lock()
		defer second.mu.Unlock()
	}
	now := s.now()
	i, ok := s.liveLocked(from, oldKey, now)
	if !ok {
		return nil, ErrNotFound
	}
	if j, taken := to.index[newKey]; taken && memLive(to.recs[j].rec, now) {
		return nil, ErrExists
	}
	next, err := ch.Apply(memTree(from.recs[i].rec))
	if err != nil {
		return nil, err
	}
	size := memSize(newKey, next)
	if grow := size - from.recs[i].size; next.numValues() > 0 && grow > 0 && s.bytes.Load()+grow > s.maxBytes {
		return nil, s.errFullBytes() // a login must not grow a full store either
	}
	s.removeLocked(from, i)
	if next.numValues() == 0 {
		return next, nil
	}
	next.Version = to.nextVersion()
	if j, taken := to.index[newKey]; taken {
		s.set(to, j, next, size) // an expired record no sweep has removed yet
	} else {
		s.count.Add(1)
		s.insert(to, newKey, next, size)
	}
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

// Devices implements [DeviceStore] through the owner index: the cost
// follows the owner's sessions, not the store's.
func (s *MemoryStore) Devices(ctx context.Context, owner string, limit int) ([]DeviceRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if owner == "" || limit <= 0 {
		return nil, nil
	}
	now := s.now()
	var out []DeviceRecord
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for key := range sh.owners[owner] {
			if rec := sh.recs[sh.index[key]].rec; memLive(rec, now) {
				out = append(out, DeviceRecord{Handle: rec.Handle, Label: rec.Label, Created: rec.Created, Expires: rec.Expires, IdleTimeout: rec.IdleTimeout})
				if len(out) >= 2*limit {
					out = latestDevices(out, limit) // an owner of many sessions costs 2*limit, not all of them
				}
			}
		}
		sh.mu.RUnlock()
	}
	return latestDevices(out, limit), nil
}

// latestDevices keeps the limit devices of out that expire last.
func latestDevices(out []DeviceRecord, limit int) []DeviceRecord {
	if len(out) <= limit {
		return out
	}
	slices.SortFunc(out, func(a, b DeviceRecord) int { return b.Expires.Compare(a.Expires) })
	return out[:limit]
}

// DeleteDevice implements [DeviceStore].
func (s *MemoryStore) DeleteDevice(ctx context.Context, owner, handle string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if owner == "" || handle == "" {
		return false, nil
	}
	now := s.now()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for key := range sh.owners[owner] {
			j := sh.index[key]
			if rec := sh.recs[j].rec; rec.Handle == handle && memLive(rec, now) {
				s.removeLocked(sh, j)
				sh.mu.Unlock()
				return true, nil
			}
		}
		sh.mu.Unlock()
	}
	return false, nil
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
	return &s.shards[s.shardIndex(key)]
}

func (s *MemoryStore) shardIndex(key string) uint64 {
	return maphash.String(s.seed, key) & (memShards - 1)
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

// insert adds a record of size memSize(key, rec) to sh; the caller holds
// sh.mu for writing and has counted it.
func (s *MemoryStore) insert(sh *memShard, key string, rec *Record, size int64) {
	sh.index[key] = len(sh.recs)
	sh.recs = append(sh.recs, memEntry{key: key, rec: rec, size: size})
	sh.peak = max(sh.peak, len(sh.recs))
	sh.indexOwner(rec.Owner, key)
	s.bytes.Add(size)
}

// set replaces the record at position i with rec, of size memSize(key,
// rec), keeping the owner index and the byte count in step. The caller
// holds sh.mu for writing.
func (s *MemoryStore) set(sh *memShard, i int, rec *Record, size int64) {
	e := &sh.recs[i]
	if e.rec.Owner != rec.Owner {
		sh.unindexOwner(e.rec.Owner, e.key)
		sh.indexOwner(rec.Owner, e.key)
	}
	s.bytes.Add(size - e.size)
	e.rec, e.size = rec, size
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
	s.bytes.Add(-e.size)
	sh.shrinkIfSparse()
}

// shrinkIfSparse gives memory back once a shard holds far fewer records
// than it once did (after a mass revoke or a sweep of a burst): Go's maps
// never shrink, so the index is rebuilt, and the slice is reallocated. The
// cost is linear in what is left and is paid at most once per halving, so
// it is constant per removal. The caller holds sh.mu for writing.
func (sh *memShard) shrinkIfSparse() {
	n := len(sh.recs)
	if sh.peak < 64 || n > sh.peak/4 {
		return
	}
	recs := make([]memEntry, n, 2*n)
	copy(recs, sh.recs)
	index := make(map[string]int, 2*n)
	for i, e := range recs {
		index[e.key] = i
	}
	owners := make(map[string]map[string]struct{}, len(sh.owners))
	for o, keys := range sh.owners {
		owners[o] = keys
	}
	sh.recs, sh.index, sh.owners, sh.peak = recs, index, owners, 2*n
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
