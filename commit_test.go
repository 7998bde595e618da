package session_test

// The commit through real HTTP: what a request writes (nothing unless the
// session changed, R4, R14), when (before the first byte, and again after
// it), without buffering the response, and within bounds: a client that
// leaves mid-commit cancels nothing, a store that hangs holds a request no
// longer than StoreTimeout and a commit no longer than CommitTimeout.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// R4, R14: a request without a cookie that does not change the session
// gets an empty new session, costs no store call and sets no cookie, and
// its response does not vary by the cookie.
func TestLazySessionNoCookieNoRow(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	srv := newServer(t, session.Options{Store: st}, routes{
		"/": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			if s == nil || !s.IsNew() || s.Len() != 0 || s.Get("x") != nil {
				t.Errorf("want an empty new session, got %v", s)
			}
			io.WriteString(w, "hello")
		},
	})
	res, body := srv.get("/")
	if body != "hello" || res.Header.Get("Set-Cookie") != "" {
		t.Fatalf("body %q, Set-Cookie %q: want hello and no cookie", body, res.Header.Get("Set-Cookie"))
	}
	if res.Header.Get("Vary") != "" {
		t.Errorf("Vary %q on a request without the cookie", res.Header.Get("Vary"))
	}
	if n := st.calls(); n != 0 {
		t.Fatalf("%d store calls for a request without a cookie", n)
	}
}

// R14: a request that only reads its session costs exactly one load, no
// write and no Set-Cookie, and its response varies by the cookie.
func TestReadOnlyRequestWritesNothing(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	srv := newServer(t, session.Options{Store: st}, routes{
		"/set": setRoute("n", 1),
		"/read": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, session.FromContext(r.Context()).GetString("n"))
		},
	})
	srv.get("/set")
	before := st.writes()
	for range 3 {
		res, _ := srv.get("/read")
		if sc := res.Header.Get("Set-Cookie"); sc != "" {
			t.Fatalf("Set-Cookie %q on a read-only request", sc)
		}
		if v := res.Header.Get("Vary"); v != "Cookie" {
			t.Fatalf("Vary %q on a request with the cookie, want Cookie", v)
		}
	}
	if st.writes() != before {
		t.Fatalf("read-only requests wrote to the store %d times", st.writes()-before)
	}
	if st.loads.Load() != 3 {
		t.Fatalf("%d loads for 3 requests, want exactly one each", st.loads.Load())
	}
}

// A login that redirects finds the user logged in on the next request,
// even while the login's handler is still running: the session is saved
// before the response's first byte.
func TestCommitBeforeFirstByte(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := newServer(t, session.Options{}, routes{
		"/login": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("user", "ann")
			http.Redirect(w, r, "/home", http.StatusSeeOther)
			http.NewResponseController(w).Flush()
			<-release // the handler is still running when the client follows the redirect
		},
		"/home": whoRoute,
	})
	defer close(release)
	res, err := srv.browser.Get(srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", res.StatusCode)
	}
	if _, body := srv.get("/home"); body != "ann" {
		t.Fatalf("after the redirect: %q, want the user logged in", body)
	}
	res.Body.Close()
}

// A change made after the first byte is saved when the handler returns; a
// brand-new session made then cannot get its cookie, and the ErrorHandler
// hears of it.
func TestChangeAfterFirstByteIsSaved(t *testing.T) {
	t.Parallel()
	late := func(key string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "streaming")
			session.FromContext(r.Context()).Set(key, 2)
		}
	}
	srv := newServer(t, session.Options{}, routes{"/set": setRoute("a", 1), "/late": late("late"), "/": showRoute})
	srv.get("/set")
	srv.get("/late")
	if _, body := srv.get("/"); !strings.Contains(body, `"late":2`) {
		t.Fatalf("late change lost: %s", body)
	}
	fetch(t, newBrowser(t), srv.URL+"/late")
	if err := srv.err(); !errors.Is(err, session.ErrResponseStarted) {
		t.Fatalf("error %v, want ErrResponseStarted", err)
	}
}

// The middleware buffers nothing: Flush streams through it, with the
// cookie on the first chunk, and Hijack works.
func TestStreamingFlushAndHijack(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	srv := newServer(t, session.Options{}, routes{
		"/stream": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("streamed", true)
			io.WriteString(w, "first\n")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("Flush through the middleware: %v", err)
			}
			<-next
			io.WriteString(w, "second\n")
		},
		"/hijack": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("hijacked", true)
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("Hijack through the middleware: %v", err)
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
			buf.Flush()
		},
	})
	res, err := srv.browser.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "first\n" {
		t.Fatalf("first chunk %q, %v: the response was buffered", buf, err)
	}
	if res.Header.Get("Set-Cookie") == "" {
		t.Fatal("no cookie on a streamed response that created a session")
	}
	close(next)
	rest, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(rest) != "second\n" {
		t.Fatalf("rest %q", rest)
	}
	res2, body := fetch(t, newBrowser(t), srv.URL+"/hijack")
	if body != "hi" || res2.StatusCode != 200 {
		t.Fatalf("hijacked response %d %q", res2.StatusCode, body)
	}
}

// A handler that panics commits nothing.
func TestPanickingHandlerCommitsNothing(t *testing.T) {
	t.Parallel()
	srv := newServer(t, session.Options{}, routes{
		"/set": setRoute("n", 1),
		"/panic": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("n", 99)
			panic(http.ErrAbortHandler)
		},
		"/": showRoute,
	})
	srv.get("/set")
	if _, err := srv.browser.Get(srv.URL + "/panic"); err == nil {
		t.Fatal("aborted handler answered")
	}
	if _, body := srv.get("/"); strings.TrimSpace(body) != `{"n":1}` {
		t.Fatalf("a panicking handler's change was saved: %s", body)
	}
}

// A session larger than MaxSize is refused through the ErrorHandler.
func TestMaxSize(t *testing.T) {
	t.Parallel()
	srv := newServer(t, session.Options{MaxSize: 1024}, routes{"/big": setRoute("blob", strings.Repeat("x", 2000))})
	res, _ := srv.get("/big")
	if res.StatusCode != 500 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if err := srv.err(); !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("error %v, want ErrTooLarge", err)
	}
}

// A client that hangs up while its request's changes are being saved
// cancels nothing: once the store answers, the change, the logout or the
// new session is in it. The store honours its context, so a commit that
// ran on the request's context would fail here.
func TestClientLeavesMidCommit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, path, op string
		loggedIn       bool
		check          func(t *testing.T, mem *session.MemoryStore, srv *server, id string)
	}{
		{"change", "/set", "update", true, func(t *testing.T, mem *session.MemoryStore, srv *server, id string) {
			rec, err := mem.Load(t.Context(), hashedKey(id))
			if err != nil || string(rec.Values["late"]) != `"kept"` {
				t.Fatalf("the change of the client that left: %v, %v", rec, err)
			}
			if _, body := srv.sendID("/", id); strings.TrimSpace(body) != `{"late":"kept","user":"ann"}` {
				t.Fatalf("the next request sees %s", body)
			}
		}},
		{"logout", "/logout", "delete", true, func(t *testing.T, mem *session.MemoryStore, srv *server, id string) {
			if _, err := mem.Load(t.Context(), hashedKey(id)); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("the session survived the logout of the client that left: %v", err)
			}
			if _, body := srv.sendID("/", id); strings.TrimSpace(body) != "{}" {
				t.Fatalf("the old cookie still finds %s", body)
			}
		}},
		{"new session", "/set", "create", false, func(t *testing.T, mem *session.MemoryStore, srv *server, id string) {
			if n := mem.Len(); n != 1 {
				t.Fatalf("%d records: the new session of the client that left was dropped", n)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			mem := newMemory(t)
			st := newSlowStore(mem)
			reqCtx := make(chan context.Context, 1)
			capture := func(h http.HandlerFunc) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					reqCtx <- r.Context()
					h(w, r)
				}
			}
			srv := newServer(t, session.Options{Store: st}, routes{
				"/login":  setRoute("user", "ann"),
				"/set":    capture(setRoute("late", "kept")),
				"/logout": capture(logoutRoute),
				"/":       showRoute,
			})
			var id string
			if c.loggedIn {
				srv.get("/login")
				id = srv.cookie()
			}
			st.arm(c.op)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				res, err := srv.browser.Do(req)
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
			c.check(t, mem, srv, id)
			srv.noErr()
		})
	}
}

// A store that never answers (it waits for its context only) holds a
// commit no longer than CommitTimeout, well within its StoreTimeout, and
// the failure reaches the ErrorHandler: as a 500 for a client that waits,
// and still for one that left.
func TestCommitTimeout(t *testing.T) {
	t.Parallel()
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
			srv := newServer(t, session.Options{Store: st, CommitTimeout: commitTimeout, StoreTimeout: time.Minute}, routes{
				"/login":  setRoute("user", "ann"),
				"/set":    setRoute("late", true),
				"/logout": logoutRoute,
			})
			srv.get("/login")
			id := srv.cookie()
			st.arm(c.op)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+c.path, nil)
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
			res, err := srv.browser.Do(req)
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
			err = srv.err()
			elapsed := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("ErrorHandler got %v, want a deadline", err)
			}
			if elapsed < commitTimeout || elapsed > commitTimeout+3*time.Second {
				t.Fatalf("the commit gave up after %v, want about CommitTimeout (%v)", elapsed, commitTimeout)
			}
			if _, err := mem.Load(t.Context(), hashedKey(id)); err != nil {
				t.Fatalf("the session after the failed commit: %v", err)
			}
		})
	}
}

// StoreTimeout bounds every single store call: a load that hangs ends the
// request with a 500 through the ErrorHandler after about StoreTimeout,
// with an error wrapping context.DeadlineExceeded, and so does a commit's
// call long before CommitTimeout.
func TestStoreTimeout(t *testing.T) {
	t.Parallel()
	const storeTimeout = 100 * time.Millisecond
	for _, c := range []struct{ op, path string }{
		{"load", "/"},
		{"update", "/set"},
		{"delete", "/logout"},
	} {
		t.Run(c.op, func(t *testing.T) {
			t.Parallel()
			st := newSlowStore(newMemory(t)) // never released
			srv := newServer(t, session.Options{Store: st, StoreTimeout: storeTimeout, CommitTimeout: time.Minute}, routes{
				"/login":  setRoute("user", "ann"),
				"/set":    setRoute("late", true),
				"/logout": logoutRoute,
				"/":       whoRoute,
			})
			srv.get("/login")
			cookie := srv.cookie()
			st.arm(c.op)
			start := time.Now()
			res, _ := srv.get(c.path)
			elapsed := time.Since(start)
			if res.StatusCode != 500 || res.Header.Get("Set-Cookie") != "" {
				t.Fatalf("status %d, Set-Cookie %q: want 500 and the cookie left alone", res.StatusCode, res.Header.Get("Set-Cookie"))
			}
			if elapsed < storeTimeout || elapsed > storeTimeout+3*time.Second {
				t.Fatalf("the request took %v, want about StoreTimeout (%v)", elapsed, storeTimeout)
			}
			if err := within(t, srv.errs, time.Second, "the ErrorHandler"); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("ErrorHandler got %v, want an error wrapping context.DeadlineExceeded", err)
			}
			st.arm()
			if srv.cookie() != cookie {
				t.Fatal("the cookie changed")
			}
			if _, body := srv.get("/"); body != "ann" {
				t.Fatalf("after the store came back: %q", body)
			}
		})
	}
}

// TestLateLifetimeChangeIsReported: Remember or ForgetOnClose after the
// first byte is stored, but the cookie cannot follow, and the ErrorHandler
// hears of it instead of the browser keeping its old cookie unannounced.
func TestLateLifetimeChangeIsReported(t *testing.T) {
	t.Parallel()
	srv := newServer(t, session.Options{}, routes{
		"/login": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("user", "ann")
			s.Remember(time.Hour, 24*time.Hour)
		},
		"/forget-late": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "streaming")
			session.FromContext(r.Context()).ForgetOnClose()
		},
	})
	srv.get("/login")
	res, _ := srv.get("/forget-late")
	if c := cookieIn(res, cookieName); c != nil {
		t.Fatalf("a cookie after the first byte: %v", c)
	}
	if err := srv.err(); !errors.Is(err, session.ErrResponseStarted) {
		t.Fatalf("error %v, want ErrResponseStarted", err)
	}
}
