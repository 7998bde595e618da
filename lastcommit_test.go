package session_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// TestLockedInsideHandlerThenRegenerate: a Locked route inside Handler
// that writes nothing returns; the outer handler then regenerates the id
// (a login step after a locked check). Nothing has reached the client, so
// the new cookie can still be sent.
func TestLockedInsideHandlerThenRegenerate(t *testing.T) {
	var srv *server
	srv = newServer(t, session.Options{}, routes{
		"/start": setRoute("user", "ann"),
		"/login": func(w http.ResponseWriter, r *http.Request) {
			srv.m.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				session.FromContext(r.Context()).Set("checked", true)
			})).ServeHTTP(w, r)
			s := session.FromContext(r.Context())
			s.Regenerate()
			s.Set("user", "bob")
			io.WriteString(w, "ok")
		},
		"/show": showRoute,
		"/":     whoRoute,
	})
	old := srv.issue("/start")
	res, _ := srv.sendID("/login", old)
	srv.noErr()
	c := cookieIn(res, cookieName)
	if res.StatusCode != 200 || c == nil || c.Value == old {
		t.Fatalf("login after a Locked route: %d, cookie %v (old %q)", res.StatusCode, c, old)
	}
	if _, body := srv.sendID("/", c.Value); body != "bob" {
		t.Fatalf("new id holds %q", body)
	}
	n := 0
	for _, v := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, cookieName+"=") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the response sets the session cookie %d times: %q", n, res.Header.Values("Set-Cookie"))
	}
	if _, body := srv.send("/show", cookieName+"="+c.Value); !strings.Contains(body, `"checked":true`) {
		t.Errorf("the Locked route's change is not in the session: %s", body)
	}
}

// TestLockedRouteFailedCommitEndsThere: the commit of a Locked route
// inside Handler fails before anything was written, and the client is
// answered 500. That failure is reported once, as what it is; and the
// change the route made under the lock is not saved later, by the outer
// middleware's commit, once the lock is gone and the store is back.
func TestLockedRouteFailedCommitEndsThere(t *testing.T) {
	faults := &faultStore{Store: newMemory(t)}
	var srv *server
	srv = newServer(t, session.Options{Store: faults}, routes{
		"/start": setRoute("user", "ann"),
		"/locked": func(w http.ResponseWriter, r *http.Request) {
			srv.m.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				session.FromContext(r.Context()).Set("n", 1)
			})).ServeHTTP(w, r)
			faults.set("update", nil) // the store is back; the lock is released
		},
		"/show": showRoute,
	})
	id := srv.issue("/start")
	faults.set("update", errTestDown)
	res, body := srv.sendID("/locked", id)
	var errs []string
	for len(srv.errs) > 0 {
		errs = append(errs, (<-srv.errs).Error())
	}
	if res.StatusCode != 500 || len(errs) != 1 || strings.Contains(errs[0], "after the response started") {
		t.Errorf("one failed commit: status %d, body %q, ErrorHandler given %d errors:\n%s",
			res.StatusCode, body, len(errs), strings.Join(errs, "\n"))
	}
	if _, body := srv.sendID("/show", id); strings.Contains(body, `"n"`) {
		t.Errorf("a change whose commit failed (500) under the lock was saved afterwards, without the lock: %s", body)
	}
}

// TestSetAfterReplacedResponseIsNotSilentlyLost: the commit as the
// response starts fails and the ErrorHandler's answer replaces the
// response; nothing will commit the session again (finish returns at
// once). A Set made afterwards, even once the store is back, must not
// return nil and then be dropped: it is past the request's last commit.
func TestSetAfterReplacedResponseIsNotSilentlyLost(t *testing.T) {
	faults := &faultStore{Store: newMemory(t)}
	setErr := make(chan error, 1)
	srv := newServer(t, session.Options{Store: faults}, routes{
		"/start": setRoute("user", "ann"),
		"/write": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("a", 1)
			io.WriteString(w, "hello") // the commit fails: a 500 replaces this
			faults.set("update", nil)
			setErr <- s.Set("b", 2)
		},
		"/show": showRoute,
	})
	id := srv.issue("/start")
	faults.set("update", errTestDown)
	res, _ := srv.sendID("/write", id)
	if res.StatusCode != 500 {
		t.Fatalf("status %d, want 500", res.StatusCode)
	}
	srv.err()
	err := within(t, setErr, 5*time.Second, "the late Set")
	_, body := srv.sendID("/show", id)
	if err == nil && !strings.Contains(body, `"b"`) {
		t.Fatalf("Set after the failed last commit returned nil, but the session holds %s", body)
	}
}

// TestLockedInsideHandlerCookieSetOnce: a Locked route inside Handler
// whose commit sends the cookie (Remember) and an outer handler that then
// regenerates: the response sets the session cookie once, for the new id,
// still remembered.
func TestLockedInsideHandlerCookieSetOnce(t *testing.T) {
	var srv *server
	srv = newServer(t, session.Options{}, routes{
		"/start": setRoute("user", "ann"),
		"/login": func(w http.ResponseWriter, r *http.Request) {
			srv.m.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				session.FromContext(r.Context()).Remember(time.Hour, 24*time.Hour)
			})).ServeHTTP(w, r)
			session.FromContext(r.Context()).Regenerate()
			io.WriteString(w, "ok")
		},
	})
	old := srv.issue("/start")
	res, _ := srv.sendID("/login", old)
	srv.noErr()
	var ours []string
	for _, v := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, cookieName+"=") {
			ours = append(ours, v)
		}
	}
	c := cookieIn(res, cookieName)
	if len(ours) != 1 || c == nil || c.Value == old || c.MaxAge <= 0 {
		t.Fatalf("Set-Cookie for the session: %q; want one, a new id with a Max-Age", ours)
	}
}

// TestLockedRouteLateFailureEndsThere: a Locked route inside Handler that
// has written its answer, then makes a change whose (late) commit fails:
// the failure is reported, and the change is not saved afterwards by the
// outer middleware's last commit, outside the lock, once the store is
// back.
func TestLockedRouteLateFailureEndsThere(t *testing.T) {
	faults := &faultStore{Store: newMemory(t)}
	var srv *server
	srv = newServer(t, session.Options{Store: faults}, routes{
		"/start": setRoute("user", "ann"),
		"/locked": func(w http.ResponseWriter, r *http.Request) {
			srv.m.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "hello")
				session.FromContext(r.Context()).Set("n", 1)
				faults.set("update", errTestDown)
			})).ServeHTTP(w, r)
			faults.set("update", nil) // the store is back; the lock is released
		},
		"/show": showRoute,
	})
	id := srv.issue("/start")
	if res, body := srv.sendID("/locked", id); res.StatusCode != 200 || body != "hello" {
		t.Fatalf("answered %d %q", res.StatusCode, body)
	}
	if err := srv.err(); !errors.Is(err, session.ErrResponseStarted) || !errors.Is(err, errTestDown) {
		t.Errorf("reported %v, want the late commit's failure", err)
	}
	srv.noErr()
	if _, body := srv.sendID("/show", id); strings.Contains(body, `"n"`) {
		t.Errorf("the change whose commit failed was saved later, outside the lock: %s", body)
	}
}

// TestLockedRouteFailedDestroyReportedOnce: a logout on a Locked route
// inside Handler whose Delete fails is reported once, and Delete is not
// tried again by the error page's commit or the outer middleware's.
func TestLockedRouteFailedDestroyReportedOnce(t *testing.T) {
	faults := &faultStore{Store: newMemory(t)}
	var srv *server
	srv = newServer(t, session.Options{Store: faults}, routes{
		"/start": setRoute("user", "ann"),
		"/logout": func(w http.ResponseWriter, r *http.Request) {
			srv.m.Locked(http.HandlerFunc(logoutRoute)).ServeHTTP(w, r)
		},
	})
	id := srv.issue("/start")
	faults.set("delete", errTestDown)
	if res, _ := srv.sendID("/logout", id); res.StatusCode != http.StatusInternalServerError {
		t.Errorf("a failed logout answered %d, want 500", res.StatusCode)
	}
	if err := srv.err(); !errors.Is(err, errTestDown) {
		t.Errorf("reported %v, want the Delete's failure", err)
	}
	srv.noErr()
}

// TestHandlerCookieOfTheSameNameKept: a handler that expires an old
// cookie of the session cookie's name on another path (a migration) keeps
// it in its response, next to the session's own.
func TestHandlerCookieOfTheSameNameKept(t *testing.T) {
	srv := newServer(t, session.Options{}, routes{
		"/set": func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: cookieName, Path: "/old", MaxAge: -1})
			session.FromContext(r.Context()).Set("n", 1)
		},
	})
	res, _ := srv.send("/set")
	var old, ours int
	for _, c := range res.Cookies() {
		switch {
		case c.Name == cookieName && c.Path == "/old":
			old++
		case c.Name == cookieName:
			ours++
		}
	}
	if old != 1 || ours != 1 {
		t.Errorf("Set-Cookie %q: want the handler's expiry and the session's cookie", res.Header.Values("Set-Cookie"))
	}
}
