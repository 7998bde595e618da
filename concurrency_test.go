package session_test

// Requests of one session at once: concurrent changes to different keys
// all persist (R18) and counters count every Add; a slower request never
// brings back a session that ended meanwhile (R17); many clients at once
// never see each other's state (R16); and session locks: a locked request
// runs on its lease's store, and a lock lost while its request runs fails
// the commit loudly. The lock's own behaviour (waiting, timing out,
// released after a panic) is in the sessiontest suite that
// TestMemoryStoreHTTP runs.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// keysRoute answers the session's keys, comma-separated.
func keysRoute(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, strings.Join(session.FromContext(r.Context()).Keys(), ","))
}

// R18: 50 requests of one session at once, each setting a key of its own,
// all persist.
func TestConcurrentDifferentKeysAllPersist(t *testing.T) {
	t.Parallel()
	srv := newServer(t, session.Options{}, routes{
		"/set": setRoute("start", 1),
		"/key": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set(r.URL.Query().Get("k"), true)
		},
		"/": keysRoute,
	})
	srv.get("/set")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := srv.browser.Get(srv.URL + "/key?k=k" + strconv.Itoa(i))
			if err == nil {
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	_, body := srv.get("/")
	if n := len(strings.Split(body, ",")); n != 51 {
		t.Fatalf("%d keys after 50 concurrent requests each adding one (want 51): %s", n, body)
	}
}

// R18: requests that all loaded the same version and then commit at once
// (a barrier makes sure they do) keep every request's own change,
// additions and deletions alike. The memory store applies each change in
// one atomic step, so n requests cost n updates and no retry; on a
// compare-and-swap store (through UpdateCAS) the n updates all read one
// version before any saves (a second barrier), so n-1 of them conflict and
// merge key by key.
func TestForcedConflictsMergeKeyByKey(t *testing.T) {
	t.Parallel()
	const n = 16
	t.Run("memory store", func(t *testing.T) {
		t.Parallel()
		st := &countingStore{Store: newMemory(t)}
		forceConflicts(t, st, n)
		if u := st.updates.Load(); u != n {
			t.Fatalf("%d updates for %d commits, want exactly one each", u, n)
		}
	})
	t.Run("compare-and-swap store", func(t *testing.T) {
		t.Parallel()
		st := &casStore{gate: new(sync.WaitGroup)}
		st.gate.Add(n) // one Update per change; the seed's commit is a Create
		forceConflicts(t, st, n)
		if c := st.conflicts.Load(); c < n-1 {
			t.Fatalf("%d conflicts, want at least %d: the test did not test the merge", c, n-1)
		}
		t.Logf("%d conflicts merged", st.conflicts.Load())
	})
}

func forceConflicts(t *testing.T, st session.Store, n int) {
	var barrier sync.WaitGroup
	barrier.Add(n)
	srv := newServer(t, session.Options{Store: st}, routes{
		"/seed": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("keep", "me")
			for i := 1; i < n; i += 2 {
				s.Set("d"+strconv.Itoa(i), i)
			}
		},
		"/change": func(w http.ResponseWriter, r *http.Request) {
			barrier.Done()
			barrier.Wait() // everyone has loaded the same version
			s := session.FromContext(r.Context())
			i, _ := strconv.Atoi(r.URL.Query().Get("i"))
			if i%2 == 0 {
				s.Set("a"+strconv.Itoa(i), i)
			} else {
				s.Delete("d" + strconv.Itoa(i))
			}
		},
		"/": keysRoute,
	})
	srv.get("/seed")
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := srv.browser.Get(srv.URL + "/change?i=" + strconv.Itoa(i))
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("request %d: status %d", i, res.StatusCode)
			}
		}()
	}
	wg.Wait()
	want := []string{"keep"}
	for i := 0; i < n; i += 2 {
		want = append(want, "a"+strconv.Itoa(i))
	}
	slices.Sort(want)
	if _, body := srv.get("/"); body != strings.Join(want, ",") {
		t.Fatalf("after %d commits on one version: keys %s, want %s", n, body, strings.Join(want, ","))
	}
}

// 128 requests of one session at once, each adding 1 with no lock, on the
// memory store: the count is exactly 128, and each request's answer is the
// count as it saw it.
func TestAddConcurrentWithoutLock(t *testing.T) {
	t.Parallel()
	const n = 128
	srv := newServer(t, session.Options{}, routes{
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
	srv.get("/login")
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := srv.browser.Get(srv.URL + "/add")
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
	if _, body := srv.get("/"); body != strconv.Itoa(n) {
		t.Fatalf("count %s after %d concurrent Adds, want %d", body, n, n)
	}
}

// An Add whose counter another request set to a string meanwhile fails at
// commit with ErrNotInteger, through the ErrorHandler; the other request's
// value stays.
func TestAddAfterConcurrentSet(t *testing.T) {
	t.Parallel()
	loaded, release := make(chan struct{}), make(chan struct{})
	srv := newServer(t, session.Options{}, routes{
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
	srv.get("/login")
	done := make(chan *http.Response, 1)
	go func() {
		res, _ := srv.get("/add")
		done <- res
	}()
	<-loaded
	srv.get("/set")
	close(release)
	if res := <-done; res.StatusCode != 500 {
		t.Fatalf("status %d, want 500", res.StatusCode)
	}
	if err := srv.err(); !errors.Is(err, session.ErrNotInteger) {
		t.Fatalf("ErrorHandler got %v, want ErrNotInteger", err)
	}
	if _, body := srv.get("/"); strings.TrimSpace(body) != `{"count":"many"}` {
		t.Fatalf("stored %s", body)
	}
}

// R17: a request that loaded the session before it was ended (logout,
// revoke from another device, Manager.Revoke, Regenerate) and commits after
// it never brings it back: not by writing a key, not by refreshing the
// expiry, not by regenerating. The sessiontest HTTP suite covers a slow
// write against logout and Regenerate on every store.
func TestSlowRequestCannotUndoEnd(t *testing.T) {
	t.Parallel()
	ends := []string{"logout", "revoke from another device", "Manager.Revoke", "regenerate"}
	slows := []string{"write", "refresh", "regenerate"}
	for _, end := range ends {
		for _, slow := range slows {
			if end == "regenerate" && slow == "regenerate" {
				continue
			}
			t.Run(slow+" after "+end, func(t *testing.T) {
				t.Parallel()
				slowAfterEnd(t, end, slow)
			})
		}
	}
}

func slowAfterEnd(t *testing.T, end, slow string) {
	const idle = 30 * time.Minute
	clk := newClock()
	mem := clk.memoryStore(t, session.MemoryOptions{})
	loaded, release := make(chan struct{}), make(chan struct{})
	srv := newServerAt(t, clk, session.Options{Store: mem, IdleTimeout: idle, Cookie: session.CookieOptions{MaxAge: time.Hour}}, routes{
		"/login":  loginRoute,
		"/logout": logoutRoute,
		"/regen":  regenerateRoute,
		"/revoke-others": func(w http.ResponseWriter, r *http.Request) {
			if _, err := session.FromContext(r.Context()).RevokeOwner(true); err != nil {
				t.Error(err)
			}
		},
		"/slow": func(w http.ResponseWriter, r *http.Request) {
			close(loaded)
			<-release
			s := session.FromContext(r.Context())
			switch slow {
			case "write":
				s.Set("late", true)
			case "regenerate":
				s.Regenerate()
			} // refresh: only read, the expiry refresh is due by now
		},
		"/": whoRoute,
	})
	device, other := srv.browser, newBrowser(t)
	srv.get("/login?u=alice")
	old := srv.cookie()
	if end == "revoke from another device" {
		fetch(t, other, srv.URL+"/login?u=alice")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fetch(t, device, srv.URL+"/slow")
	}()
	<-loaded
	switch end {
	case "logout":
		srv.get("/logout")
	case "revoke from another device":
		fetch(t, other, srv.URL+"/revoke-others")
	case "Manager.Revoke":
		if n, err := srv.m.Revoke(context.Background(), "alice"); n != 1 || err != nil {
			t.Fatalf("Revoke = %d, %v", n, err)
		}
	case "regenerate":
		srv.get("/regen")
	}
	clk.advance(idle / 5) // the slow request's refresh is due
	close(release)
	<-done

	if _, body := srv.sendID("/", old); body != "" {
		t.Errorf("the old cookie still finds %q", body)
	}
	if _, err := mem.Load(context.Background(), hashedKey(old)); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("the store holds the old key again: %v", err)
	}
	_, body := srv.get("/")
	wantRecords, wantWho := 0, ""
	switch end {
	case "revoke from another device":
		wantRecords = 1 // the other device's
	case "regenerate":
		wantRecords, wantWho = 1, "alice"
	}
	if body != wantWho {
		t.Errorf("the device's session after the slow request: %q, want %q", body, wantWho)
	}
	if n := mem.Len(); n != wantRecords {
		t.Errorf("%d records in the store, want %d: the ended session came back", n, wantRecords)
	}
}

// R16: many clients at once, each with its own session, never see another
// one's values, and a request without a cookie always starts empty.
func TestNoStateLeaksBetweenConcurrentClients(t *testing.T) {
	t.Parallel()
	srv := newServer(t, session.Options{}, routes{
		"/visit": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			me := r.URL.Query().Get("me")
			if got := s.GetString("me"); got != "" && got != me {
				t.Errorf("client %s sees client %s's session", me, got)
			}
			for _, k := range s.Keys() {
				if k != "me" && k != "n" && k != "secret-"+me {
					t.Errorf("client %s sees key %q", me, k)
				}
			}
			n := s.GetInt("n") + 1
			s.Set("me", me)
			s.Set("n", n)
			s.Set("secret-"+me, me)
			fmt.Fprintf(w, "%s %d", me, n)
		},
		"/anon": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			if b, _ := s.MarshalJSON(); !s.IsNew() || s.Len() != 0 || len(s.Keys()) != 0 || string(b) != "{}" {
				t.Errorf("a request without a cookie sees %s", b)
			}
		},
	})
	const clients, visits = 32, 15
	var wg sync.WaitGroup
	ids := make([]string, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := newBrowser(t)
			me := "c" + strconv.Itoa(c)
			for i := 1; i <= visits; i++ {
				res, err := b.Get(srv.URL + "/visit?me=" + me)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if want := fmt.Sprintf("%s %d", me, i); string(body) != want {
					t.Errorf("client %s visit %d: %q, want %q", me, i, body, want)
				}
				req, _ := http.NewRequest("GET", srv.URL+"/anon", nil)
				if res, err := srv.tr.RoundTrip(req); err == nil {
					res.Body.Close()
				}
			}
			ids[c] = jarCookie(b, srv.URL, cookieName)
		}()
	}
	wg.Wait()
	slices.Sort(ids)
	if len(slices.Compact(ids)) != clients {
		t.Fatalf("%d distinct session ids for %d clients", len(slices.Compact(ids)), clients)
	}
}

// A locked request loads and commits through its
// lease's store, not the store itself, with Options.Lock and with a
// Manager.Locked route; the lock is released once per request.
func TestLockLeaseStore(t *testing.T) {
	t.Parallel()
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
			t.Parallel()
			st := newLeaseStore(newMemory(t))
			add := func(w http.ResponseWriter, r *http.Request) {
				n, _ := session.FromContext(r.Context()).Add("count", 1)
				fmt.Fprint(w, n)
			}
			var locked http.Handler
			srv := newServer(t, session.Options{Store: st, Lock: c.lock}, routes{
				"/login":  setRoute("count", 0),
				"/add":    add,
				"/locked": func(w http.ResponseWriter, r *http.Request) { locked.ServeHTTP(w, r) },
			})
			locked = srv.m.Locked(http.HandlerFunc(add))
			srv.get("/login")
			st.reset()
			if res, body := srv.get(c.path); res.StatusCode != 200 || body != "1" {
				t.Fatalf("status %d, body %q", res.StatusCode, body)
			}
			got := counts{st.loads.Load(), st.updates.Load(), st.leased.loads.Load(), st.leased.updates.Load(), st.locks.Load(), st.unlocks.Load()}
			if got != c.want {
				t.Fatalf("calls %+v, want %+v", got, c.want)
			}
			if _, body := srv.get(c.path); body != "2" {
				t.Fatalf("the second request counted %q", body)
			}
		})
	}
}

// A lock lost while its request runs fails the commit with
// ErrLockLost through the ErrorHandler, and the session is as it was; a
// lock lost after the commit succeeded costs only a logged warning from
// Unlock, never a panic or an error answer.
func TestLockLost(t *testing.T) {
	t.Parallel()
	st := newLeaseStore(newMemory(t))
	srv := newServer(t, session.Options{Store: st, Lock: true}, routes{
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
	srv.get("/login")
	cookie := srv.cookie()

	res, _ := srv.get("/lose")
	if res.StatusCode != 500 || res.Header.Get("Set-Cookie") != "" {
		t.Fatalf("a lost lock: status %d, Set-Cookie %q; want 500 and the cookie left alone", res.StatusCode, res.Header.Get("Set-Cookie"))
	}
	if err := within(t, srv.errs, time.Second, "the ErrorHandler"); !errors.Is(err, session.ErrLockLost) {
		t.Fatalf("ErrorHandler got %v, want ErrLockLost", err)
	}
	st.lost.Store(false)
	if _, body := srv.get("/"); body != "1" {
		t.Fatalf("after the lost lock the session reads %q, want it as it was", body)
	}

	before := len(srv.logs.String())
	res, _ = srv.get("/flush-then-lose")
	if res.StatusCode != 200 {
		t.Fatalf("a lock lost after the commit: status %d", res.StatusCode)
	}
	srv.noErr()
	if logged := srv.logs.String()[before:]; !strings.Contains(logged, session.ErrLockLost.Error()) {
		t.Fatalf("the lost lock was not logged: %q", logged)
	}
	st.lost.Store(false)
	if _, body := srv.get("/"); body != "3" {
		t.Fatalf("the change committed before the loss reads %q, want 3", body)
	}
	if srv.cookie() != cookie {
		t.Fatal("the cookie changed")
	}
	if l, u := st.locks.Load(), st.unlocks.Load(); l != u {
		t.Fatalf("%d locks, %d unlocks", l, u)
	}
}

// TestRecycledChangeMapsKeepSessionsApart: the memory store hands the maps
// of a change it applied to later requests. 16 clients, each with its own
// session, 40 requests each, all at once: every request sets a key of its
// own, adds to a counter and, every fifth time, deletes the key before, so
// that a map that still held an earlier request's entries, or one shared
// by two requests at once, would put a key or a count in the wrong
// session. Each session must end with exactly its own keys and count.
func TestRecycledChangeMapsKeepSessionsApart(t *testing.T) {
	srv := newServer(t, session.Options{}, routes{
		"POST /w/{c}/{i}": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			c, i := r.PathValue("c"), r.PathValue("i")
			n, _ := strconv.Atoi(i)
			if _, err := s.Add("count-"+c, 1); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			s.Set("k"+c+"-"+i, n)
			if n%5 == 0 && n > 0 {
				s.Delete("k" + c + "-" + strconv.Itoa(n-1))
			}
		},
		"GET /start": setRoute("start", 1),
		"GET /show":  showRoute,
	})
	const clients, requests = 16, 40
	cookies := make([]string, clients)
	for c := range cookies {
		cookies[c] = cookieName + "=" + srv.issue("/start")
	}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range requests {
				res, body := srv.do("POST", "/w/"+strconv.Itoa(c)+"/"+strconv.Itoa(i), nil, nil, cookies[c])
				if res.StatusCode != http.StatusOK {
					t.Errorf("client %d request %d: %d %s", c, i, res.StatusCode, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	for c := range clients {
		_, body := srv.send("/show", cookies[c])
		var got map[string]int
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("client %d: %q: %v", c, body, err)
		}
		want := map[string]int{"start": 1, "count-" + strconv.Itoa(c): requests}
		for i := range requests {
			if i%5 == 4 && i < requests-1 {
				continue // deleted by the request after it
			}
			want["k"+strconv.Itoa(c)+"-"+strconv.Itoa(i)] = i
		}
		if !maps.Equal(got, want) {
			t.Errorf("client %d's session holds %v, want %v", c, got, want)
		}
	}
	srv.noErr()
}

// TestNoChangeSlipsPastTheLastCommit: a goroutine that keeps setting a
// value after its handler returned is either refused (ErrSessionClosed)
// or saved: the middleware's last commit closes the session under the
// same hold of its lock, so no Set can succeed between that commit and
// the end of the request and then be lost. 200 rounds, each checking that
// the stored value is the goroutine's last accepted one.
func TestNoChangeSlipsPastTheLastCommit(t *testing.T) {
	accepted := make(chan int, 1)
	srv := newServer(t, session.Options{}, routes{
		"GET /start": setRoute("g", -1),
		"GET /race": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			running := make(chan struct{})
			go func() {
				last := -1
				close(running)
				for i := 0; ; i++ {
					if err := s.Set("g", i); err != nil {
						if !errors.Is(err, session.ErrSessionClosed) {
							t.Errorf("Set after the handler: %v", err)
						}
						accepted <- last
						return
					}
					last = i
				}
			}()
			<-running
		},
		"GET /show": showRoute,
	})
	cookie := cookieName + "=" + srv.issue("/start")
	want := -1
	for round := range 200 {
		if res, body := srv.send("/race", cookie); res.StatusCode != http.StatusOK {
			t.Fatalf("round %d: %d %s", round, res.StatusCode, body)
		}
		if last := within(t, accepted, 5*time.Second, "the goroutine's refusal"); last >= 0 {
			want = last
		}
		_, body := srv.send("/show", cookie)
		var got struct{ G int }
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("round %d: %q: %v", round, body, err)
		}
		if got.G != want {
			t.Fatalf("round %d: Set returned nil for %d, but the session holds %d: a change after the last commit was accepted and lost", round, want, got.G)
		}
	}
}
