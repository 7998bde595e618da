package session_test

// Tests of Options.Events through real HTTP: each hook fires exactly when
// its event happens, says what happened, and never carries an id.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// event is one call of a hook.
type event struct {
	kind  string // the Events field called
	s     session.SessionEvent
	owner string
	n     int
	op    string
	d     time.Duration
	err   error
}

// String is the event as the tests compare it: what it names, without its
// duration. A store call is its op and, after a colon, its error's kind.
func (e event) String() string {
	switch e.kind {
	case "Revoked":
		return fmt.Sprintf("Revoked %s %d", e.owner, e.n)
	case "LockWait":
		return "LockWait" + errKind(e.err)
	case "StoreCall":
		return e.op + errKind(e.err)
	case "Regenerated":
		return e.kind + " " + e.s.LogID + " from " + e.s.PreviousLogID
	}
	return e.kind + " " + e.s.LogID
}

func errKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, session.ErrNotFound):
		return ": not found"
	case errors.Is(err, session.ErrLockTimeout):
		return ": timeout"
	case errors.Is(err, errTestDown):
		return ": down"
	}
	return ": " + err.Error()
}

// recorder keeps every event of a Manager.
type recorder struct {
	mu  sync.Mutex
	evs []event
}

func (r *recorder) add(e event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}

// events returns hooks that record into r, every one of them set.
func (r *recorder) events() *session.Events {
	sess := func(kind string) func(context.Context, session.SessionEvent) {
		return func(_ context.Context, e session.SessionEvent) { r.add(event{kind: kind, s: e}) }
	}
	return &session.Events{
		Created:     sess("Created"),
		Regenerated: sess("Regenerated"),
		Destroyed:   sess("Destroyed"),
		Expired:     sess("Expired"),
		Revoked: func(_ context.Context, owner string, n int) {
			r.add(event{kind: "Revoked", owner: owner, n: n})
		},
		LockWait: func(_ context.Context, d time.Duration, err error) {
			r.add(event{kind: "LockWait", d: d, err: err})
		},
		StoreCall: func(_ context.Context, op string, d time.Duration, err error) {
			r.add(event{kind: "StoreCall", op: op, d: d, err: err})
		},
	}
}

// take returns the events so far and forgets them.
func (r *recorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.evs
	r.evs = nil
	return evs
}

// check fails the test unless the events since the last take are want.
func (r *recorder) check(t *testing.T, step string, want ...string) {
	t.Helper()
	var got []string
	for _, e := range r.take() {
		got = append(got, e.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: events\n  %q\nwant\n  %q", step, got, want)
	}
}

// lid is the LogID of the session whose cookie value (unsigned) is v.
func lid(v string) string {
	sum := sha256.Sum256([]byte(hashedKey(v)))
	return hex.EncodeToString(sum[:6])
}

// newCookie returns the cookie value of a new session set by a response.
func newCookie(t *testing.T, res *http.Response) string {
	t.Helper()
	c := cookieIn(res, cookieName)
	if c == nil || c.Value == "" {
		t.Fatalf("no new session cookie: %q", res.Header.Values("Set-Cookie"))
	}
	return c.Value
}

// randomID is a well-formed id that this server never issued.
func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestEventsSessionLifecycle follows one session from its first value to
// its end, on a store that renames in one step and on one that has only
// the Store methods (Regenerate: create, check, delete): each request
// fires exactly its store calls and the one event of what it did.
func TestEventsSessionLifecycle(t *testing.T) {
	t.Parallel()
	const idle = time.Hour
	for _, tc := range []struct {
		name  string
		store func(*session.MemoryStore) session.Store
		regen []string // the store calls of a Regenerate, after its Load
	}{
		{"Renamer", func(m *session.MemoryStore) session.Store { return m }, []string{"Rename"}},
		{"StoreOnly", func(m *session.MemoryStore) session.Store { return plainStore{m} }, []string{"Create", "Load", "Delete"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			rec := &recorder{}
			srv := newServerAt(t, clk, session.Options{
				Store:       tc.store(clk.memoryStore(t, session.MemoryOptions{})),
				IdleTimeout: idle,
				Events:      rec.events(),
			}, routes{
				"/set":        setRoute("n", 1),
				"/regenerate": regenerateRoute,
				"/logout":     logoutRoute,
				"/empty":      func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).Delete("n") },
				"/":           whoRoute,
			})

			srv.send("/")
			rec.check(t, "a request without a cookie")
			v1 := srv.issue("/set")
			rec.check(t, "the first value", "Create", "Created "+lid(v1))
			srv.sendID("/", v1)
			rec.check(t, "a read", "Load")
			srv.sendID("/set", v1)
			rec.check(t, "a change", "Load", "Update")
			clk.advance(idle / 5)
			srv.sendID("/", v1)
			rec.check(t, "a read that refreshes the expiry", "Load", "Touch")

			res, _ := srv.sendID("/regenerate", v1)
			v2 := newCookie(t, res)
			rec.check(t, "Regenerate", slices.Concat([]string{"Load"}, tc.regen, []string{"Regenerated " + lid(v2) + " from " + lid(v1)})...)
			srv.sendID("/", v1)
			rec.check(t, "the id before Regenerate", "Load: not found", "Expired "+lid(v1))

			srv.sendID("/logout", v2)
			rec.check(t, "Destroy", "Load", "Delete", "Destroyed "+lid(v2))
			srv.sendID("/", v2)
			rec.check(t, "a destroyed id", "Load: not found", "Expired "+lid(v2))

			v3 := srv.issue("/set")
			rec.take()
			srv.sendID("/empty", v3)
			rec.check(t, "deleting the last value", "Load", "Update", "Destroyed "+lid(v3))
			srv.noErr()
		})
	}
}

// TestEventsExpired: Expired fires for a well-formed id that names no live
// session, whatever the reason, and never for an id refused before the
// store.
func TestEventsExpired(t *testing.T) {
	t.Parallel()
	const idle, lifetime = time.Hour, 2 * time.Hour
	clk := newClock()
	rec := &recorder{}
	opts := session.Options{IdleTimeout: idle, Lifetime: lifetime, Events: rec.events()}
	rs := routes{"/set": setRoute("n", 1), "/": whoRoute}
	srv := newServerAt(t, clk, opts, rs)

	unknown := randomID()
	srv.sendID("/", unknown)
	rec.check(t, "an id never issued", "Load: not found", "Expired "+lid(unknown))

	v := srv.issue("/set")
	rec.take()
	clk.advance(idle + time.Second)
	srv.sendID("/", v)
	rec.check(t, "an idle session", "Load: not found", "Expired "+lid(v))

	for _, bad := range []string{"abc", unknown + "x", strings.Repeat("!", len(unknown))} {
		srv.sendID("/", bad)
		rec.check(t, "malformed id "+bad)
	}

	// A store that keeps records past their time: the middleware refuses
	// the record it loaded.
	stale := &staleStore{Store: clk.memoryStore(t, session.MemoryOptions{}), now: clk.now, shift: idle}
	opts.Store = stale
	srv = newServerAt(t, clk, opts, rs)
	v = srv.issue("/set")
	rec.take()
	clk.advance(lifetime + time.Second)
	srv.sendID("/", v)
	rec.check(t, "a session past its lifetime, loaded from a lagging store", "Load", "Expired "+lid(v))

	// A forged signature is refused before the store.
	opts.Store, opts.SigningKeys = nil, [][]byte{signingKey(1)}
	srv = newServerAt(t, clk, opts, rs)
	v = srv.issue("/set")
	rec.take()
	srv.sendID("/", v[:strings.IndexByte(v, '.')]+".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	rec.check(t, "a forged signature")
	srv.sendID("/", v)
	rec.check(t, "a signed id", "Load")
	srv.noErr()
}

// TestEventsRevoked: Revoked reports the owner and the count of every
// revocation, from Manager.Revoke and from Session.RevokeOwner, and a
// failed one only as its failed store call.
func TestEventsRevoked(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	faults := &faultStore{Store: newMemory(t)}
	revoke := func(keep bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			n, err := session.FromContext(r.Context()).RevokeOwner(keep)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			io.WriteString(w, strconv.Itoa(n))
		}
	}
	srv := newServer(t, session.Options{Store: faults, Events: rec.events()}, routes{
		"/login":         loginRoute,
		"/revoke-others": revoke(true),
		"/revoke-all":    revoke(false),
	})
	ann := []string{srv.issue("/login?u=ann"), srv.issue("/login?u=ann"), srv.issue("/login?u=ann")}
	srv.issue("/login?u=bob")
	rec.take()

	if _, body := srv.sendID("/revoke-others", ann[2]); body != "2" {
		t.Fatalf("RevokeOwner(true) ended %s sessions, want 2", body)
	}
	rec.check(t, "RevokeOwner(true)", "Load", "DeleteOwner", "Revoked ann 2")

	if n, err := srv.m.Revoke(context.Background(), "bob"); n != 1 || err != nil {
		t.Fatalf("Revoke(bob) = %d, %v", n, err)
	}
	rec.check(t, "Manager.Revoke", "DeleteOwner", "Revoked bob 1")
	srv.m.Revoke(context.Background(), "nobody")
	rec.check(t, "Manager.Revoke of an owner without sessions", "DeleteOwner", "Revoked nobody 0")
	srv.m.Revoke(context.Background(), "")
	rec.check(t, "Manager.Revoke of no owner")

	a4 := srv.issue("/login?u=ann")
	rec.take()
	if _, body := srv.sendID("/revoke-all", a4); body != "1" {
		t.Fatalf("RevokeOwner(false) ended %s other sessions, want 1", body)
	}
	rec.check(t, "RevokeOwner(false)", "Load", "DeleteOwner", "Revoked ann 1", "Delete", "Destroyed "+lid(a4))

	a5 := srv.issue("/login?u=ann")
	rec.take()
	faults.set("deleteOwner", errTestDown)
	if n, err := srv.m.Revoke(context.Background(), "ann"); !errors.Is(err, errTestDown) {
		t.Fatalf("Revoke on a failing store = %d, %v", n, err)
	}
	rec.check(t, "a failed Manager.Revoke", "DeleteOwner: down")
	srv.sendID("/revoke-others", a5)
	rec.check(t, "a failed RevokeOwner", "Load", "DeleteOwner: down")
	srv.noErr()
}

// lockSignal is a memory store whose Lock says when a request starts
// waiting for a lock.
type lockSignal struct {
	*session.MemoryStore
	waiting chan struct{}
}

func (l lockSignal) Lock(ctx context.Context, key string) (session.Lease, error) {
	l.waiting <- struct{}{}
	return l.MemoryStore.Lock(ctx, key)
}

// TestEventsLockWait: LockWait reports each wait for a session's lock: one
// that times out with ErrLockTimeout after LockTimeout, and one that gets
// the lock once its holder is done, with the time it waited.
func TestEventsLockWait(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	rec := &recorder{}
	store := lockSignal{newMemory(t), make(chan struct{}, 4)}
	holding, letGo := make(chan struct{}), make(chan struct{})
	srv := newServer(t, session.Options{Store: store, Lock: true, LockTimeout: timeout, Events: rec.events()}, routes{
		"/set":  setRoute("n", 1),
		"/hold": func(w http.ResponseWriter, r *http.Request) { holding <- struct{}{}; <-letGo },
		"/":     whoRoute,
	})
	v := srv.issue("/set") // a request without a cookie takes no lock
	rec.check(t, "a new session", "Create", "Created "+lid(v))

	held := make(chan int)
	go func() { res, _ := srv.sendID("/hold", v); held <- res.StatusCode }()
	<-store.waiting
	<-holding
	rec.check(t, "the holder", "LockWait", "Load")

	res, _ := srv.sendID("/", v)
	<-store.waiting
	if res.StatusCode != http.StatusServiceUnavailable || !errors.Is(srv.err(), session.ErrLockTimeout) {
		t.Fatalf("a request behind the holder: %d, want 503 for ErrLockTimeout", res.StatusCode)
	}
	evs := rec.take()
	if len(evs) != 1 || evs[0].String() != "LockWait: timeout" || evs[0].d < timeout*9/10 || evs[0].d > 5*time.Second {
		t.Errorf("a lock wait that timed out: events %v (d %v), want one LockWait with ErrLockTimeout after about %v", evs, evsD(evs), timeout)
	}

	waited := make(chan int)
	go func() { res, _ := srv.sendID("/", v); waited <- res.StatusCode }()
	<-store.waiting
	entered := time.Now()
	time.Sleep(timeout / 5) // a wait long enough to see in the event
	released := time.Now()
	close(letGo)
	if code := <-held; code != http.StatusOK {
		t.Fatalf("holder: %d", code)
	}
	if code := <-waited; code != http.StatusOK {
		t.Fatalf("the request that waited: %d", code)
	}
	evs = rec.take()
	if len(evs) != 2 || evs[0].String() != "LockWait" || evs[1].String() != "Load" || evs[0].d < released.Sub(entered) {
		t.Errorf("a lock wait that succeeded: events %v (d %v), want LockWait (no error, at least %v), then Load", evs, evsD(evs), released.Sub(entered))
	}
	srv.noErr()
}

func evsD(evs []event) []time.Duration {
	var ds []time.Duration
	for _, e := range evs {
		ds = append(ds, e.d)
	}
	return ds
}

// TestEventsStoreCallErrors: a failing store call is reported with the
// store's error, and the event it would have caused does not fire.
func TestEventsStoreCallErrors(t *testing.T) {
	t.Parallel()
	const idle = time.Hour
	for _, tc := range []struct {
		fault, path string
		cookie      bool
		want        []string
	}{
		{"load", "/", true, []string{"Load: down"}},
		{"create", "/set", false, []string{"Create: down"}},
		{"update", "/set", true, []string{"Load", "Update: down"}},
		{"touch", "/", true, []string{"Load", "Touch: down"}},
		{"delete", "/logout", true, []string{"Load", "Delete: down"}},
		{"create", "/regenerate", true, []string{"Load", "Create: down"}},
	} {
		t.Run(tc.fault+tc.path, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			rec := &recorder{}
			faults := &faultStore{Store: clk.memoryStore(t, session.MemoryOptions{})}
			srv := newServerAt(t, clk, session.Options{Store: faults, IdleTimeout: idle, Events: rec.events()}, routes{
				"/set":        setRoute("n", 1),
				"/logout":     logoutRoute,
				"/regenerate": regenerateRoute,
				"/":           whoRoute,
			})
			v := srv.issue("/set")
			rec.take()
			clk.advance(idle / 5) // a read refreshes the expiry
			faults.set(tc.fault, errTestDown)
			var cookies []string
			if tc.cookie {
				cookies = append(cookies, cookieName+"="+v)
			}
			res, _ := srv.send(tc.path, cookies...)
			if res.StatusCode != http.StatusInternalServerError || !errors.Is(srv.err(), errTestDown) {
				t.Fatalf("status %d, want 500 for the store's error", res.StatusCode)
			}
			evs := rec.take()
			var got []string
			for _, e := range evs {
				got = append(got, e.String())
				if e.d <= 0 || e.d > 5*time.Second {
					t.Errorf("%v took %v", e, e.d)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("events %q, want %q", got, tc.want)
			}
		})
	}
}

// TestEventsCarryNoIDs runs every kind of event, with signed ids, and
// checks that none carries an id, a signed cookie value or a store key:
// sessions are named by their 12-hex-digit LogID only.
func TestEventsCarryNoIDs(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	faults := &faultStore{Store: newMemory(t)}
	holding, letGo := make(chan struct{}, 1), make(chan struct{})
	var locked http.Handler
	srv := newServer(t, session.Options{
		Store:       faults,
		SigningKeys: [][]byte{signingKey(3)},
		LockTimeout: 50 * time.Millisecond,
		Events:      rec.events(),
	}, routes{
		"/set":    setRoute("n", 1),
		"/login":  loginRoute,
		"/logout": logoutRoute,
		"/hold":   func(w http.ResponseWriter, r *http.Request) { locked.ServeHTTP(w, r) },
		"/":       whoRoute,
	})
	locked = srv.m.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		holding <- struct{}{}
		<-letGo
	}))
	var secrets []string
	keep := func(v string) string {
		id, _, _ := strings.Cut(v, ".")
		secrets = append(secrets, v, id, hashedKey(id))
		return v
	}
	v := keep(srv.issue("/set"))
	res, _ := srv.sendID("/login", v)
	w := keep(newCookie(t, res))
	srv.sendID("/", v) // expired
	done := make(chan struct{})
	go func() { srv.sendID("/hold", w); close(done) }()
	<-holding
	srv.sendID("/hold", w) // lock timeout
	srv.err()
	close(letGo)
	<-done
	keep(srv.issue("/login"))
	srv.m.Revoke(context.Background(), "ann")
	x := keep(srv.issue("/set"))
	srv.sendID("/logout", x)
	y := keep(srv.issue("/set"))
	faults.set("load", errTestDown)
	srv.sendID("/", y)
	srv.err()

	kinds := map[string]int{}
	logID := regexp.MustCompile(`^[0-9a-f]{12}$`)
	for _, e := range rec.take() {
		kinds[e.kind]++
		text := fmt.Sprintf("%#v %v", e, e.err)
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("event %s carries %q", text, s)
			}
		}
		if e.s.LogID != "" && !logID.MatchString(e.s.LogID) || e.s.PreviousLogID != "" && !logID.MatchString(e.s.PreviousLogID) {
			t.Errorf("event %s: LogID is not 12 hex digits", text)
		}
	}
	for _, k := range []string{"Created", "Regenerated", "Destroyed", "Expired", "Revoked", "LockWait", "StoreCall"} {
		if kinds[k] == 0 {
			t.Errorf("no %s event: the test does not cover it", k)
		}
	}
}

// TestEventsPartialAndCopied: any subset of hooks may be set, and the
// Manager keeps the hooks it was built with.
func TestEventsPartialAndCopied(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var created []string
	ev := &session.Events{Created: func(_ context.Context, e session.SessionEvent) {
		mu.Lock()
		defer mu.Unlock()
		created = append(created, e.LogID)
	}}
	srv := newServer(t, session.Options{Events: ev}, routes{"/set": setRoute("n", 1), "/login": loginRoute, "/logout": logoutRoute})
	ev.Created = nil // too late: New copied the hooks
	v := srv.issue("/set")
	res, _ := srv.sendID("/login", v)
	srv.sendID("/logout", newCookie(t, res))
	srv.noErr()
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(created, []string{lid(v)}) {
		t.Errorf("Created called for %q, want once for %s", created, lid(v))
	}
}

// TestExpiredOnceOnLockedRouteInsideHandler: a request whose cookie names
// a session that ended, on a Locked route inside Handler, reports Expired
// once (the outer load), takes no lock for the dead id (no LockWait
// event) and gets a fresh session; a live session's request there still
// waits for the lock and sees the state the holder left.
func TestExpiredOnceOnLockedRouteInsideHandler(t *testing.T) {
	rec := &recorder{}
	var locked http.Handler
	srv := newServer(t, session.Options{Events: rec.events()}, routes{
		"/set":   setRoute("n", 1),
		"/login": loginRoute,
		"/add": func(w http.ResponseWriter, r *http.Request) {
			locked.ServeHTTP(w, r)
		},
	})
	locked = srv.m.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n := s.GetInt("n")
		s.Set("n", n+1)
		fmt.Fprint(w, n+1)
	}))
	old := srv.issue("/set")
	res, _ := srv.sendID("/login", old) // a new id: old names nothing now
	live := newCookie(t, res)
	rec.take()
	if _, body := srv.sendID("/add", old); body != "1" {
		t.Errorf("the ended session's request saw n=%s, want a fresh session (1)", body)
	}
	kinds := map[string]int{}
	for _, e := range rec.take() {
		kinds[e.kind]++
	}
	if kinds["Expired"] != 1 || kinds["LockWait"] != 0 {
		t.Errorf("events %v: want Expired once and no LockWait", kinds)
	}
	// Login kept the session's values: n is 1.
	if _, body := srv.sendID("/add", live); body != "2" {
		t.Errorf("the live session's request answered %s, want 2", body)
	}
	if _, body := srv.sendID("/add", live); body != "3" {
		t.Errorf("the live session's second request answered %s, want 3", body)
	}
	kinds = map[string]int{}
	for _, e := range rec.take() {
		kinds[e.kind]++
	}
	if kinds["LockWait"] != 2 {
		t.Errorf("events %v: want a LockWait for each request of the live session", kinds)
	}
}
