package session_test

// When the store fails: every failure is loud (an error through the
// ErrorHandler) and fails closed, leaving the cookie and the session as
// they were (R19); a corrupt record starts a fresh session; and whatever
// goes wrong, the logs carry no id (R13).

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// R19: whichever store call fails, the answer is an error through the
// ErrorHandler that replaces the handler's response (its headers too), the
// cookie is left alone, and the session is as it was once the store is
// back.
func TestStoreFailureFailsClosedAndKeepsCookie(t *testing.T) {
	t.Parallel()
	const idle = 30 * time.Minute
	redirect := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "/somewhere")
			h(w, r)
		}
	}
	rs := routes{
		"/login":  loginRoute,
		"/logout": redirect(logoutRoute),
		"/set":    redirect(setRoute("user", "mallory")),
		"/regen":  redirect(regenerateRoute),
		"/":       redirect(whoRoute),
	}
	cases := []struct {
		name, op, path string
		wait           time.Duration
	}{
		{"load", "load", "/", 0},
		{"load before a change", "load", "/set", 0},
		{"update of a change", "update", "/set", 0},
		{"refresh of the expiry", "touch", "/", idle / 5}, // a refresh is due after a tenth of IdleTimeout
		{"delete at logout", "delete", "/logout", 0},
		{"create at Regenerate", "create", "/regen", 0},
		{"delete of the old id at Regenerate", "delete", "/regen", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			st := &faultStore{Store: clk.memoryStore(t, session.MemoryOptions{})}
			srv := newServerAt(t, clk, session.Options{Store: st, IdleTimeout: idle, Cookie: session.CookieOptions{MaxAge: time.Hour}}, rs)
			srv.get("/login")
			cookie := srv.cookie()
			clk.advance(c.wait)
			st.set(c.op, errTestDown)
			res, _ := srv.get(c.path)
			st.set(c.op, nil)
			if res.StatusCode != 500 {
				t.Fatalf("status %d with the store failing, want 500", res.StatusCode)
			}
			if sc := res.Header.Get("Set-Cookie"); sc != "" {
				t.Fatalf("the failed request changed the cookie: %q", sc)
			}
			if loc := res.Header.Get("Location"); loc != "" {
				t.Fatalf("the failed response kept the handler's Location %q", loc)
			}
			if err := srv.err(); !errors.Is(err, errTestDown) {
				t.Fatalf("ErrorHandler got %v", err)
			}
			if srv.cookie() != cookie {
				t.Fatal("the browser's cookie changed")
			}
			if _, body := srv.get("/"); body != "ann" {
				t.Fatalf("after the store came back: %q, want the session as it was", body)
			}
		})
	}
	t.Run("create of a new session", func(t *testing.T) {
		t.Parallel()
		mem := newMemory(t)
		st := &faultStore{Store: mem}
		srv := newServer(t, session.Options{Store: st}, rs)
		st.set("create", errTestDown)
		res, _ := srv.get("/login")
		if res.StatusCode != 500 || res.Header.Get("Set-Cookie") != "" {
			t.Fatalf("status %d Set-Cookie %q", res.StatusCode, res.Header.Get("Set-Cookie"))
		}
		if err := srv.err(); !errors.Is(err, errTestDown) {
			t.Fatalf("ErrorHandler got %v", err)
		}
		if n := mem.Len(); n != 0 {
			t.Fatalf("%d records after a failed create", n)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		t.Parallel()
		st := &faultStore{Store: newMemory(t)}
		var got error
		srv := newServer(t, session.Options{Store: st}, routes{
			"/login": loginRoute,
			"/revoke": func(w http.ResponseWriter, r *http.Request) {
				_, got = session.FromContext(r.Context()).RevokeOwner(true)
			},
			"/": whoRoute,
		})
		srv.get("/login")
		st.set("deleteOwner", errTestDown)
		srv.get("/revoke")
		if !errors.Is(got, errTestDown) {
			t.Fatalf("RevokeOwner with the store down: %v", got)
		}
		if _, body := srv.get("/"); body != "ann" {
			t.Fatalf("after a failed revoke: %q", body)
		}
	})
}

// R19, R4: a store at its cap refuses new sessions with 503 through the
// default ErrorHandler, and sessions already in it keep working.
func TestFullStoreRefusesNewSessionsOnly(t *testing.T) {
	t.Parallel()
	srv := newServer(t, session.Options{Store: newMemoryWith(t, session.MemoryOptions{MaxSessions: 1})}, routes{"/login": loginRoute, "/": whoRoute})
	srv.get("/login")
	res, _ := fetch(t, newBrowser(t), srv.URL+"/login")
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Set-Cookie") != "" {
		t.Fatalf("a new session in a full store: status %d Set-Cookie %q", res.StatusCode, res.Header.Get("Set-Cookie"))
	}
	if _, body := srv.get("/"); body != "ann" {
		t.Fatalf("the existing session in a full store: %q", body)
	}
	if !strings.Contains(srv.logs.String(), "full") {
		t.Fatalf("the refusal was not logged: %s", srv.logs.String())
	}
}

// R13 (logs), R19: a corrupt record is logged and replaced by a fresh
// session under a new id, never a 500 on every request of that visitor.
func TestCorruptRecordStartsFreshSession(t *testing.T) {
	t.Parallel()
	st := &faultStore{Store: newMemory(t)}
	srv := newServer(t, session.Options{Store: st}, routes{"/login": loginRoute, "/": func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		seen := fmt.Sprint(s.IsNew(), s.GetString("user"))
		s.Set("seen", true)
		io.WriteString(w, seen)
	}})
	srv.get("/login")
	id := srv.cookie()
	st.spoil(hashedKey(id))
	res, body := srv.get("/")
	if res.StatusCode != 200 || body != "true" {
		t.Fatalf("corrupt record: status %d body %q, want 200 and a fresh session", res.StatusCode, body)
	}
	if fresh := srv.cookie(); fresh == "" || fresh == id {
		t.Fatalf("the fresh session kept the corrupt record's id")
	}
	if _, body := srv.get("/"); body != "false" {
		t.Fatalf("the fresh session was not kept: %q", body)
	}
	if !strings.Contains(srv.logs.String(), "corrupt") {
		t.Fatalf("the corrupt record was not logged: %q", srv.logs.String())
	}
}

// R13: logs carry at most a short hash of an id: never the id, the signed
// cookie value, its signature or the store key, whatever goes wrong.
func TestLogsNeverContainIDs(t *testing.T) {
	t.Parallel()
	const idle = 30 * time.Minute
	clk := newClock()
	faults := &faultStore{Store: clk.memoryStore(t, session.MemoryOptions{})}
	loaded, release := make(chan struct{}, 1), make(chan struct{})
	holding, letGo := make(chan struct{}, 1), make(chan struct{})
	var locked http.Handler
	srv := newServerAt(t, clk, session.Options{
		Store:       faults,
		SigningKeys: [][]byte{signingKey(7)},
		LockTimeout: 50 * time.Millisecond,
		IdleTimeout: idle,
		Cookie:      session.CookieOptions{MaxAge: time.Hour},
	}, routes{
		"/login":  loginRoute,
		"/logout": logoutRoute,
		"/set":    setRoute("n", 1),
		"/slow": func(w http.ResponseWriter, r *http.Request) {
			loaded <- struct{}{}
			<-release
			session.FromContext(r.Context()).Set("late", true)
		},
		"/late-new": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "streaming")
			session.FromContext(r.Context()).Set("x", 1)
		},
		"/hold": func(w http.ResponseWriter, r *http.Request) { locked.ServeHTTP(w, r) },
		"/":     whoRoute,
	})
	locked = srv.m.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		holding <- struct{}{}
		<-letGo
	}))
	var secrets []string
	login := func() string {
		v := srv.issue("/login")
		secrets = append(secrets, v, v[:43], v[44:], hashedKey(v[:43]))
		return v
	}
	get := func(path, v string) int {
		if v == "" {
			res, _ := srv.send(path)
			return res.StatusCode
		}
		res, _ := srv.sendID(path, v)
		return res.StatusCode
	}
	failing := func(op string, f func() int) int {
		faults.set(op, errTestDown)
		defer faults.set(op, nil)
		return f()
	}
	events := []struct {
		name   string
		status int
		run    func() int
	}{
		{"load fails", 500, func() int { v := login(); return failing("load", func() int { return get("/", v) }) }},
		{"update fails", 500, func() int { v := login(); return failing("update", func() int { return get("/set", v) }) }},
		{"delete fails", 500, func() int { v := login(); return failing("delete", func() int { return get("/logout", v) }) }},
		{"refresh fails", 500, func() int {
			v := login()
			clk.advance(idle / 5) // a refresh is due after a tenth of IdleTimeout
			return failing("touch", func() int { return get("/", v) })
		}},
		{"create fails", 500, func() int { return failing("create", func() int { return get("/set", "") }) }},
		{"corrupt record", 200, func() int {
			v := login()
			faults.spoil(hashedKey(v[:43]))
			return get("/", v)
		}},
		{"destroyed by a concurrent request", 200, func() int {
			v := login()
			done := make(chan int)
			go func() { done <- get("/slow", v) }()
			<-loaded
			get("/logout", v)
			close(release)
			return <-done
		}},
		{"lock wait times out", 503, func() int {
			v := login()
			done := make(chan int)
			go func() { done <- get("/hold", v) }()
			<-holding
			code := get("/hold", v)
			close(letGo)
			<-done
			return code
		}},
		{"new session after the first byte", 200, func() int { return get("/late-new", "") }},
	}
	for _, e := range events {
		before := len(srv.logs.String())
		if code := e.run(); code != e.status {
			t.Errorf("%s: status %d, want %d", e.name, code, e.status)
		}
		if len(srv.logs.String()) == before {
			t.Errorf("%s: nothing was logged", e.name)
		}
	}
	out := srv.logs.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("the logs contain %q, a secret of a session:\n%s", s, out)
		}
	}
	// What they carry instead is a short hash, enough to follow a session.
	hashes := regexp.MustCompile(`session=([0-9a-f]+)`).FindAllStringSubmatch(out, -1)
	if len(hashes) == 0 {
		t.Fatalf("no session hash in the logs:\n%s", out)
	}
	for _, h := range hashes {
		if len(h[1]) > 16 {
			t.Fatalf("session=%s in the logs is more than a short hash", h[1])
		}
	}
}
