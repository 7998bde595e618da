package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed013449c2/session"
)

// TestLeaseLostWhenLockDeleted: when the lock key vanishes (flushed,
// failover), the holder's writes and Unlock fail with ErrLockLost and
// change nothing.
func TestLeaseLostWhenLockDeleted(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			c := topo.client(t)
			s := newStore(t, c, Options{})
			ctx := t.Context()
			if err := s.Create(ctx, "k", freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`1`)})); err != nil {
				t.Fatal(err)
			}
			l, err := s.Lock(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			base, err := l.Store().Load(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Del(ctx, s.lockKey("k")).Err(); err != nil {
				t.Fatal(err)
			}
			ls := l.Store()
			if _, err := ls.Update(ctx, "k", &session.Change{Add: map[string]int64{"n": 1}}); !errors.Is(err, session.ErrLockLost) {
				t.Fatalf("Update after the lock was deleted: %v, want ErrLockLost", err)
			}
			// With the record it read, which the store would write by
			// compare-and-swap: the lock is checked first.
			if _, err := ls.Update(ctx, "k", &session.Change{Add: map[string]int64{"n": 1}, Base: base}); !errors.Is(err, session.ErrLockLost) {
				t.Fatalf("Update with its Base after the lock was deleted: %v, want ErrLockLost", err)
			}
			if err := ls.Touch(ctx, "k", time.Now().Add(time.Hour)); !errors.Is(err, session.ErrLockLost) {
				t.Fatalf("Touch: %v, want ErrLockLost", err)
			}
			if err := ls.Delete(ctx, "k"); !errors.Is(err, session.ErrLockLost) {
				t.Fatalf("Delete: %v, want ErrLockLost", err)
			}
			if err := l.Unlock(); !errors.Is(err, session.ErrLockLost) {
				t.Fatalf("Unlock: %v, want ErrLockLost", err)
			}
			if err := l.Unlock(); !errors.Is(err, session.ErrLockLost) {
				t.Fatalf("second Unlock: %v, want ErrLockLost again", err)
			}
			rec, err := s.Load(ctx, "k")
			if err != nil || string(rec.Values["n"]) != "1" {
				t.Fatalf("record after the lost holder's writes: %v, %v; want n = 1", rec, err)
			}
			// The key's lock works again.
			l, err = s.Lock(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Store().Update(ctx, "k", &session.Change{Add: map[string]int64{"n": 1}}); err != nil {
				t.Fatal(err)
			}
			if err := l.Unlock(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// blockHook holds the commands that run one script while blocked is set:
// a stalled renewal.
type blockHook struct {
	script  *redis.Script
	blocked atomic.Bool
}

func (h *blockHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *blockHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) > 1 && (args[1] == h.script.Hash() || args[1] == renewSource) {
			for h.blocked.Load() && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}
		return next(ctx, cmd)
	}
}

func (h *blockHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestLeaseLostWhenRenewalStalls: a holder whose renewals stall past
// LockTTL loses the lock to another process; its commit then fails with
// ErrLockLost, and the other holder's count is exact.
func TestLeaseLostWhenRenewalStalls(t *testing.T) {
	t.Parallel()
	srv := standalone(t)
	stalled := srv.Client()
	t.Cleanup(func() { stalled.Close() })
	hook := &blockHook{script: renewScript}
	stalled.AddHook(hook)
	prefix := testPrefix(t)
	// A TTL short enough to expire quickly, long enough that a loaded
	// machine (-race, parallel tests) still renews in time.
	const ttl = 300 * time.Millisecond
	slow := newStore(t, stalled, Options{Prefix: prefix, LockTTL: ttl})
	fast := newStore(t, topologies[0].client(t), Options{Prefix: prefix, LockTTL: ttl})
	ctx := t.Context()
	if err := fast.Create(ctx, "k", freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`0`)})); err != nil {
		t.Fatal(err)
	}

	held, err := slow.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// Renewal works while not stalled: the lock outlives its TTL.
	time.Sleep(2 * ttl)
	if _, err := held.Store().Update(ctx, "k", &session.Change{Add: map[string]int64{"n": 1}}); err != nil {
		t.Fatalf("Update while renewals run, past LockTTL: %v", err)
	}
	hook.blocked.Store(true)
	defer hook.blocked.Store(false)

	waitCtx, cancel := context.WithTimeout(ctx, 10*ttl)
	defer cancel()
	other, err := fast.Lock(waitCtx, "k")
	if err != nil {
		t.Fatalf("another process could not take the expired lock: %v", err)
	}
	if _, err := other.Store().Update(ctx, "k", &session.Change{Add: map[string]int64{"n": 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := held.Store().Update(ctx, "k", &session.Change{Add: map[string]int64{"n": 100}}); !errors.Is(err, session.ErrLockLost) {
		t.Fatalf("the stalled holder's Update: %v, want ErrLockLost", err)
	}
	hook.blocked.Store(false)
	if err := held.Unlock(); !errors.Is(err, session.ErrLockLost) {
		t.Fatalf("the stalled holder's Unlock: %v, want ErrLockLost", err)
	}
	// The stalled holder's Unlock did not release the other's lock.
	if tok, _ := fast.c.Get(ctx, fast.lockKey("k")).Result(); tok != other.(*lease).token {
		t.Fatalf("lock token %q after the stalled Unlock, want the new holder's", tok)
	}
	if err := other.Unlock(); err != nil {
		t.Fatal(err)
	}
	rec, err := fast.Load(ctx, "k")
	if err != nil || string(rec.Values["n"]) != "2" {
		t.Fatalf("n = %s, %v; want exactly 2", rec.Values["n"], err)
	}
}

// TestWaitersQueueInProcess: while another process holds a lock, the
// requests of this process that wait for it do not each poll Redis; only
// the first in line does.
func TestWaitersQueueInProcess(t *testing.T) {
	t.Parallel()
	srv := standalone(t)
	prefix := testPrefix(t)
	holder := newStore(t, topologies[0].client(t), Options{Prefix: prefix})
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	hook := &countingHook{}
	c.AddHook(hook)
	waiters := newStore(t, c, Options{Prefix: prefix, LockPoll: 10 * time.Millisecond})
	ctx := t.Context()

	held, err := holder.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var inside, overlaps, done atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			l, err := waiters.Lock(lctx, "k")
			if err != nil {
				t.Errorf("Lock: %v", err)
				return
			}
			if inside.Add(1) > 1 {
				overlaps.Add(1)
			}
			time.Sleep(time.Millisecond)
			inside.Add(-1)
			done.Add(1)
			if err := l.Unlock(); err != nil {
				t.Errorf("Unlock: %v", err)
			}
		}()
	}
	const hold = 300 * time.Millisecond
	time.Sleep(hold)
	polls := hook.trips.Load()
	// One waiter polling every 10ms for 300ms sends about 30 commands;
	// twenty waiters polling would send about 600.
	if polls > 60 {
		t.Errorf("%d commands from %d waiters in %v while another process held the lock: waiters poll Redis instead of queueing", polls, n, hold)
	}
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if done.Load() != n || overlaps.Load() != 0 {
		t.Fatalf("%d of %d waiters got the lock, %d overlaps", done.Load(), n, overlaps.Load())
	}
	waiters.mu.Lock()
	left := len(waiters.queues)
	waiters.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d lock queues left after every waiter finished", left)
	}
	t.Logf("%d commands in %v from %d waiters", polls, hold, n)
}

// TestHandOff: holders of one process hand the Redis lock to each other
// while others wait, so a run of locked requests costs one SET and one
// release per maxHandoffs requests, not one each.
func TestHandOff(t *testing.T) {
	t.Parallel()
	c := topologies[0].client(t)
	hook := &countingHook{}
	c.AddHook(hook)
	s := newStore(t, c, Options{})
	ctx := t.Context()
	if err := s.Create(ctx, "k", freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`0`)})); err != nil {
		t.Fatal(err)
	}
	first, err := s.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lockedAdd(ctx, s, "k"); err != nil {
				t.Error(err)
			}
		}()
	}
	for s.queueLen("k") < n+1 {
		time.Sleep(time.Millisecond)
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	rec, err := s.Load(ctx, "k")
	if err != nil || string(rec.Values["n"]) != fmt.Sprint(n) {
		t.Fatalf("n = %s, %v; want %d", rec.Values["n"], err, n)
	}
	sets, releases := hook.count("set"), hook.count("evalsha "+releaseScript.Hash())
	t.Logf("%d locked requests: %d SETs, %d releases", n+1, sets, releases)
	if max := (n+1)/maxHandoffs + 2; sets > max || releases > max {
		t.Fatalf("%d locked requests in a row took %d SETs and %d releases, want at most %d each", n+1, sets, releases, max)
	}
	if s.queueLen("k") != 0 {
		t.Fatal("the key's queue is left behind")
	}
	if n, _ := c.Exists(ctx, s.lockKey("k")).Result(); n != 0 {
		t.Fatal("the lock is still held after the last holder left")
	}
}

// TestHandOffToLeaver: a lock handed to waiters who all give up is
// released by the last of them, not left to expire.
func TestHandOffToLeaver(t *testing.T) {
	t.Parallel()
	c := topologies[0].client(t)
	s := newStore(t, c, Options{})
	ctx := t.Context()
	held, err := s.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// A waiter whose context ends just after the hand-off: its turn comes
	// with the lock, but it may give up before or after taking it.
	for range 20 {
		wctx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() {
			l, err := s.Lock(wctx, "k")
			if err == nil {
				err = l.Unlock()
			}
			got <- err
		}()
		for s.queueLen("k") < 2 {
			time.Sleep(100 * time.Microsecond)
		}
		go cancel()
		if err := held.Unlock(); err != nil {
			t.Fatal(err)
		}
		<-got
		cancel()
		if held, err = s.Lock(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		n, _ := c.Exists(ctx, s.lockKey("k")).Result()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock is still held after every holder and waiter left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseStopsRenewals: Close releases what is held and stops the
// renewal goroutines.
func TestCloseStopsRenewals(t *testing.T) {
	c := topologies[0].client(t)
	s, err := New(c, Options{Prefix: testPrefix(t), LockTTL: 60 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for i := range 5 {
		if _, err := s.Lock(t.Context(), fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(t.Context(), "k9"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lock after Close: %v, want ErrClosed", err)
	}
	for i := range 5 {
		if n, _ := c.Exists(t.Context(), s.lockKey(fmt.Sprint("k", i))).Result(); n != 0 {
			t.Fatalf("lock k%d still held after Close", i)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after Close, %d before the locks", n, before)
	}
}

// TestHTTPLostLeaseCountsExact: with Options.Lock, a request whose lock is
// lost mid-handler (here the lock key is deleted, as a failover could)
// gets its commit refused with ErrLockLost, while the request of another
// server that took the lock commits; the count is exact.
func TestHTTPLostLeaseCountsExact(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			prefix := testPrefix(t)
			c := topo.client(t)
			entered, release := make(chan struct{}), make(chan struct{})
			var errs sync.Map
			newServer := func(name string) (*httptest.Server, *Store) {
				st := newStore(t, topo.client(t), Options{Prefix: prefix})
				m, err := session.New(session.Options{Store: st, Lock: true, LockTimeout: 5 * time.Second,
					ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
						errs.Store(name, err)
						http.Error(w, err.Error(), http.StatusInternalServerError)
					}})
				if err != nil {
					t.Fatal(err)
				}
				mux := http.NewServeMux()
				mux.HandleFunc("/inc", func(w http.ResponseWriter, r *http.Request) {
					s := session.FromContext(r.Context())
					n := s.GetInt("count")
					if r.URL.Query().Has("slow") {
						entered <- struct{}{}
						<-release
					}
					s.Set("count", n+1)
					fmt.Fprint(w, n+1)
				})
				srv := httptest.NewServer(m.Handler(mux))
				t.Cleanup(srv.Close)
				t.Cleanup(func() { m.Close() })
				return srv, st
			}
			a, st := newServer("a")
			b, _ := newServer("b")
			jar, _ := cookiejar.New(nil)
			client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
			get := func(url string) (int, string) {
				res, err := client.Get(url)
				if err != nil {
					t.Errorf("GET %s: %v", url, err)
					return 0, ""
				}
				defer res.Body.Close()
				body, _ := io.ReadAll(res.Body)
				return res.StatusCode, string(body)
			}
			if code, body := get(a.URL + "/inc"); code != 200 || body != "1" {
				t.Fatalf("first /inc: %d %s", code, body)
			}
			slowDone := make(chan int)
			go func() {
				code, _ := get(a.URL + "/inc?slow")
				slowDone <- code
			}()
			<-entered
			// The slow request holds the lock; lose it, and let server b's
			// request take it.
			keys, err := lockKeys(t.Context(), c, prefix)
			if err != nil || len(keys) != 1 {
				t.Fatalf("lock keys %v, %v; want the one held", keys, err)
			}
			if err := c.Del(t.Context(), keys[0]).Err(); err != nil {
				t.Fatal(err)
			}
			if code, body := get(b.URL + "/inc"); code != 200 || body != "2" {
				t.Fatalf("/inc on server b while a's lock is lost: %d %s, want 200 2", code, body)
			}
			close(release)
			if code := <-slowDone; code != http.StatusInternalServerError {
				t.Fatalf("the request that lost its lock got %d, want 500", code)
			}
			if err, _ := errs.Load("a"); !errors.Is(err.(error), session.ErrLockLost) {
				t.Fatalf("server a reported %v, want ErrLockLost", err)
			}
			if code, body := get(b.URL + "/inc"); code != 200 || body != "3" {
				t.Fatalf("/inc after: %d %s, want exactly 3", code, body)
			}
			_ = st
		})
	}
}

// lockKeys lists the lock keys under prefix, on every node.
func lockKeys(ctx context.Context, c redis.UniversalClient, prefix string) ([]string, error) {
	return scanKeys(ctx, c, prefix+"*:lock")
}

// queueLen returns how many requests hold or wait for key's lock in this
// process.
func (s *Store) queueLen(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[key]; q != nil {
		return q.refs
	}
	return 0
}
