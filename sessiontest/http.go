package sessiontest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// Backend opens stores onto one shared backing storage (one table, one
// in-memory store): each call of the returned function is what one app
// server would open. RunHTTP calls it once per subtest.
type Backend func(t *testing.T) (open func() session.Store)

// RunHTTP checks, through real HTTP, that the middleware on top of the
// stores that backend opens loses nothing under concurrency: 128 concurrent
// changes to different keys of one session all persist, 128 concurrent
// [session.Session.Add] calls all count, with no error and no lock, a logout
// or a Regenerate is never undone by a slower request, locking (when the
// store implements session.Locker) makes read-modify-write exact and is
// released on every path, and two app servers sharing the backend share
// sessions.
func RunHTTP(t *testing.T, backend Backend) {
	t.Run("DifferentKeysAllPersist", func(t *testing.T) { testHTTPDifferentKeys(t, backend(t)) })
	t.Run("AddCountsEveryIncrement", func(t *testing.T) { testHTTPAdd(t, backend(t)) })
	t.Run("IncrementsWithoutLock", func(t *testing.T) { testIncrementsWithoutLock(t, backend(t)) })
	t.Run("SlowWriteAfterLogout", func(t *testing.T) { testSlowWriteAfterEnd(t, backend(t), "/logout") })
	t.Run("SlowWriteAfterRegenerate", func(t *testing.T) { testSlowWriteAfterEnd(t, backend(t), "/regen") })
	t.Run("TwoServersShareSessions", func(t *testing.T) { testTwoServers(t, backend(t), false) })
	t.Run("Locker", func(t *testing.T) {
		if _, ok := backend(t)().(session.Locker); !ok {
			t.Skip("the store does not implement session.Locker")
		}
		t.Run("LockedIncrementsExact", func(t *testing.T) { testLockedIncrements(t, backend(t), false) })
		t.Run("LockedRouteIncrementsExact", func(t *testing.T) { testLockedIncrements(t, backend(t), true) })
		t.Run("TwoServersLockedExact", func(t *testing.T) { testTwoServers(t, backend(t), true) })
		t.Run("LockReleasedAfterPanic", func(t *testing.T) { testHTTPLockReleased(t, backend(t), "/panic") })
		t.Run("LockReleasedAfterClientLeft", func(t *testing.T) { testHTTPLockReleased(t, backend(t), "/hang") })
		t.Run("LockWaitTimesOut", func(t *testing.T) { testHTTPLockTimeout(t, backend(t)) })
	})
}

// server is one app server: the middleware over one store, with routes
// that exercise it, and a record of what its ErrorHandler heard.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	errs []error
}

// serverOptions tune newServer.
type serverOptions struct {
	lock        bool // Options.Lock
	lockTimeout time.Duration
	slow        chan struct{} // /slow waits on it after loading the session
	// entered, when set, hears from /slow and /hang once they run: the
	// session is loaded (and locked, with a lock).
	entered chan struct{}
}

func newServer(t *testing.T, st session.Store, so serverOptions) *server {
	t.Helper()
	srv := &server{}
	m, err := session.New(session.Options{
		Store:       st,
		Lock:        so.lock,
		LockTimeout: so.lockTimeout,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			srv.mu.Lock()
			srv.errs = append(srv.errs, err)
			srv.mu.Unlock()
			code := http.StatusInternalServerError
			if errors.Is(err, session.ErrLockTimeout) {
				code = http.StatusServiceUnavailable
			}
			if !errors.Is(err, session.ErrResponseStarted) {
				http.Error(w, err.Error(), code)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	inc := func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n := s.GetInt("count") + 1
		s.Set("count", n)
		if k := r.URL.Query().Get("key"); k != "" {
			s.Set(k, true)
		}
		fmt.Fprint(w, n)
	}
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Set("count", 0)
		s.Set("user", "ann")
	})
	mux.HandleFunc("/inc", inc)
	mux.HandleFunc("/add", func(w http.ResponseWriter, r *http.Request) {
		n, err := session.FromContext(r.Context()).Add("count", 1)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.Handle("/locked-inc", m.Locked(http.HandlerFunc(inc)))
	mux.HandleFunc("/key", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set(r.URL.Query().Get("k"), true)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		so.enter()
		select {
		case <-so.slow:
		case <-r.Context().Done():
			// The test failed before releasing /slow, and its client
			// gave up: end, so that closing the server does not hang.
			return
		}
		s.Set("slow", true)
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Destroy()
	})
	mux.HandleFunc("/regen", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Regenerate()
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("p", 1)
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		so.enter()
		<-r.Context().Done()
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(session.FromContext(r.Context()))
	})
	srv.Server = httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { m.Close() })
	return srv
}

func (so serverOptions) enter() {
	if so.entered != nil {
		so.entered <- struct{}{}
	}
}

func (s *server) errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

// browser is a client with a cookie jar shared by every server of a test,
// as one browser talking to several servers behind a load balancer.
type browser struct {
	t   *testing.T
	jar http.CookieJar
	c   *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, jar: jar, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// get fetches srv.URL+path and returns the status and body.
func (b *browser) get(srv *server, path string) (int, string) {
	res, err := b.c.Get(srv.URL + path)
	if err != nil {
		b.t.Errorf("GET %s: %v", path, err)
		return 0, ""
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(body))
}

// must is get that fails the test on a status other than 200.
func (b *browser) must(srv *server, path string) string {
	b.t.Helper()
	code, body := b.get(srv, path)
	if code != http.StatusOK {
		b.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return body
}

// cookie returns the session cookie the browser holds for srv's host.
func (b *browser) cookie(srv *server) string {
	u, _ := url.Parse(srv.URL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == "SESSION_ID" {
			return c.Value
		}
	}
	return ""
}

// values decodes the session JSON that the route "/" answers.
func (b *browser) values(srv *server) map[string]any {
	b.t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(b.must(srv, "/")), &v); err != nil {
		b.t.Fatal(err)
	}
	return v
}

// parallel runs n requests of one browser at once and returns their bodies.
func (b *browser) parallel(n int, srv func(i int) *server, path func(i int) string) []string {
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := b.get(srv(i), path(i))
			if code != http.StatusOK {
				b.t.Errorf("GET %s: %d %s", path(i), code, body)
			}
			bodies[i] = body
		}()
	}
	wg.Wait()
	return bodies
}

const (
	concurrency = 50
	// hot is how many requests of one session write at once in the tests
	// that must lose nothing without a lock.
	hot = 128
)

func testHTTPDifferentKeys(t *testing.T, open func() session.Store) {
	srv := newServer(t, open(), serverOptions{})
	b := newBrowser(t)
	b.must(srv, "/set")
	b.parallel(hot, func(int) *server { return srv }, func(i int) string { return "/key?k=k" + strconv.Itoa(i) })
	if errs := srv.errors(); len(errs) > 0 {
		t.Fatalf("%d of %d writers failed: %v", len(errs), hot, errs[0])
	}
	v := b.values(srv)
	for i := range hot {
		if v["k"+strconv.Itoa(i)] != true {
			t.Errorf("key k%d lost; session has %d keys", i, len(v))
		}
	}
	if v["user"] != "ann" {
		t.Errorf("the untouched key user was lost: %v", v)
	}
}

// testHTTPAdd: Session.Add is applied by the store to the freshest value,
// so concurrent increments of one counter are exact without a lock.
func testHTTPAdd(t *testing.T, open func() session.Store) {
	srv := newServer(t, open(), serverOptions{})
	b := newBrowser(t)
	b.must(srv, "/set")
	b.parallel(hot, func(int) *server { return srv }, func(int) string { return "/add" })
	if errs := srv.errors(); len(errs) > 0 {
		t.Fatalf("%d of %d increments failed: %v", len(errs), hot, errs[0])
	}
	if v := b.values(srv); v["count"] != float64(hot) || v["user"] != "ann" {
		t.Fatalf("after %d concurrent Add(1) from 0, the session holds %v", hot, v)
	}
}

// testIncrementsWithoutLock: read-modify-write of one key is not exact
// without a lock (the later commit wins), but it never goes back past the
// starting value, and every request's change to its own key survives.
func testIncrementsWithoutLock(t *testing.T, open func() session.Store) {
	srv := newServer(t, open(), serverOptions{})
	b := newBrowser(t)
	b.must(srv, "/set")
	b.parallel(concurrency, func(int) *server { return srv }, func(i int) string { return "/inc?key=k" + strconv.Itoa(i) })
	v := b.values(srv)
	count, _ := v["count"].(float64)
	if count < 1 || count > concurrency {
		t.Errorf("count %v after %d increments from 0", count, concurrency)
	}
	for i := range concurrency {
		if v["k"+strconv.Itoa(i)] != true {
			t.Errorf("key k%d lost", i)
		}
	}
	t.Logf("without a lock, %d concurrent increments gave %v (the later commit wins)", concurrency, count)
}

// testSlowWriteAfterEnd: a request that loaded the session before a logout
// (or a Regenerate) and writes after it must not bring the old id back.
func testSlowWriteAfterEnd(t *testing.T, open func() session.Store, end string) {
	st := open()
	slow, entered := make(chan struct{}), make(chan struct{})
	srv := newServer(t, st, serverOptions{slow: slow, entered: entered})
	b := newBrowser(t)
	b.must(srv, "/set")
	old := b.cookie(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.get(srv, "/slow")
	}()
	<-entered // /slow has loaded the session
	b.must(srv, end)
	close(slow)
	<-done
	stranger := newBrowser(t)
	u, _ := url.Parse(srv.URL)
	stranger.jar.SetCookies(u, []*http.Cookie{{Name: "SESSION_ID", Value: old, Path: "/"}})
	if v := stranger.values(srv); len(v) != 0 {
		t.Fatalf("after %s and a slower write, the old id finds %v", end, v)
	}
	if _, err := st.Load(context.Background(), storeKey(st, old)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("after %s and a slower write, the store still holds the old key: %v", end, err)
	}
	if end == "/regen" {
		if v := b.values(srv); v["user"] != "ann" {
			t.Fatalf("the regenerated session lost its data: %v", v)
		}
	}
}

// storeKey is the store key the middleware uses for an id: the store's own
// when it implements session.KeyScheme, else the SHA-256 of the id.
func storeKey(st session.Store, id string) string {
	if ks, ok := st.(session.KeyScheme); ok {
		return ks.Key(id)
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func testLockedIncrements(t *testing.T, open func() session.Store, route bool) {
	path := "/inc"
	srv := newServer(t, open(), serverOptions{lock: !route, lockTimeout: 30 * time.Second})
	if route {
		path = "/locked-inc"
	}
	b := newBrowser(t)
	b.must(srv, "/set")
	b.parallel(concurrency, func(int) *server { return srv }, func(int) string { return path })
	if v := b.values(srv); v["count"] != float64(concurrency) {
		t.Fatalf("count %v after %d locked increments, want exactly %d", v["count"], concurrency, concurrency)
	}
}

// testTwoServers: two app servers, each with its own store onto the same
// backend, share sessions; with locking, increments spread across both are
// exact.
func testTwoServers(t *testing.T, open func() session.Store, lock bool) {
	so := serverOptions{lock: lock, lockTimeout: 30 * time.Second}
	a, c := newServer(t, open(), so), newServer(t, open(), so)
	b := newBrowser(t)
	u, _ := url.Parse(c.URL)
	b.must(a, "/set")
	// httptest servers differ only by port, and cookies ignore ports.
	if b.cookie(a) == "" || len(b.jar.Cookies(u)) == 0 {
		t.Fatal("no session cookie")
	}
	if got := b.must(c, "/inc"); got != "1" {
		t.Fatalf("/inc on the second server answered %q, want 1", got)
	}
	servers := []*server{a, c}
	if !lock {
		// Different keys set through both servers at once are all kept.
		b.parallel(concurrency, func(i int) *server { return servers[i%2] }, func(i int) string { return "/key?k=k" + strconv.Itoa(i) })
		v := b.values(c)
		for i := range concurrency {
			if v["k"+strconv.Itoa(i)] != true {
				t.Errorf("key k%d, set through server %d, lost; session has %d keys", i, i%2, len(v))
			}
		}
		return
	}
	b.parallel(concurrency, func(i int) *server { return servers[i%2] }, func(int) string { return "/inc" })
	if v := b.values(a); v["count"] != float64(concurrency+1) {
		t.Fatalf("count %v after %d locked increments over two servers, want %d", v["count"], concurrency, concurrency+1)
	}
}

// testHTTPLockReleased: a lock holder that panics, or whose client goes away,
// frees the lock for the next request at once (the next request would
// otherwise wait out the lock timeout and get 503).
func testHTTPLockReleased(t *testing.T, open func() session.Store, path string) {
	entered := make(chan struct{}, 1)
	srv := newServer(t, open(), serverOptions{lock: true, lockTimeout: 3 * time.Second, entered: entered})
	b := newBrowser(t)
	b.must(srv, "/set")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
	go func() {
		select {
		case <-entered: // /hang holds the lock: its client leaves
		case <-ctx.Done(): // /panic has already failed
		}
		cancel()
	}()
	if res, err := b.c.Do(req); err == nil {
		res.Body.Close()
	}
	if got := b.must(srv, "/inc"); got != "1" {
		t.Fatalf("after %s, /inc answered %q, want 1 (and no change from the failed request)", path, got)
	}
	for _, err := range srv.errors() {
		if errors.Is(err, session.ErrLockTimeout) {
			t.Fatalf("the lock was not released after %s: %v", path, err)
		}
	}
}

// testHTTPLockTimeout: a request that cannot get the lock in time is answered
// through the ErrorHandler with ErrLockTimeout.
func testHTTPLockTimeout(t *testing.T, open func() session.Store) {
	entered := make(chan struct{}, 1)
	srv := newServer(t, open(), serverOptions{lock: true, lockTimeout: 1200 * time.Millisecond, entered: entered})
	b := newBrowser(t)
	b.must(srv, "/set")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	holding := make(chan struct{})
	go func() {
		defer close(holding)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/hang", nil)
		if res, err := b.c.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	<-entered // /hang holds the lock
	code, _ := b.get(srv, "/inc")
	cancel()
	<-holding
	if code != http.StatusServiceUnavailable {
		t.Fatalf("status %d while another request holds the lock past LockTimeout, want 503", code)
	}
	var timedOut bool
	for _, err := range srv.errors() {
		timedOut = timedOut || errors.Is(err, session.ErrLockTimeout)
	}
	if !timedOut {
		t.Fatalf("ErrorHandler did not get ErrLockTimeout: %v", srv.errors())
	}
}
