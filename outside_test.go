package session_test

// Sessions outside the middleware: Manager.Load and Manager.LoadID with
// Session.Commit keep the middleware's guarantees (strict ids, one-step
// Update and Rename, no resurrection, a commit detached from cancellation
// within CommitTimeout, each store call within StoreTimeout). A stream or a
// background job changes a session while requests go on, or long after
// the request that started it; misuse fails with a clear error.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// An SSE stream keeps a session for its whole life: it loads it from its
// own request, then reloads it by id for each event, counts the event and
// commits, while the same browser's ordinary requests read and change the
// session. A logout ends the stream's session too: the next event finds
// it gone, and nothing brings it back. On every store.
func TestStreamCommitsWhileRequestsGoOn(t *testing.T) {
	for _, kind := range everyStore {
		t.Run(kind.name, func(t *testing.T) {
			events := make(chan struct{})
			var srv *server
			srv = newServer(t, session.Options{Store: kind.open(t)}, routes{
				"/login":  setRoute("user", "ann"),
				"/set":    setRoute("theme", "dark"),
				"/logout": logoutRoute,
				"/":       showRoute,
				"/events": func(w http.ResponseWriter, r *http.Request) {
					s, err := srv.m.Load(r)
					if err != nil || s.IsNew() {
						http.Error(w, "log in first", http.StatusUnauthorized)
						return
					}
					id := s.ID()
					w.Header().Set("Content-Type", "text/event-stream")
					http.NewResponseController(w).Flush()
					for {
						select {
						case <-events:
						case <-r.Context().Done():
							return
						}
						s, err := srv.m.LoadID(r.Context(), id)
						if errors.Is(err, session.ErrNotFound) {
							io.WriteString(w, "data: ended\n\n")
							return
						}
						if err != nil {
							t.Errorf("LoadID: %v", err)
							return
						}
						n, _ := s.Add("seen", 1)
						if err := s.Commit(r.Context()); err != nil {
							t.Errorf("Commit: %v", err)
							return
						}
						fmt.Fprintf(w, "data: %d\n\n", n)
						http.NewResponseController(w).Flush()
					}
				},
			})
			srv.get("/login")
			id := srv.cookie()
			res, err := srv.browser.Get(srv.URL + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			stream := bufio.NewReader(res.Body)
			next := func() string {
				t.Helper()
				events <- struct{}{}
				line, err := stream.ReadString('\n')
				if err != nil {
					t.Fatalf("the stream: %v", err)
				}
				stream.ReadString('\n') // the blank line that ends an event
				return strings.TrimSpace(line)
			}
			if got := next(); got != "data: 1" {
				t.Fatalf("first event %q", got)
			}
			srv.get("/set") // a request while the stream holds the session
			if got := next(); got != "data: 2" {
				t.Fatalf("second event %q", got)
			}
			if _, body := srv.get("/"); strings.TrimSpace(body) != `{"seen":2,"theme":"dark","user":"ann"}` {
				t.Fatalf("the session after two events and a request: %s", body)
			}
			srv.get("/logout")
			if got := next(); got != "data: ended" {
				t.Fatalf("the event after logout %q", got)
			}
			if _, body := srv.sendID("/", id); strings.TrimSpace(body) != "{}" {
				t.Fatalf("the logged-out id: %s", body)
			}
			srv.noErr()
		})
	}
}

// A background job started by a request changes the session once that
// request is long over: it loads the session by id and commits with the
// request's context, cancelled by now, which the commit is detached from.
func TestBackgroundJobCommitsAfterRequestEnded(t *testing.T) {
	t.Parallel()
	start := make(chan struct{})
	done := make(chan error, 1)
	var srv *server
	srv = newServer(t, session.Options{Store: newSlowStore(newMemory(t))}, routes{
		"/report": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("report", "pending")
			id, ctx := s.ID(), r.Context() // a new session: the id its cookie will carry
			go func() {
				<-start
				if ctx.Err() == nil {
					done <- errors.New("the request's context is not cancelled yet")
					return
				}
				js, err := srv.m.LoadID(context.WithoutCancel(ctx), id)
				if err != nil {
					done <- err
					return
				}
				js.Set("report", "ready")
				done <- js.Commit(ctx)
			}()
			io.WriteString(w, "started")
		},
		"/": showRoute,
	})
	if _, body := srv.get("/report"); body != "started" {
		t.Fatalf("/report answered %q", body)
	}
	srv.get("/") // the request that started the job is over
	close(start)
	if err := within(t, done, 5*time.Second, "the job"); err != nil {
		t.Fatalf("the job: %v", err)
	}
	if _, body := srv.get("/"); strings.TrimSpace(body) != `{"report":"ready"}` {
		t.Fatalf("after the job: %s", body)
	}
}

// Outside the middleware, as inside it, a store that hangs holds each call
// no longer than StoreTimeout and a commit no longer than CommitTimeout,
// and the caller gets an error wrapping context.DeadlineExceeded, with the
// session intact.
func TestOutsideTimeouts(t *testing.T) {
	t.Parallel()
	const short = 150 * time.Millisecond
	for _, c := range []struct {
		name, op      string
		store, commit time.Duration
	}{
		{"LoadID within StoreTimeout", "load", short, time.Minute},
		{"Commit within CommitTimeout", "update", time.Minute, short},
		{"a commit's call within StoreTimeout", "update", short, time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			st := newSlowStore(newMemory(t)) // never released
			srv := newServer(t, session.Options{Store: st, StoreTimeout: c.store, CommitTimeout: c.commit}, routes{
				"/login": setRoute("user", "ann"),
				"/":      whoRoute,
			})
			srv.get("/login")
			id := srv.cookie()
			st.arm(c.op)
			begin := time.Now()
			s, err := srv.m.LoadID(t.Context(), id)
			if err == nil {
				s.Set("late", true)
				err = s.Commit(t.Context())
			}
			elapsed := time.Since(begin)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want an error wrapping context.DeadlineExceeded", err)
			}
			if elapsed < short || elapsed > short+3*time.Second {
				t.Fatalf("gave up after %v, want about %v", elapsed, short)
			}
			st.arm()
			if _, body := srv.get("/"); body != "ann" {
				t.Fatalf("the session after the timeout: %q", body)
			}
		})
	}
}

// R3 outside the middleware: Load reads the request's cookie with the
// middleware's checks. No cookie, a malformed, forged or duplicated one
// cost no store call and give a new session; an unknown (logged-out) id
// gives a new session that Commit stores under a new id, never the one the
// client sent; a live id gives its session. LoadID never starts a session.
func TestLoadIsStrict(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	srv := newServer(t, session.Options{Store: st, SigningKeys: [][]byte{signingKey(1)}}, routes{
		"/login":  loginRoute,
		"/logout": logoutRoute,
	})
	// The handler below is outside the middleware: only Load sees the cookie.
	var created string
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := srv.m.Load(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "new=%v user=%s", s.IsNew(), s.GetString("user"))
		if r.URL.Query().Has("set") {
			s.Set("user", "mallory")
			if err := s.Commit(r.Context()); err != nil {
				t.Errorf("Commit: %v", err)
			}
			created = s.ID()
		}
	}))
	t.Cleanup(outside.Close)
	load := func(path string, cookies ...string) string {
		t.Helper()
		_, body := roundTrip(t, srv.tr, "GET", outside.URL+path, nil, nil, cookies...)
		return body
	}
	live := srv.issue("/login")
	ended := srv.issue("/login")
	srv.sendID("/logout", ended)
	forged := live[:86] + "A"
	if forged == live {
		forged = live[:86] + "B"
	}
	st.reset()
	rejected := srv.m.Stats().RejectedIDs
	for name, cookies := range map[string][]string{
		"no cookie":      nil,
		"malformed":      {cookieName + "=short"},
		"unsigned id":    {cookieName + "=" + live[:43]},
		"forged":         {cookieName + "=" + forged},
		"two copies":     {cookieName + "=" + live, cookieName + "=" + live},
		"oversized":      {cookieName + "=" + strings.Repeat("a", 8000)},
		"other name":     {"OTHER=" + live},
		"cookie garbage": {"\xff;;=;" + cookieName},
	} {
		if got := load("/", cookies...); got != "new=true user=" {
			t.Errorf("%s: %q", name, got)
		}
	}
	if n := st.calls(); n != 0 {
		t.Fatalf("refused cookies cost %d store calls, want 0", n)
	}
	if n := srv.m.Stats().RejectedIDs - rejected; n != 5 {
		t.Fatalf("Stats.RejectedIDs rose by %d, want the 5 refused cookies counted", n)
	}
	if got := load("/", cookieName+"="+live); got != "new=false user=ann" {
		t.Fatalf("live cookie: %q", got)
	}
	if got := load("/?set", cookieName+"="+ended); got != "new=true user=" {
		t.Fatalf("logged-out cookie: %q", got)
	}
	if created == "" || created == ended[:43] {
		t.Fatalf("Commit stored the new session under %q, the id the client sent (%q)", created, ended[:43])
	}
	if _, err := srv.m.LoadID(t.Context(), ended[:43]); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("LoadID of the logged-out id: %v, want ErrNotFound", err)
	}
	if s, err := srv.m.LoadID(t.Context(), created); err != nil || s.GetString("user") != "mallory" {
		t.Fatalf("LoadID of the new session: %v", err)
	}
}

// Regenerate, Destroy and emptying through Commit do what they do in a
// request: a new id that ID reports, the old one gone for the browser too;
// no record left behind. On every store, and on one without Rename.
func TestCommitRegenerateDestroyEmpty(t *testing.T) {
	kinds := append(everyStore[:len(everyStore):len(everyStore)], storeKind{"without Rename", func(t *testing.T) session.Store {
		return plainStore{newMemory(t)}
	}})
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			srv := newServer(t, session.Options{Store: kind.open(t)}, routes{
				"/login": setRoute("user", "ann"),
				"/":      whoRoute,
			})
			ctx := t.Context()
			srv.get("/login")
			old := srv.cookie()
			s, err := srv.m.LoadID(ctx, old)
			if err != nil {
				t.Fatal(err)
			}
			s.Regenerate()
			s.Set("role", "admin")
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			id := s.ID()
			if id == old {
				t.Fatal("Regenerate and Commit kept the id")
			}
			if _, body := srv.get("/"); body != "" {
				t.Fatalf("the old id still works in the browser: %q", body)
			}
			if _, err := srv.m.LoadID(ctx, old); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("LoadID of the old id: %v", err)
			}
			if _, body := srv.sendID("/", id); body != "ann" {
				t.Fatalf("the new id: %q", body)
			}
			s, _ = srv.m.LoadID(ctx, id)
			if s.GetString("role") != "admin" {
				t.Fatal("the change made with Regenerate was lost")
			}
			s.Destroy()
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.m.LoadID(ctx, id); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("LoadID after Destroy and Commit: %v", err)
			}
			srv.get("/login")
			s, _ = srv.m.LoadID(ctx, srv.cookie())
			s.Clear()
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.m.LoadID(ctx, srv.cookie()); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("LoadID after emptying: %v", err)
			}
			srv.noErr()
		})
	}
}

// R17 outside the middleware: a session loaded before a logout, a
// Regenerate or a revoke is not brought back by its Commit, which says so
// with ErrNotFound. A concurrent request's change to another key is kept.
func TestCommitNeverResurrects(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"/logout", "/regen", "revoke"} {
		t.Run(end, func(t *testing.T) {
			t.Parallel()
			st := newMemory(t)
			srv := newServer(t, session.Options{Store: st}, routes{
				"/login":  loginRoute,
				"/logout": logoutRoute,
				"/regen":  regenerateRoute,
				"/":       whoRoute,
			})
			srv.get("/login")
			id := srv.cookie()
			s, err := srv.m.LoadID(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			s.Set("late", true)
			if end == "revoke" {
				srv.m.Revoke(t.Context(), "ann")
			} else {
				srv.get(end)
			}
			if err := s.Commit(t.Context()); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("Commit after %s: %v, want ErrNotFound", end, err)
			}
			if _, err := st.Load(t.Context(), hashedKey(id)); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("the ended session is back: %v", err)
			}
			if end == "/regen" {
				if _, body := srv.get("/"); body != "ann" {
					t.Fatalf("the regenerated session: %q", body)
				}
			}
		})
	}
	t.Run("different keys", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, session.Options{}, routes{
			"/login": setRoute("user", "ann"),
			"/set":   setRoute("theme", "dark"),
			"/":      showRoute,
		})
		srv.get("/login")
		s, err := srv.m.LoadID(t.Context(), srv.cookie())
		if err != nil {
			t.Fatal(err)
		}
		s.Set("seen", 1)
		srv.get("/set")
		if err := s.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, body := srv.get("/"); strings.TrimSpace(body) != `{"seen":1,"theme":"dark","user":"ann"}` {
			t.Fatalf("after a request and a commit that changed different keys: %s", body)
		}
	})
}

// Misuse of Commit and LoadID fails with an error that says what went
// wrong: Commit twice, changes after Commit, Commit on the session the
// middleware commits, and ids that are not ids, which cost no store call.
func TestOutsideMisuse(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	middlewareCommit := make(chan error, 1)
	srv := newServer(t, session.Options{Store: st, SigningKeys: [][]byte{signingKey(1)}}, routes{
		"/login": setRoute("user", "ann"),
		"/commit": func(w http.ResponseWriter, r *http.Request) {
			middlewareCommit <- session.FromContext(r.Context()).Commit(r.Context())
		},
	})
	srv.get("/login")
	signed := srv.cookie()
	id := signed[:43]
	ctx := t.Context()

	srv.get("/commit")
	if err := <-middlewareCommit; !errors.Is(err, session.ErrMiddlewareSession) || !strings.Contains(err.Error(), "Manager.Load") {
		t.Errorf("Commit on the middleware's session: %v, want ErrMiddlewareSession naming Manager.Load", err)
	}

	s, err := srv.m.LoadID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	s.Set("n", 1)
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx); !errors.Is(err, session.ErrSessionClosed) || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Commit: %v, want ErrSessionClosed saying twice", err)
	}
	if err := s.Set("n", 2); !errors.Is(err, session.ErrSessionClosed) || !strings.Contains(err.Error(), "after Commit") {
		t.Errorf("Set after Commit: %v, want ErrSessionClosed", err)
	}
	if s, _ := srv.m.LoadID(ctx, id); s.GetInt("n") != 1 {
		t.Error("a change after Commit was saved")
	}

	st.reset()
	for name, bad := range map[string]string{
		"empty":              "",
		"signed cookie":      signed,
		"short":              id[:42],
		"long":               id + "A",
		"outside base64url":  id[:42] + "+",
		"a store key":        hashedKey(id),
		"with a space":       " " + id[1:],
		"non-UTF-8":          "\xff" + id[1:],
		"header token value": "Bearer " + id,
	} {
		_, err := srv.m.LoadID(ctx, bad)
		if !errors.Is(err, session.ErrInvalidID) || !strings.Contains(err.Error(), "Session.ID") {
			t.Errorf("LoadID(%s): %v, want ErrInvalidID naming Session.ID", name, err)
		}
	}
	if n := st.calls(); n != 0 {
		t.Errorf("malformed ids cost %d store calls", n)
	}
	unknown := strings.Repeat("A", 43)
	if _, err := srv.m.LoadID(ctx, unknown); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("LoadID of an unknown id: %v, want ErrNotFound", err)
	}
	if n := st.creates.Load(); n != 0 {
		t.Errorf("LoadID created %d sessions", n)
	}
}
