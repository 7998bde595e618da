package session_test

// Misuse and hostile input get a clear answer and lose nothing: a value that
// cannot be stored is refused where the handler can react, MaxSize measures
// the bytes stored, a full memory store still lets its visitors log in,
// changes nobody could save are reported, and a request that ends before its
// cookie is sent leaves no orphan record. Each runs on every store it
// applies to: memory, and on MariaDB the MySQL store and the Koa bridge.

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
	"github.com/seed013449c2/session/koa"
)

// storeKind opens a fresh store of one kind for a test.
type storeKind struct {
	name string
	open func(t *testing.T) session.Store
}

// everyStore is the memory store, the MySQL store and the Koa bridge, the
// last two on a table of their own in the test database (skipped without
// one, except under CI=true).
var everyStore = []storeKind{
	{"memory", func(t *testing.T) session.Store { return newMemory(t) }},
	{"mysql", func(t *testing.T) session.Store {
		cfg, table := sqltest.Table(t)
		st, err := session.NewMySQLStore(sqltest.OpenDB(t, cfg), session.MySQLOptions{Table: table})
		return sqltest.Opened(t, st, err)
	}},
	{"koa", func(t *testing.T) session.Store {
		cfg, table := sqltest.Table(t)
		st, err := koa.NewStore(sqltest.OpenDB(t, cfg), koa.Options{Table: table})
		return sqltest.Opened(t, st, err)
	}},
}

// nested returns a value nested depth arrays deep.
func nested(depth int) any {
	var v any = "bottom"
	for range depth {
		v = []any{v}
	}
	return v
}

// TestSetRefusesUnstorableValues: a value that cannot be stored (one JSON
// cannot encode, or one nested too deep to read back) is refused by Set,
// with an error the handler can act on; the handler's own response goes out
// as it wrote it, the request's valid changes are saved, the session stays
// readable, and the refusal is logged.
func TestSetRefusesUnstorableValues(t *testing.T) {
	type cyclic struct{ Next *cyclic }
	loop := &cyclic{}
	loop.Next = loop
	values := map[string]any{
		"chan":                make(chan int),
		"func":                func() {},
		"NaN":                 math.NaN(),
		"cycle":               loop,
		"101 levels":          nested(101),
		"10,000 levels":       nested(10_000),
		"raw 150 levels deep": json.RawMessage(strings.Repeat("[", 150) + strings.Repeat("]", 150)),
	}
	for _, kind := range everyStore {
		t.Run(kind.name, func(t *testing.T) {
			for name, bad := range values {
				t.Run(name, func(t *testing.T) {
					srv := newServer(t, session.Options{Store: kind.open(t)}, routes{
						"/login": setRoute("user", "ann"),
						"/bad": func(w http.ResponseWriter, r *http.Request) {
							s := session.FromContext(r.Context())
							s.Set("cart", "3 items")
							if err := s.Set("bad", bad); !errors.Is(err, session.ErrInvalidValue) {
								t.Errorf("Set(%s) = %v, want ErrInvalidValue", name, err)
							}
							w.WriteHeader(http.StatusAccepted)
							io.WriteString(w, "handled")
						},
						"/": showRoute,
					})
					srv.get("/login")
					res, body := srv.get("/bad")
					if res.StatusCode != http.StatusAccepted || body != "handled" {
						t.Fatalf("the handler's response was replaced: %d %q", res.StatusCode, body)
					}
					if _, body := srv.get("/"); strings.TrimSpace(body) != `{"cart":"3 items","user":"ann"}` {
						t.Fatalf("after a refused value the session holds %s", body)
					}
					srv.noErr()
					if log := srv.logs.String(); !strings.Contains(log, "session value refused") || !strings.Contains(log, "bad") {
						t.Fatalf("the refusal was not logged: %s", log)
					}
				})
			}
			// 100 levels is the limit, and is read back whole.
			srv := newServer(t, session.Options{Store: kind.open(t)}, routes{
				"/deep": setRoute("deep", nested(100)),
				"/": func(w http.ResponseWriter, r *http.Request) {
					var v any
					if err := session.FromContext(r.Context()).Decode("deep", &v); err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
					}
				},
			})
			srv.get("/deep")
			if res, body := srv.get("/"); res.StatusCode != http.StatusOK {
				t.Fatalf("a value 100 levels deep does not read back: %d %s", res.StatusCode, body)
			}
		})
	}
}

// TestMaxSizeCountsStoredBytes: MaxSize is the exact size of the session as
// stored, escapes included: a value name of 900 '<' characters is stored
// as 5,400 bytes of \u003c and does not pass a 1,000-byte limit, and a
// session of exactly MaxSize bytes does.
func TestMaxSizeCountsStoredBytes(t *testing.T) {
	for _, kind := range everyStore {
		t.Run(kind.name, func(t *testing.T) {
			// {"<<<...":1} is 2 + 900*6 + 2 + 1 + 1 bytes.
			name := strings.Repeat("<", 900)
			exact := 2 + 900*6 + 2 + 1 + 1
			for _, tc := range []struct {
				max  int
				want int
			}{{1000, http.StatusInternalServerError}, {exact - 1, http.StatusInternalServerError}, {exact, http.StatusOK}} {
				srv := newServer(t, session.Options{Store: kind.open(t), MaxSize: tc.max}, routes{"/": setRoute(name, 1)})
				if res, _ := srv.get("/"); res.StatusCode != tc.want {
					t.Fatalf("MaxSize %d, a session stored in %d bytes: status %d, want %d", tc.max, exact, res.StatusCode, tc.want)
				}
				if tc.want != http.StatusOK {
					if err := srv.err(); !errors.Is(err, session.ErrTooLarge) {
						t.Fatalf("error %v, want ErrTooLarge", err)
					}
				}
			}
		})
	}
}

// TestFullMemoryStoreLetsVisitorsLogIn: at MaxSessions, a new visitor is
// turned away (503, ErrFull) but an existing one can still log in, which
// regenerates the id: the store moves the record instead of holding two.
func TestFullMemoryStoreLetsVisitorsLogIn(t *testing.T) {
	st := newMemoryWith(t, session.MemoryOptions{MaxSessions: 2})
	srv := newServer(t, session.Options{Store: st}, routes{
		"/visit": setRoute("cart", 1),
		"/login": loginRoute,
		"/":      whoRoute,
	})
	first := srv.issue("/visit")
	srv.get("/visit") // the second and last session the store takes
	if res, _ := srv.send("/visit"); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third visitor got %d, want 503", res.StatusCode)
	}
	if err := srv.err(); !errors.Is(err, session.ErrFull) {
		t.Fatalf("error %v, want ErrFull", err)
	}
	res, _ := srv.sendID("/login", first)
	c := cookieIn(res, cookieName)
	if res.StatusCode != http.StatusOK || c == nil || c.Value == first {
		t.Fatalf("login at the cap: %d, cookie %v", res.StatusCode, c)
	}
	if _, who := srv.sendID("/", c.Value); who != "ann" {
		t.Fatalf("after logging in at the cap the session says %q", who)
	}
	if _, who := srv.sendID("/", first); who != "" {
		t.Fatalf("the id from before the login still works: %q", who)
	}
	if n := st.Stats().Sessions; n != 2 {
		t.Fatalf("the store holds %d sessions after the login, want 2", n)
	}
}

// TestMemoryStoreByteBudget: MaxBytes caps what sessions take, whatever
// their number: with room for about two sessions of 100 KB, the third is
// refused (503, ErrFull) and so is an existing session's growth past the
// budget, while the sessions already held keep working; Stats reports the
// bytes per session.
func TestMemoryStoreByteBudget(t *testing.T) {
	st := newMemoryWith(t, session.MemoryOptions{MaxBytes: 250 << 10})
	blob := strings.Repeat("x", 100<<10)
	srv := newServer(t, session.Options{Store: st, MaxSize: 1 << 20}, routes{
		"/big":  setRoute("blob", blob),
		"/more": setRoute("more", blob),
		"/":     showRoute,
	})
	a, b := srv.issue("/big"), srv.issue("/big")
	if res, _ := srv.send("/big"); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third 100 KB session got %d, want 503", res.StatusCode)
	}
	if err := srv.err(); !errors.Is(err, session.ErrFull) {
		t.Fatalf("error %v, want ErrFull", err)
	}
	if res, _ := srv.sendID("/more", a); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("growing a session past the budget got %d, want 503", res.StatusCode)
	}
	if err := srv.err(); !errors.Is(err, session.ErrFull) {
		t.Fatalf("error %v, want ErrFull", err)
	}
	for _, id := range []string{a, b} {
		if res, body := srv.sendID("/", id); res.StatusCode != http.StatusOK || !strings.Contains(body, `"blob"`) || strings.Contains(body, `"more"`) {
			t.Fatalf("a session held before the budget ran out: %d, %.40s", res.StatusCode, body)
		}
	}
	stats := st.Stats()
	if stats.Sessions != 2 || stats.BytesPerSession < 100<<10 || stats.BytesPerSession > 110<<10 {
		t.Fatalf("Stats = %+v, want 2 sessions of about 100 KB", stats)
	}
}

// TestChangesAfterTheLastCommitAreReported: a goroutine that outlives its
// handler, and a handler that an http.TimeoutHandler inside the middleware
// gave up on, change a session nothing will save any more: Set says so with
// ErrSessionClosed, and the loss is logged.
func TestChangesAfterTheLastCommitAreReported(t *testing.T) {
	setLate := make(chan error, 1)
	late := func(s *session.Session) {
		setLate <- s.Set("late", true)
	}
	srv := newServer(t, session.Options{}, routes{
		"/goroutine": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("user", "ann")
			go func() {
				<-r.Context().Done() // the request is over
				time.Sleep(10 * time.Millisecond)
				late(s)
			}()
		},
		"/": showRoute,
	})
	srv.get("/goroutine")
	if err := within(t, setLate, 5*time.Second, "the late Set"); !errors.Is(err, session.ErrSessionClosed) {
		t.Fatalf("Set after the handler returned = %v, want ErrSessionClosed", err)
	}
	if _, body := srv.get("/"); strings.TrimSpace(body) != `{"user":"ann"}` {
		t.Fatalf("session %s", body)
	}
	if log := srv.logs.String(); !strings.Contains(log, "session change lost") {
		t.Fatalf("the lost change was not logged: %s", log)
	}

	// http.TimeoutHandler inside the middleware.
	released := make(chan struct{})
	m, err := session.New(session.Options{Logger: srv.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := m.Handler(http.TimeoutHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		<-r.Context().Done() // the TimeoutHandler gave up
		<-released           // and the middleware finished
		late(s)
	}), 20*time.Millisecond, "too slow"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	close(released)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("TimeoutHandler answered %d", rec.Code)
	}
	if err := within(t, setLate, 5*time.Second, "the Set after the timeout"); !errors.Is(err, session.ErrSessionClosed) {
		t.Fatalf("Set after TimeoutHandler gave up = %v, want ErrSessionClosed", err)
	}
}

// TestTimeoutOutsideMiddlewareLeavesNoOrphan: an http.TimeoutHandler around
// the middleware answers 503 without the handler's cookie; the new session
// its handler made is not stored, since nobody could ever present its id.
func TestTimeoutOutsideMiddlewareLeavesNoOrphan(t *testing.T) {
	for _, kind := range everyStore {
		t.Run(kind.name, func(t *testing.T) {
			st := kind.open(t)
			m, err := session.New(session.Options{Store: st, Logger: new(logBuffer).logger()})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			ids, finished := make(chan string, 1), make(chan struct{})
			inner := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := session.FromContext(r.Context())
				s.Set("user", "ann")
				ids <- s.ID()
				<-r.Context().Done()
				io.WriteString(w, "too late")
			}))
			h := http.TimeoutHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer close(finished) // the middleware's commit is done
				inner.ServeHTTP(w, r)
			}), 20*time.Millisecond, "timed out")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			within(t, finished, 5*time.Second, "the handler behind the TimeoutHandler")
			id := within(t, ids, time.Second, "the session id")
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Set-Cookie") != "" {
				t.Fatalf("TimeoutHandler answered %d with Set-Cookie %q", rec.Code, rec.Header().Get("Set-Cookie"))
			}
			key := hashedKey(id)
			if ks, ok := st.(session.KeyScheme); ok {
				key = ks.Key(id)
			}
			if _, err := st.Load(t.Context(), key); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("the timed-out request's session was stored: %v", err)
			}
		})
	}
}

// TestLockedInsideAnotherManager: a route wrapped with one Manager's Locked
// inside another Manager's Handler would look locked while the session its
// handler sees is not: every request answers 500 through the ErrorHandler,
// saying why, and the handler never runs. Alone, Locked is the whole
// middleware for its route, with the lock.
func TestLockedInsideAnotherManager(t *testing.T) {
	errs := make(chan error, 1)
	inner, err := session.New(session.Options{ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		errs <- err
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	ran := false
	locked := inner.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran = true
		session.FromContext(r.Context()).Add("n", 1)
	}))
	outer := newServer(t, session.Options{}, routes{"/": locked.ServeHTTP})
	res, body := outer.get("/")
	if res.StatusCode != http.StatusInternalServerError || ran {
		t.Fatalf("Locked inside another Manager's Handler: %d %q, handler ran: %v", res.StatusCode, body, ran)
	}
	if err := within(t, errs, 5*time.Second, "the ErrorHandler"); !strings.Contains(err.Error(), "another Manager") {
		t.Fatalf("error %v should say the Manager is another one", err)
	}

	alone := httptest.NewServer(locked)
	defer alone.Close()
	if res, err := http.Get(alone.URL); err != nil || res.StatusCode != http.StatusOK || !ran {
		t.Fatalf("Locked alone: %v %v, ran %v", res, err, ran)
	}
}

// TestMemoryStoreByteBudgetHoldsAtLogin: a login that regenerates the id
// moves the record in one step, and must not grow a store past MaxBytes
// either: it answers 503 (ErrFull) and the session it would have replaced
// is still there.
func TestMemoryStoreByteBudgetHoldsAtLogin(t *testing.T) {
	st := newMemoryWith(t, session.MemoryOptions{MaxBytes: 150 << 10})
	blob := strings.Repeat("x", 100<<10)
	srv := newServer(t, session.Options{Store: st, MaxSize: 1 << 20}, routes{
		"/big": setRoute("blob", blob),
		"/login": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Regenerate()
			s.Set("more", blob)
		},
		"/": showRoute,
	})
	id := srv.issue("/big")
	if res, _ := srv.sendID("/login", id); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a login growing the store past MaxBytes got %d, want 503", res.StatusCode)
	}
	if err := srv.err(); !errors.Is(err, session.ErrFull) {
		t.Fatalf("error %v, want ErrFull", err)
	}
	if res, body := srv.sendID("/", id); res.StatusCode != http.StatusOK || !strings.Contains(body, `"blob"`) || strings.Contains(body, `"more"`) {
		t.Fatalf("the session before the refused login: %d %.40s", res.StatusCode, body)
	}
}
