package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/sessiontest"
)

// memRecord is a record of one value, with the given owner and expiry.
func memRecord(owner string, expires time.Time) *session.Record {
	now := time.Now()
	return &session.Record{
		Values:   map[string]json.RawMessage{"n": json.RawMessage(`1`)},
		Owner:    owner,
		Created:  now,
		Expires:  expires,
		Deadline: now.Add(24 * time.Hour),
	}
}

func TestMemoryStoreConformance(t *testing.T) {
	t.Parallel()
	sessiontest.Run(t, func(t *testing.T) session.Store {
		return newMemory(t)
	})
}

// TestMemoryStoreHTTP runs the middleware's HTTP suite on one memory store.
// Not parallel: the suite's clients use http.DefaultTransport, whose idle
// connections every httptest server's Close closes.
func TestMemoryStoreHTTP(t *testing.T) {
	sessiontest.RunHTTP(t, func(t *testing.T) func() session.Store {
		st := newMemory(t)
		return func() session.Store { return st }
	})
}

// TestMemoryStoreNilRecord: a nil record or change is refused with an
// error, and the store goes on working (a panic under a shard's lock would
// leave the shard locked for good).
func TestMemoryStoreNilRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newMemory(t)
	if err := s.Create(ctx, "k", nil); err == nil {
		t.Error("Create of a nil record succeeded")
	}
	if err := s.Create(ctx, "k", memRecord("", time.Now().Add(time.Hour))); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.Update(ctx, "k", nil); err == nil {
		t.Error("Update with a nil change succeeded")
	}
	if rec, err := s.Load(ctx, "k"); err != nil || string(rec.Values["n"]) != "1" {
		t.Fatalf("Load after the refused Update: %v, %v", rec, err)
	}
	if _, err := s.Update(ctx, "k", &session.Change{Add: map[string]int64{"n": 1}}); err != nil {
		t.Fatalf("Update after the refused one: %v", err)
	}
}

func TestMemoryStoreFull(t *testing.T) {
	t.Parallel()
	const maxSessions = 5
	ctx := t.Context()
	s := newMemoryWith(t, session.MemoryOptions{MaxSessions: maxSessions})
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)

	for i := range maxSessions {
		if err := s.Create(ctx, fmt.Sprint("old", i), memRecord("", past)); err != nil {
			t.Fatalf("Create of expired record %d: %v", i, err)
		}
	}
	// The store is at its cap, but only with expired records: they make room.
	for i := range maxSessions {
		if err := s.Create(ctx, fmt.Sprint("live", i), memRecord("", future)); err != nil {
			t.Fatalf("Create of live record %d in a store full of expired ones: %v", i, err)
		}
	}
	if n := s.Len(); n != maxSessions {
		t.Fatalf("Len = %d, want %d", n, maxSessions)
	}

	err := s.Create(ctx, "extra", memRecord("", future))
	if !errors.Is(err, session.ErrFull) {
		t.Fatalf("Create in a store full of live sessions: err = %v, want ErrFull", err)
	}

	// Existing sessions keep working.
	if _, err := s.Load(ctx, "live0"); err != nil {
		t.Fatalf("Load in a full store: %v", err)
	}
	if _, err := s.Update(ctx, "live0", &session.Change{Values: map[string]json.RawMessage{"m": json.RawMessage(`2`)}}); err != nil {
		t.Fatalf("Update in a full store: %v", err)
	}
	if err := s.Touch(ctx, "live0", future.Add(time.Hour)); err != nil {
		t.Fatalf("Touch in a full store: %v", err)
	}

	// A session that ends frees its room.
	if err := s.Delete(ctx, "live0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "extra", memRecord("", future)); err != nil {
		t.Fatalf("Create after a Delete made room: %v", err)
	}
}

// TestMemoryStoreFullUnderFlood checks that concurrent Creates never push the
// store past its cap.
func TestMemoryStoreFullUnderFlood(t *testing.T) {
	t.Parallel()
	const maxSessions, attempts = 20, 100
	ctx := t.Context()
	s := newMemoryWith(t, session.MemoryOptions{MaxSessions: maxSessions})
	var created, full atomic.Int32
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Create(ctx, fmt.Sprint("k", i), memRecord("", time.Now().Add(time.Hour)))
			switch {
			case err == nil:
				created.Add(1)
			case errors.Is(err, session.ErrFull):
				full.Add(1)
			default:
				t.Errorf("Create: %v", err)
			}
		}()
	}
	wg.Wait()
	if created.Load() != maxSessions || full.Load() != attempts-maxSessions {
		t.Fatalf("%d created and %d refused, want %d and %d", created.Load(), full.Load(), maxSessions, attempts-maxSessions)
	}
	if n := s.Len(); n != maxSessions {
		t.Fatalf("Len = %d, want %d", n, maxSessions)
	}
}

// TestMemoryStoreCleanup proves the sweep drops the store's references to
// expired records by watching the garbage collector reclaim them: a record
// the store still holds cannot be collected, so the control cases are
// exact. The records expire when the store's clock says so; the background
// sweep runs on its ticker.
func TestMemoryStoreCleanup(t *testing.T) {
	t.Parallel()
	const expiring = 100
	for _, tc := range []struct {
		name      string
		interval  time.Duration
		wantFreed bool
	}{
		{"short interval", time.Millisecond, true},
		{"sweep not due", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			clk := newClock()
			s := clk.memoryStore(t, session.MemoryOptions{CleanupInterval: tc.interval})
			var freed atomic.Int32
			for i := range expiring {
				rec := memRecord("owner", clk.now().Add(time.Minute))
				runtime.AddCleanup(rec, func(n *atomic.Int32) { n.Add(1) }, &freed)
				if err := s.Create(ctx, fmt.Sprint("expiring", i), rec); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Create(ctx, "live", memRecord("owner", clk.now().Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
			// Until they expire, no sweep touches them.
			collect(&freed, expiring, 3)
			if got := freed.Load(); got != 0 {
				t.Fatalf("%d records freed before they expired", got)
			}
			clk.advance(2 * time.Minute)

			rounds := 3 // enough for a reachable record to prove it stays
			if tc.wantFreed {
				rounds = 200
			}
			collect(&freed, expiring, rounds)
			switch got := freed.Load(); {
			case tc.wantFreed && got != expiring:
				t.Fatalf("%d of %d expired records were freed", got, expiring)
			case !tc.wantFreed && got != 0:
				t.Fatalf("%d expired records were freed with no sweep due", got)
			}
			if _, err := s.Load(ctx, "live"); err != nil {
				t.Fatalf("Load of the live record: %v", err)
			}
			// The owner index forgot the swept records too.
			wantOwned := 1
			if !tc.wantFreed {
				wantOwned += expiring
			}
			if n, err := s.DeleteOwner(ctx, "owner", ""); err != nil || n != wantOwned {
				t.Fatalf("DeleteOwner = %d, %v; want %d, nil", n, err, wantOwned)
			}
		})
	}
}

// collect runs the garbage collector up to rounds times, until n objects
// have been freed, giving their cleanups time to run.
func collect(freed *atomic.Int32, n int32, rounds int) {
	for range rounds {
		runtime.GC()
		if freed.Load() == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMemoryStoreExpiry: a record is live until the instant of its
// Expires, by the store's clock; then Load, Update and Touch no longer find
// it, Len no longer counts it, and Create may reuse its key. Sweep frees
// it and a sweep is due only once something has expired.
func TestMemoryStoreExpiry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := newClock()
	s := clk.memoryStore(t, session.MemoryOptions{})
	if s.Sweep() {
		t.Fatal("a sweep of an empty store")
	}
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Create(ctx, k, memRecord("", clk.now().Add(time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Touch(ctx, "c", clk.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Minute - time.Nanosecond)
	if _, err := s.Load(ctx, "a"); err != nil || s.Len() != 3 || s.Sweep() {
		t.Fatalf("a nanosecond before its expiry: Load %v, Len %d", err, s.Len())
	}
	clk.advance(time.Nanosecond)
	if _, err := s.Load(ctx, "a"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load at its expiry: %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, "a", &session.Change{Add: map[string]int64{"n": 1}}); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Update at its expiry: %v, want ErrNotFound", err)
	}
	if err := s.Touch(ctx, "b", clk.now().Add(time.Hour)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch at its expiry: %v, want ErrNotFound", err)
	}
	if n := s.Len(); n != 1 {
		t.Fatalf("Len = %d, want only the touched record", n)
	}
	if err := s.Create(ctx, "b", memRecord("", clk.now().Add(time.Minute))); err != nil {
		t.Fatalf("Create over an expired record: %v", err)
	}
	clk.advance(2 * time.Minute)
	if !s.Sweep() {
		t.Fatal("no sweep once records expired")
	}
	if _, err := s.Load(ctx, "c"); err != nil || s.Len() != 1 {
		t.Fatalf("after the sweep: Load of the touched record %v, Len %d", err, s.Len())
	}
}

// TestMemoryStoreCloseStopsCleanup: Close stops the cleanup goroutine,
// also when called several times at once. Not parallel: it counts the
// process's goroutines.
func TestMemoryStoreCloseStopsCleanup(t *testing.T) {
	before := session.CleanupGoroutines("newMemoryStore")
	s := session.NewMemoryStore(session.MemoryOptions{CleanupInterval: time.Millisecond})
	if got := session.CleanupGoroutines("newMemoryStore"); got != before+1 {
		t.Fatalf("%d cleanup goroutines after NewMemoryStore, want %d", got, before+1)
	}

	var wg sync.WaitGroup
	for range 3 { // Close is idempotent, also when racing itself
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	wg.Wait()
	// Close waits for the goroutine's last deferred call; give the runtime
	// a moment to retire it.
	for deadline := time.Now().Add(5 * time.Second); session.CleanupGoroutines("newMemoryStore") != before; {
		if time.Now().After(deadline) {
			t.Fatalf("%d cleanup goroutines after Close, want %d", session.CleanupGoroutines("newMemoryStore"), before)
		}
		time.Sleep(time.Millisecond)
	}

	// The store itself still works; only the background sweep is gone.
	ctx := t.Context()
	if err := s.Create(ctx, "k", memRecord("", time.Now().Add(time.Hour))); err != nil {
		t.Fatalf("Create after Close: %v", err)
	}
	if _, err := s.Load(ctx, "k"); err != nil {
		t.Fatalf("Load after Close: %v", err)
	}
}

// TestMemoryStoreLoadAllocs: Load allocates nothing, found or not, and
// returns the stored record itself. Not parallel: allocation counts are
// process-wide.
func TestMemoryStoreLoadAllocs(t *testing.T) {
	ctx := t.Context()
	s := newMemory(t)
	if err := s.Create(ctx, "live", memRecord("", time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "expired", memRecord("", time.Now().Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	first, err := s.Load(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		key     string
		wantErr error
	}{
		{"live", nil},
		{"missing", session.ErrNotFound},
		{"expired", session.ErrNotFound},
	} {
		t.Run(tc.key, func(t *testing.T) {
			var rec *session.Record
			allocs := testing.AllocsPerRun(1000, func() {
				rec, err = s.Load(ctx, tc.key)
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Load: err = %v, want %v", err, tc.wantErr)
			}
			if allocs != 0 {
				t.Errorf("Load allocates %.1f times per call", allocs)
			}
			if tc.wantErr == nil && rec != first {
				t.Error("Load returned a copy, not the stored record")
			}
		})
	}
}

// TestMemoryStoreOwnerIndex checks that every way a record comes, changes
// owner or goes keeps the owner index in step, since DeleteOwner reads only
// the index.
func TestMemoryStoreOwnerIndex(t *testing.T) {
	t.Parallel()
	const owner, other = "alice", "bob"
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	create := func(t *testing.T, s *session.MemoryStore, key, owner string, expires time.Time) {
		t.Helper()
		if err := s.Create(t.Context(), key, memRecord(owner, expires)); err != nil {
			t.Fatalf("Create %s: %v", key, err)
		}
	}
	setOwner := func(t *testing.T, s *session.MemoryStore, key, owner string) {
		t.Helper()
		if _, err := s.Update(t.Context(), key, &session.Change{Owner: &owner}); err != nil {
			t.Fatalf("Update: %v", err)
		}
	}

	for _, tc := range []struct {
		name        string
		maxSessions int
		setup       func(t *testing.T, s *session.MemoryStore)
		wantN       int // records of owner
		wantOther   int // records of other, left alone by DeleteOwner(owner)
	}{
		{"created across shards", 0, func(t *testing.T, s *session.MemoryStore) {
			for i := range 500 {
				create(t, s, fmt.Sprint("a", i), owner, future)
				create(t, s, fmt.Sprint("b", i), other, future)
			}
		}, 500, 500},
		{"deleted", 0, func(t *testing.T, s *session.MemoryStore) {
			create(t, s, "a1", owner, future)
			create(t, s, "a2", owner, future)
			if err := s.Delete(t.Context(), "a1"); err != nil {
				t.Fatal(err)
			}
		}, 1, 0},
		{"owner set by Update", 0, func(t *testing.T, s *session.MemoryStore) {
			create(t, s, "k", "", future)
			setOwner(t, s, "k", owner)
		}, 1, 0},
		{"owner changed by Update", 0, func(t *testing.T, s *session.MemoryStore) {
			create(t, s, "k", owner, future)
			setOwner(t, s, "k", other)
		}, 0, 1},
		{"expired record replaced for another owner", 0, func(t *testing.T, s *session.MemoryStore) {
			create(t, s, "k", owner, past)
			create(t, s, "k", other, future)
		}, 0, 1},
		{"expired record replaced for the same owner", 0, func(t *testing.T, s *session.MemoryStore) {
			create(t, s, "k", owner, past)
			create(t, s, "k", owner, future)
		}, 1, 0},
		{"expired, not yet swept", 0, func(t *testing.T, s *session.MemoryStore) {
			create(t, s, "k", owner, past)
		}, 1, 0},
		{"owner kept by an Update of values", 0, func(t *testing.T, s *session.MemoryStore) {
			create(t, s, "k", owner, future)
			if _, err := s.Update(t.Context(), "k", &session.Change{Add: map[string]int64{"n": 1}}); err != nil {
				t.Fatal(err)
			}
		}, 1, 0},
		{"emptied by Update", 0, func(t *testing.T, s *session.MemoryStore) {
			create(t, s, "k", owner, future)
			rec, err := s.Update(t.Context(), "k", &session.Change{Clear: true})
			if err != nil || len(rec.Values) != 0 {
				t.Fatalf("Update that empties the record: %v, %v", rec, err)
			}
			if _, err := s.Load(t.Context(), "k"); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("Load of an emptied record: %v", err)
			}
		}, 0, 0},
		{"expired, removed by Update", 0, func(t *testing.T, s *session.MemoryStore) {
			create(t, s, "k", owner, past)
			if _, err := s.Update(t.Context(), "k", &session.Change{Expires: future}); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("Update of an expired record: %v", err)
			}
		}, 0, 0},
		{"expired, evicted for room", 2, func(t *testing.T, s *session.MemoryStore) {
			create(t, s, "k1", owner, past)
			create(t, s, "k2", owner, past)
			create(t, s, "k3", other, future)
		}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := newMemoryWith(t, session.MemoryOptions{MaxSessions: tc.maxSessions})
			tc.setup(t, s)
			for _, step := range []struct {
				owner string
				want  int
			}{
				{owner, tc.wantN},
				{owner, 0}, // the first call emptied the index
				{other, tc.wantOther},
			} {
				if n, err := s.DeleteOwner(ctx, step.owner, ""); err != nil || n != step.want {
					t.Fatalf("DeleteOwner(%q) = %d, %v; want %d, nil", step.owner, n, err, step.want)
				}
			}
			if n := s.Len(); n != 0 {
				t.Fatalf("Len = %d after deleting every owner's records", n)
			}
		})
	}
}

// TestMemoryStoreLockAbandonedWait checks that a waiter whose context ends
// gives up its claim: the lock entry it shared must not stay taken.
func TestMemoryStoreLockAbandonedWait(t *testing.T) {
	t.Parallel()
	s := newMemory(t)
	lease, err := s.Lock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while held: err = %v, want DeadlineExceeded", err)
	}
	if err := lease.Unlock(); err != nil {
		t.Fatal(err)
	}
	// The waiter that gave up must not have taken the lock with it.
	lease, err = s.Lock(t.Context(), "k")
	if err != nil {
		t.Fatalf("Lock after the holder released and the waiter gave up: %v", err)
	}
	if err := lease.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryStoreLease: the memory store's lease runs calls on the store
// itself, cannot be lost, and a second Unlock (from any goroutine) does
// not release the lock of whoever took it next.
func TestMemoryStoreLease(t *testing.T) {
	t.Parallel()
	s := newMemory(t)
	first, err := s.Lock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := first.Store().(*session.MemoryStore); !ok || st != s {
		t.Fatalf("the lease's store is %T, want the memory store itself", first.Store())
	}
	if err := first.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	second, err := s.Lock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- first.Unlock() }() // a stale second call
	if err := <-done; err != nil {
		t.Fatalf("second Unlock: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if l, err := s.Lock(ctx, "k"); err == nil {
		l.Unlock()
		t.Fatal("a second Unlock of an old lease released the current holder's lock")
	}
	if err := second.Unlock(); err != nil {
		t.Fatal(err)
	}
	// Other keys never waited on it.
	other, err := s.Lock(t.Context(), "other")
	if err != nil {
		t.Fatal(err)
	}
	other.Unlock()
}

func BenchmarkMemoryStore(b *testing.B) {
	const sessions = 10_000
	ctx := context.Background()
	s := newMemory(b)
	keys := make([]string, sessions)
	for i := range keys {
		keys[i] = fmt.Sprintf("%064x", i)
		if err := s.Create(ctx, keys[i], memRecord("", time.Now().Add(time.Hour))); err != nil {
			b.Fatal(err)
		}
	}
	// update is the middleware's write-back of one changed value: the
	// store applies it to the stored record, building the new record (and
	// its map of values) that it keeps.
	ch := &session.Change{Values: map[string]json.RawMessage{"m": json.RawMessage(`2`)}}
	update := func(b *testing.B, key string) {
		if _, err := s.Update(ctx, key, ch); err != nil {
			b.Error(err)
		}
	}
	// Parallel goroutines each take their own slice of keys, so that the
	// benchmark measures the store, not contention on one record.
	var worker atomic.Int64
	perWorker := sessions / runtime.GOMAXPROCS(0)

	b.Run("Load", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.Load(ctx, keys[i%sessions]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("LoadParallel", func(b *testing.B) {
		b.ReportAllocs()
		worker.Store(0)
		b.RunParallel(func(pb *testing.PB) {
			base := int(worker.Add(1)-1) * perWorker
			for i := 0; pb.Next(); i++ {
				if _, err := s.Load(ctx, keys[base+i%perWorker]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("Update", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			update(b, keys[i%sessions])
			i++
		}
	})
	b.Run("UpdateParallel", func(b *testing.B) {
		b.ReportAllocs()
		worker.Store(0)
		b.RunParallel(func(pb *testing.PB) {
			base := int(worker.Add(1)-1) * perWorker
			for i := 0; pb.Next(); i++ {
				update(b, keys[base+i%perWorker])
			}
		})
	})
	// One session that every goroutine adds to: the contended case the
	// atomic Update is for (no retry, one shard lock per call).
	b.Run("AddOneSessionParallel", func(b *testing.B) {
		b.ReportAllocs()
		add := &session.Change{Add: map[string]int64{"n": 1}}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Update(ctx, keys[0], add); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
