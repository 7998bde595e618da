package session_test

// Expiry, judged by the server on every read whatever the cookie or the
// store says: the idle timeout (R7), the absolute lifetime (R8), and the
// refresh of the idle expiry, at most once per tenth of the idle timeout.
// Time is a clock the tests move, never a sleep.

import (
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// R7: a session idle for longer than IdleTimeout is gone, for the browser
// that holds it and for a client that replays a persistent cookie ignoring
// the cookie's own expiry; a persistent cookie does not outlive the idle
// timeout either.
func TestIdleTimeoutEnforced(t *testing.T) {
	t.Parallel()
	const idle = 30 * time.Minute
	for _, c := range []struct {
		name   string
		maxAge time.Duration
	}{
		{"browser-session cookie", 0},
		{"persistent cookie replayed", 24 * time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			srv := newServerAt(t, clk, session.Options{IdleTimeout: idle, Cookie: session.CookieOptions{MaxAge: c.maxAge}},
				routes{"/login": loginRoute, "/": whoRoute})
			res, _ := srv.send("/login")
			ck := cookieIn(res, cookieName)
			if ck == nil {
				t.Fatalf("no session cookie: %q", res.Header.Values("Set-Cookie"))
			}
			if c.maxAge > 0 && (ck.MaxAge <= 0 || ck.MaxAge > int(idle/time.Second)) {
				t.Errorf("cookie Max-Age %d with a %v idle timeout", ck.MaxAge, idle)
			}
			clk.advance(idle - time.Second)
			if _, body := srv.sendID("/", ck.Value); body != "ann" {
				t.Fatalf("the session ended before its idle timeout: %q", body)
			}
			clk.advance(idle)
			if _, body := srv.sendID("/", ck.Value); body != "" {
				t.Fatalf("idle session still served: %q", body)
			}
		})
	}
}

// R7: activity keeps a session alive well past the idle timeout, as long
// as it is never idle for that long.
func TestActivityKeepsSessionAlive(t *testing.T) {
	t.Parallel()
	const idle = 30 * time.Minute
	clk := newClock()
	srv := newServerAt(t, clk, session.Options{IdleTimeout: idle}, routes{"/set": setRoute("user", "ann"), "/": showRoute})
	srv.get("/set")
	for range 8 { // 8 × 10 minutes: well past the idle timeout, never idle for long
		clk.advance(idle / 3)
		if _, body := srv.get("/"); !strings.Contains(body, "ann") {
			t.Fatalf("active session expired: %s", body)
		}
	}
}

// R8: the absolute lifetime counts from the session's creation: neither
// activity, nor a persistent cookie, nor a store that returns stale records
// with a pushed expiry extends it, and the cookie never outlives it.
func TestLifetimeIsAbsolute(t *testing.T) {
	t.Parallel()
	const idle, lifetime = time.Hour, 2 * time.Hour
	for _, c := range []struct {
		name  string
		stale bool
	}{
		{"activity", false},
		{"stale store", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			var st session.Store = clk.memoryStore(t, session.MemoryOptions{})
			if c.stale {
				st = &staleStore{Store: st, now: clk.now, shift: time.Hour}
			}
			srv := newServerAt(t, clk, session.Options{Store: st, IdleTimeout: idle, Lifetime: lifetime, Cookie: session.CookieOptions{MaxAge: 24 * time.Hour}},
				routes{"/login": loginRoute, "/": whoRoute})
			res, _ := srv.send("/login")
			end := clk.now().Add(lifetime)
			ck := cookieIn(res, cookieName)
			if ck == nil {
				t.Fatalf("no session cookie: %q", res.Header.Values("Set-Cookie"))
			}
			// Active every 20 minutes until a minute before the end; each
			// refreshed cookie ends by the lifetime.
			for clk.advance(20 * time.Minute); clk.now().Before(end.Add(-time.Minute)); clk.advance(20 * time.Minute) {
				res, body := srv.sendID("/", ck.Value)
				if body != "ann" {
					t.Fatalf("session ended %v before its lifetime: %q", end.Sub(clk.now()), body)
				}
				if re := cookieIn(res, cookieName); re != nil && time.Duration(re.MaxAge)*time.Second > end.Sub(clk.now())+time.Second {
					t.Fatalf("refreshed cookie Max-Age %ds outlives the session's %v left", re.MaxAge, end.Sub(clk.now()))
				}
			}
			clk.advance(end.Sub(clk.now()) + time.Minute)
			if _, body := srv.sendID("/", ck.Value); body != "" {
				t.Fatalf("session served past its absolute lifetime: %q", body)
			}
		})
	}
}

// R7, R8: a store that returns a record past its expiry (its cleanup lags)
// is not trusted: the middleware checks Expires itself.
func TestExpiryCheckedByMiddlewareToo(t *testing.T) {
	t.Parallel()
	st := &staleStore{Store: newMemory(t), now: time.Now, shift: -time.Second}
	srv := newServer(t, session.Options{Store: st}, routes{"/set": setRoute("user", "ann"), "/": showRoute})
	srv.get("/set")
	if _, body := srv.get("/"); strings.TrimSpace(body) != "{}" {
		t.Fatalf("expired record served: %s", body)
	}
}

// An unchanged session's expiry is refreshed (one Touch, no Update) only
// once a tenth of the idle timeout has passed, not on every request.
func TestIdleRefreshThrottled(t *testing.T) {
	t.Parallel()
	const idle = 30 * time.Minute
	clk := newClock()
	st := &countingStore{Store: clk.memoryStore(t, session.MemoryOptions{})}
	srv := newServerAt(t, clk, session.Options{Store: st, IdleTimeout: idle}, routes{"/set": setRoute("user", "ann"), "/": showRoute})
	srv.get("/set")
	for range 5 {
		clk.advance(idle / 100)
		srv.get("/")
	}
	if n := st.touches.Load(); n != 0 {
		t.Fatalf("%d refreshes within a tenth of the idle timeout, want 0", n)
	}
	clk.advance(idle / 10)
	srv.get("/")
	srv.get("/")
	if n, u := st.touches.Load(), st.updates.Load(); n != 1 || u != 0 {
		t.Fatalf("%d refreshes and %d updates after a tenth of the idle timeout, want 1 and 0", n, u)
	}
}
