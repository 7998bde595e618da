package session_test

// Tests of the commit through real HTTP: a client that leaves while its
// changes are being saved, a store that hangs (StoreTimeout, CommitTimeout),
// Session.Add counters, stores without the optional OwnerStore, and session
// locks whose lease has a store of its own.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// slowStore wraps a store whose chosen operations, once armed, wait until
// release is closed or their context is done, as the contract asks of a
// store that waits on a database. It reports each waiting call on entered
// and the result of each on left.
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
// "delete") wait from now on.
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

// within receives from c, or fails the test after d.
func within[T any](t *testing.T, c <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing after %v", what, d)
		panic("unreachable")
	}
}

// TestClientLeavesMidCommit: a client that hangs up while its request's
// changes are being saved cancels nothing: once the store answers, the
// change, the logout or the new session is in it. The store honours its
// context, so a commit that ran on the request's context would fail here.
func TestClientLeavesMidCommit(t *testing.T) {
	cases := []struct {
		name, path, op string
		loggedIn       bool
		check          func(t *testing.T, mem *session.MemoryStore, a *app, id string)
	}{
		{"change", "/set", "update", true, func(t *testing.T, mem *session.MemoryStore, a *app, id string) {
			rec, err := mem.Load(t.Context(), secHashKey(id))
			if err != nil || string(rec.Values["late"]) != `"kept"` {
				t.Fatalf("the change of the client that left: %v, %v", rec, err)
			}
			if _, body := a.raw("/", "SESSION_ID="+id); strings.TrimSpace(body) != `{"late":"kept","user":"ann"}` {
				t.Fatalf("the next request sees %s", body)
			}
		}},
		{"logout", "/logout", "delete", true, func(t *testing.T, mem *session.MemoryStore, a *app, id string) {
			if _, err := mem.Load(t.Context(), secHashKey(id)); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("the session survived the logout of the client that left: %v", err)
			}
			if _, body := a.raw("/", "SESSION_ID="+id); strings.TrimSpace(body) != "{}" {
				t.Fatalf("the old cookie still finds %s", body)
			}
		}},
		{"new session", "/set", "create", false, func(t *testing.T, mem *session.MemoryStore, a *app, id string) {
			if n := mem.Len(); n != 1 {
				t.Fatalf("%d records: the new session of the client that left was dropped", n)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := newMemory(t)
			st := newSlowStore(mem)
			reqCtx := make(chan context.Context, 1)
			capture := func(h http.HandlerFunc) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					reqCtx <- r.Context()
					h(w, r)
				}
			}
			a := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{
				"/login":  setRoute("user", "ann"),
				"/set":    capture(func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).Set("late", "kept") }),
				"/logout": capture(secLogout),
				"/":       showRoute,
			})
			var id string
			if c.loggedIn {
				a.get("/login")
				id = a.sessionCookie("SESSION_ID")
			}
			st.arm(c.op)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "GET", a.srv.URL+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				res, err := a.client.Do(req)
				if err == nil {
					res.Body.Close()
				}
				done <- err
			}()
			if op := within(t, st.entered, 5*time.Second, "the commit's store call"); op != c.op {
				t.Fatalf("the commit waits in %s, want %s", op, c.op)
			}
			handlerCtx := within(t, reqCtx, 5*time.Second, "the handler")
			cancel() // the client hangs up mid-commit
			if err := within(t, done, 5*time.Second, "the client"); !errors.Is(err, context.Canceled) {
				t.Fatalf("the client's request: %v, want it cancelled", err)
			}
			within(t, handlerCtx.Done(), 5*time.Second, "the server noticing the client left")
			close(st.release) // the database answers
			if err := within(t, st.left, 5*time.Second, "the store call"); err != nil {
				t.Fatalf("the commit of a client that left failed: %v", err)
			}
			st.arm()
			c.check(t, mem, a, id)
			select {
			case err := <-a.errs:
				t.Fatalf("ErrorHandler called: %v", err)
			default:
			}
		})
	}
}

// TestCommitTimeout: a store that never answers (it waits for its context
// only) holds a commit no longer than CommitTimeout, well within its
// StoreTimeout, and the failure reaches the ErrorHandler: as a 500 for a
// client that waits, and still for one that left.
func TestCommitTimeout(t *testing.T) {
	const commitTimeout = 150 * time.Millisecond
	for _, c := range []struct {
		name, path, op string
		leave          bool
	}{
		{"change, client waits", "/set", "update", false},
		{"logout, client waits", "/logout", "delete", false},
		{"change, client left", "/set", "update", true},
		{"logout, client left", "/logout", "delete", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			mem := newMemory(t)
			st := newSlowStore(mem) // never released
			a := newApp(t, session.Options{Store: st, CommitTimeout: commitTimeout, StoreTimeout: time.Minute}, map[string]http.HandlerFunc{
				"/login":  setRoute("user", "ann"),
				"/set":    setRoute("late", true),
				"/logout": secLogout,
			})
			a.get("/login")
			id := a.sessionCookie("SESSION_ID")
			st.arm(c.op)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", a.srv.URL+c.path, nil)
			start := time.Now()
			if c.leave {
				go func() {
					select { // the client hangs up once the commit waits
					case <-st.entered:
					case <-time.After(5 * time.Second):
					}
					cancel()
				}()
			}
			res, err := a.client.Do(req)
			if c.leave {
				if err == nil {
					res.Body.Close()
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != 500 || res.Header.Get("Set-Cookie") != "" {
					t.Fatalf("status %d, Set-Cookie %q: want 500 and the cookie left alone", res.StatusCode, res.Header.Get("Set-Cookie"))
				}
			}
			err = within(t, a.errs, 5*time.Second, "the ErrorHandler")
			elapsed := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("ErrorHandler got %v, want a deadline", err)
			}
			if elapsed < commitTimeout || elapsed > commitTimeout+3*time.Second {
				t.Fatalf("the commit gave up after %v, want about CommitTimeout (%v)", elapsed, commitTimeout)
			}
			if _, err := mem.Load(t.Context(), secHashKey(id)); err != nil {
				t.Fatalf("the session after the failed commit: %v", err)
			}
		})
	}
}

// TestStoreTimeout: StoreTimeout bounds every single store call: a load
// that hangs ends the request with a 500 through the ErrorHandler after
// about StoreTimeout, with an error wrapping context.DeadlineExceeded, and
// so does a commit's call long before CommitTimeout.
func TestStoreTimeout(t *testing.T) {
	const storeTimeout = 100 * time.Millisecond
	for _, c := range []struct{ op, path string }{
		{"load", "/"},
		{"update", "/set"},
		{"delete", "/logout"},
	} {
		t.Run(c.op, func(t *testing.T) {
			t.Parallel()
			st := newSlowStore(newMemory(t)) // never released
			a := newApp(t, session.Options{Store: st, StoreTimeout: storeTimeout, CommitTimeout: time.Minute}, map[string]http.HandlerFunc{
				"/login":  setRoute("user", "ann"),
				"/set":    setRoute("late", true),
				"/logout": secLogout,
				"/":       secWho,
			})
			a.get("/login")
			cookie := a.sessionCookie("SESSION_ID")
			st.arm(c.op)
			start := time.Now()
			res, _ := a.get(c.path)
			elapsed := time.Since(start)
			if res.StatusCode != 500 || res.Header.Get("Set-Cookie") != "" {
				t.Fatalf("status %d, Set-Cookie %q: want 500 and the cookie left alone", res.StatusCode, res.Header.Get("Set-Cookie"))
			}
			if elapsed < storeTimeout || elapsed > storeTimeout+3*time.Second {
				t.Fatalf("the request took %v, want about StoreTimeout (%v)", elapsed, storeTimeout)
			}
			if err := within(t, a.errs, time.Second, "the ErrorHandler"); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("ErrorHandler got %v, want an error wrapping context.DeadlineExceeded", err)
			}
			st.arm()
			if a.sessionCookie("SESSION_ID") != cookie {
				t.Fatal("the cookie changed")
			}
			if _, body := a.get("/"); body != "ann" {
				t.Fatalf("after the store came back: %q", body)
			}
		})
	}
}

// TestAddConcurrentWithoutLock: 128 requests of one session at once, each
// adding 1 with no lock, on the memory store: the count is exactly 128,
// and each request's answer is the count as it saw it.
func TestAddConcurrentWithoutLock(t *testing.T) {
	const n = 128
	a := newApp(t, session.Options{}, map[string]http.HandlerFunc{
		"/login": setRoute("user", "ann"),
		"/add": func(w http.ResponseWriter, r *http.Request) {
			got, err := session.FromContext(r.Context()).Add("count", 1)
			if err != nil {
				t.Error(err)
			}
			fmt.Fprint(w, got)
		},
		"/": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, session.FromContext(r.Context()).GetInt("count"))
		},
	})
	a.get("/login")
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := a.client.Get(a.srv.URL + "/add")
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if got, err := strconv.Atoi(string(body)); res.StatusCode != 200 || err != nil || got < 1 || got > n {
				t.Errorf("status %d, answer %q: want 200 and a count from 1 to %d", res.StatusCode, body, n)
			}
		}()
	}
	wg.Wait()
	if _, body := a.get("/"); body != strconv.Itoa(n) {
		t.Fatalf("count %s after %d concurrent Adds, want %d", body, n, n)
	}
}

// TestAdd: Add in one request, alone and mixed with Set, Delete and Clear,
// on a stored session and on a new one: what it returns, what the request
// reads afterwards, and what is stored. An Add that fails (not an integer,
// or past the int64 range) wraps ErrNotInteger and changes nothing.
func TestAdd(t *testing.T) {
	type step struct {
		key   string
		delta int64
		want  int64 // Add's result
		err   error // or its error
	}
	cases := []struct {
		name   string
		seed   map[string]any // nil: no session yet
		before func(s *session.Session)
		steps  []step
		after  func(s *session.Session)
		stored string // the session as the next request reads it
		writes bool   // whether the request writes to the store
	}{
		{name: "stored counter", seed: map[string]any{"count": 5},
			steps:  []step{{"count", 1, 6, nil}, {"count", 2, 8, nil}, {"count", -10, -2, nil}},
			stored: `{"count":-2}`, writes: true},
		{name: "missing key counts from 0", seed: map[string]any{"user": "ann"},
			steps:  []step{{"count", 3, 3, nil}},
			stored: `{"count":3,"user":"ann"}`, writes: true},
		{name: "new session", steps: []step{{"count", 1, 1, nil}},
			stored: `{"count":1}`, writes: true},
		{name: "Set then Add", seed: map[string]any{"count": 5},
			before: func(s *session.Session) { s.Set("count", 10) },
			steps:  []step{{"count", 1, 11, nil}},
			stored: `{"count":11}`, writes: true},
		{name: "Add then Set", seed: map[string]any{"count": 5},
			steps:  []step{{"count", 1, 6, nil}},
			after:  func(s *session.Session) { s.Set("count", 100) },
			stored: `{"count":100}`, writes: true},
		{name: "Add then Delete", seed: map[string]any{"count": 5, "user": "ann"},
			steps:  []step{{"count", 1, 6, nil}},
			after:  func(s *session.Session) { s.Delete("count") },
			stored: `{"user":"ann"}`, writes: true},
		{name: "Delete then Add", seed: map[string]any{"count": 5},
			before: func(s *session.Session) { s.Delete("count") },
			steps:  []step{{"count", 2, 2, nil}},
			stored: `{"count":2}`, writes: true},
		{name: "Clear then Add", seed: map[string]any{"count": 5, "user": "ann"},
			before: func(s *session.Session) { s.Clear() },
			steps:  []step{{"count", 2, 2, nil}},
			stored: `{"count":2}`, writes: true},
		{name: "string value", seed: map[string]any{"name": "ann"},
			steps:  []step{{"name", 1, 0, session.ErrNotInteger}},
			stored: `{"name":"ann"}`},
		{name: "object value", seed: map[string]any{"obj": map[string]int{"a": 1}},
			steps:  []step{{"obj", 1, 0, session.ErrNotInteger}},
			stored: `{"obj":{"a":1}}`},
		{name: "integral float", seed: map[string]any{"n": json.RawMessage(`2.0`)},
			steps:  []step{{"n", 1, 3, nil}},
			stored: `{"n":3}`, writes: true},
		{name: "overflow at MaxInt64", seed: map[string]any{"count": int64(math.MaxInt64 - 1)},
			steps:  []step{{"count", 1, math.MaxInt64, nil}, {"count", 1, 0, session.ErrNotInteger}},
			stored: `{"count":9223372036854775807}`, writes: true},
		{name: "overflow alone changes nothing", seed: map[string]any{"count": int64(math.MaxInt64)},
			steps:  []step{{"count", 1, 0, session.ErrNotInteger}, {"count", math.MaxInt64, 0, session.ErrNotInteger}},
			stored: `{"count":9223372036854775807}`},
		{name: "underflow at MinInt64", seed: map[string]any{"count": int64(math.MinInt64)},
			steps:  []step{{"count", -1, 0, session.ErrNotInteger}, {"count", 1, math.MinInt64 + 1, nil}},
			stored: `{"count":-9223372036854775807}`, writes: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &countingStore{Store: newMemory(t)}
			a := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{
				"/seed": func(w http.ResponseWriter, r *http.Request) {
					s := session.FromContext(r.Context())
					for k, v := range c.seed {
						s.Set(k, v)
					}
				},
				"/run": func(w http.ResponseWriter, r *http.Request) {
					s := session.FromContext(r.Context())
					if c.before != nil {
						c.before(s)
					}
					for _, sp := range c.steps {
						before, beforeInt := fmt.Sprint(s.Get(sp.key)), s.GetInt64(sp.key)
						got, err := s.Add(sp.key, sp.delta)
						switch {
						case sp.err != nil && !errors.Is(err, sp.err):
							t.Errorf("Add(%q, %d) = %d, %v; want an error wrapping %v", sp.key, sp.delta, got, err, sp.err)
						case sp.err != nil && (fmt.Sprint(s.Get(sp.key)) != before || s.GetInt64(sp.key) != beforeInt):
							t.Errorf("a failed Add(%q, %d) changed the value from %v to %v", sp.key, sp.delta, before, s.Get(sp.key))
						case sp.err == nil && (err != nil || got != sp.want):
							t.Errorf("Add(%q, %d) = %d, %v; want %d", sp.key, sp.delta, got, err, sp.want)
						case sp.err == nil && s.GetInt64(sp.key) != got:
							t.Errorf("after Add(%q, %d) = %d the request reads %d", sp.key, sp.delta, got, s.GetInt64(sp.key))
						}
					}
					if c.after != nil {
						c.after(s)
					}
				},
				"/": showRoute,
			})
			if c.seed != nil {
				a.get("/seed")
			}
			writes := st.writes()
			res, _ := a.get("/run")
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %v", res.StatusCode, <-a.errs)
			}
			if wrote := st.writes() != writes; wrote != c.writes {
				t.Errorf("the request wrote to the store: %v, want %v", wrote, c.writes)
			}
			if _, body := a.get("/"); strings.TrimSpace(body) != c.stored {
				t.Fatalf("stored %s, want %s", strings.TrimSpace(body), c.stored)
			}
		})
	}
}

// TestAddAfterConcurrentSet: an Add whose counter another request set to
// a string meanwhile fails at commit with ErrNotInteger, through the
// ErrorHandler; the other request's value stays.
func TestAddAfterConcurrentSet(t *testing.T) {
	loaded, release := make(chan struct{}), make(chan struct{})
	a := newApp(t, session.Options{}, map[string]http.HandlerFunc{
		"/login": setRoute("count", 1),
		"/add": func(w http.ResponseWriter, r *http.Request) {
			close(loaded)
			<-release
			if n, err := session.FromContext(r.Context()).Add("count", 1); n != 2 || err != nil {
				t.Errorf("Add = %d, %v; want 2 as this request sees it", n, err)
			}
		},
		"/set": setRoute("count", "many"),
		"/":    showRoute,
	})
	a.get("/login")
	done := make(chan *http.Response, 1)
	go func() {
		res, _ := a.get("/add")
		done <- res
	}()
	<-loaded
	a.get("/set")
	close(release)
	if res := <-done; res.StatusCode != 500 {
		t.Fatalf("status %d, want 500", res.StatusCode)
	}
	if err := <-a.errs; !errors.Is(err, session.ErrNotInteger) {
		t.Fatalf("ErrorHandler got %v, want ErrNotInteger", err)
	}
	if _, body := a.get("/"); strings.TrimSpace(body) != `{"count":"many"}` {
		t.Fatalf("stored %s", body)
	}
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

// TestOwnerNeedsOwnerStore: on a store without the optional OwnerStore,
// sessions work, but an owner cannot be stored (the commit fails loudly
// with errors.ErrUnsupported instead of storing an owner that no revoke
// could find) and revoking fails the same way.
func TestOwnerNeedsOwnerStore(t *testing.T) {
	var revokeErr error
	errs := make(chan error, 10)
	m := secManager(t, session.Options{Store: plainStore{newMemory(t)}, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		errs <- err
		http.Error(w, "session error", http.StatusInternalServerError)
	}})
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/set":   setRoute("user", "ann"),
		"/login": secLogin,
		"/owner": func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).SetOwner("ann") },
		"/revoke": func(w http.ResponseWriter, r *http.Request) {
			_, revokeErr = session.FromContext(r.Context()).RevokeOwner(true)
		},
		"/": secWho,
	})
	b := newBrowser(t)
	if res, _ := fetch(t, b, srv.URL+"/set"); res.StatusCode != 200 {
		t.Fatalf("a session without owner: status %d", res.StatusCode)
	}
	for _, path := range []string{"/owner", "/login"} {
		res, _ := fetch(t, b, srv.URL+path)
		if res.StatusCode != 500 {
			t.Fatalf("%s: status %d, want 500", path, res.StatusCode)
		}
		if err := <-errs; !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "OwnerStore") {
			t.Fatalf("%s: ErrorHandler got %v, want errors.ErrUnsupported naming OwnerStore", path, err)
		}
	}
	if _, body := fetch(t, b, srv.URL+"/"); body != "ann" {
		t.Fatalf("the session after the refused owner: %q", body)
	}
	fetch(t, b, srv.URL+"/revoke")
	if revokeErr != nil {
		t.Fatalf("RevokeOwner of a session without owner: %v", revokeErr)
	}
	if _, err := m.Revoke(t.Context(), "ann"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Manager.Revoke: %v, want errors.ErrUnsupported", err)
	}
}

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

func newLeaseStore(t *testing.T) *leaseStore {
	mem := newMemory(t)
	s := &leaseStore{}
	s.countingStore.Store, s.leased.Store = mem, mem
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
	for _, c := range []*countingStore{&s.countingStore, &s.leased} {
		for _, n := range []*atomic.Int64{&c.loads, &c.creates, &c.updates, &c.touches, &c.deletes} {
			n.Store(0)
		}
	}
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

// TestLockLeaseStore: a locked request loads and commits through its
// lease's store, not the store itself, with Options.Lock and with a
// Manager.Locked route; the lock is released once per request.
func TestLockLeaseStore(t *testing.T) {
	type counts struct{ loads, updates, leasedLoads, leasedUpdates, locks, unlocks int64 }
	for _, c := range []struct {
		name string
		lock bool
		path string
		want counts
	}{
		// The outer middleware loads without the lock, then Locked
		// loads again under it.
		{"Manager.Locked", false, "/locked", counts{1, 0, 1, 1, 1, 1}},
		{"Options.Lock", true, "/add", counts{0, 0, 1, 1, 1, 1}},
		{"Options.Lock and Manager.Locked", true, "/locked", counts{0, 0, 1, 1, 1, 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := newLeaseStore(t)
			m := secManager(t, session.Options{Store: st, Lock: c.lock})
			add := func(w http.ResponseWriter, r *http.Request) {
				n, _ := session.FromContext(r.Context()).Add("count", 1)
				fmt.Fprint(w, n)
			}
			srv := secServer(t, m, map[string]http.HandlerFunc{
				"/login":  setRoute("count", 0),
				"/add":    add,
				"/locked": m.Locked(http.HandlerFunc(add)).ServeHTTP,
			})
			b := newBrowser(t)
			fetch(t, b, srv.URL+"/login")
			st.reset()
			if res, body := fetch(t, b, srv.URL+c.path); res.StatusCode != 200 || body != "1" {
				t.Fatalf("status %d, body %q", res.StatusCode, body)
			}
			got := counts{st.loads.Load(), st.updates.Load(), st.leased.loads.Load(), st.leased.updates.Load(), st.locks.Load(), st.unlocks.Load()}
			if got != c.want {
				t.Fatalf("calls %+v, want %+v", got, c.want)
			}
			if _, body := fetch(t, b, srv.URL+c.path); body != "2" {
				t.Fatalf("the second request counted %q", body)
			}
		})
	}
}

// TestLockLost: a lock lost while its request runs fails the commit with
// ErrLockLost through the ErrorHandler, and the session is as it was; a
// lock lost after the commit succeeded costs only a logged warning from
// Unlock, never a panic or an error answer.
func TestLockLost(t *testing.T) {
	st := newLeaseStore(t)
	var logs secLogBuffer
	errs := make(chan error, 10)
	m := secManager(t, session.Options{Store: st, Lock: true, Logger: secLogger(&logs),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			errs <- err
			http.Error(w, "session error", http.StatusInternalServerError)
		}})
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/login": setRoute("n", 1),
		"/lose": func(w http.ResponseWriter, r *http.Request) {
			st.lost.Store(true) // the lock's connection dies
			session.FromContext(r.Context()).Set("n", 2)
		},
		"/flush-then-lose": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("n", 3)
			http.NewResponseController(w).Flush() // committed through the lease
			st.lost.Store(true)
		},
		"/": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, session.FromContext(r.Context()).GetInt("n"))
		},
	})
	b := newBrowser(t)
	fetch(t, b, srv.URL+"/login")
	cookie := secJarCookie(b, srv.URL, "SESSION_ID")

	res, _ := fetch(t, b, srv.URL+"/lose")
	if res.StatusCode != 500 || res.Header.Get("Set-Cookie") != "" {
		t.Fatalf("a lost lock: status %d, Set-Cookie %q; want 500 and the cookie left alone", res.StatusCode, res.Header.Get("Set-Cookie"))
	}
	if err := within(t, errs, time.Second, "the ErrorHandler"); !errors.Is(err, session.ErrLockLost) {
		t.Fatalf("ErrorHandler got %v, want ErrLockLost", err)
	}
	st.lost.Store(false)
	if _, body := fetch(t, b, srv.URL+"/"); body != "1" {
		t.Fatalf("after the lost lock the session reads %q, want it as it was", body)
	}

	before := len(logs.String())
	res, _ = fetch(t, b, srv.URL+"/flush-then-lose")
	if res.StatusCode != 200 {
		t.Fatalf("a lock lost after the commit: status %d", res.StatusCode)
	}
	select {
	case err := <-errs:
		t.Fatalf("ErrorHandler called for a lock lost after the commit: %v", err)
	default:
	}
	if logged := logs.String()[before:]; !strings.Contains(logged, session.ErrLockLost.Error()) {
		t.Fatalf("the lost lock was not logged: %q", logged)
	}
	st.lost.Store(false)
	if _, body := fetch(t, b, srv.URL+"/"); body != "3" {
		t.Fatalf("the change committed before the loss reads %q, want 3", body)
	}
	if secJarCookie(b, srv.URL, "SESSION_ID") != cookie {
		t.Fatal("the cookie changed")
	}
	if l, u := st.locks.Load(), st.unlocks.Load(); l != u {
		t.Fatalf("%d locks, %d unlocks", l, u)
	}
}
