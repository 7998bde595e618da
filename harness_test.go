package session_test

// The harness every test of the package shares: an app server built from
// Options and routes on a real httptest server, browsers with cookie jars,
// raw requests that carry exactly the Cookie lines a test gives, a clock
// that tests move by hand, and the routes most tests serve. The test stores
// (counting, failing, blocking, lying) are in teststore_test.go.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// cookieName is the session cookie's default name.
const cookieName = "SESSION_ID"

// routes maps ServeMux patterns to handlers.
type routes map[string]http.HandlerFunc

// server is one app server under test: the middleware built from Options
// around routes, served over real HTTP, with a browser to visit it.
type server struct {
	t       *testing.T
	m       *session.Manager
	URL     string
	errs    chan error      // every error the ErrorHandler was given
	logs    *logBuffer      // everything the Manager logged
	browser *http.Client    // a browser with its own cookie jar
	tr      *http.Transport // for requests without a jar (send, do)
}

// newServer starts an app server. Unless opts says otherwise, it logs into
// s.logs and answers errors as the library's default ErrorHandler does,
// after recording them in s.errs.
func newServer(t *testing.T, opts session.Options, rs routes) *server {
	t.Helper()
	return startServer(t, nil, opts, rs)
}

// newServerAt is newServer on clk: the Manager, and the memory store it
// uses when opts names no store, read the time from clk.
func newServerAt(t *testing.T, clk *clock, opts session.Options, rs routes) *server {
	t.Helper()
	if opts.Store == nil {
		opts.Store = clk.memoryStore(t, session.MemoryOptions{})
	}
	return startServer(t, clk, opts, rs)
}

func startServer(t *testing.T, clk *clock, opts session.Options, rs routes) *server {
	t.Helper()
	s := &server{t: t, errs: make(chan error, 1000), logs: new(logBuffer)}
	if opts.Logger == nil {
		opts.Logger = s.logs.logger()
	}
	var defaultError func(http.ResponseWriter, *http.Request, error)
	if opts.ErrorHandler == nil {
		opts.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			select {
			case s.errs <- err:
			default:
				t.Errorf("more than %d errors: %v", cap(s.errs), err)
			}
			defaultError(w, r, err)
		}
	}
	m, err := session.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	defaultError = session.DefaultErrorHandler(m)
	if clk != nil {
		session.SetClock(m, clk.now)
	}
	mux := http.NewServeMux()
	for p, h := range rs {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	s.m, s.URL, s.browser, s.tr = m, srv.URL, newBrowser(t), newTransport(t)
	return s
}

// get visits path with the server's browser.
func (s *server) get(path string) (*http.Response, string) {
	s.t.Helper()
	return fetch(s.t, s.browser, s.URL+path)
}

// send requests path with exactly the given Cookie header lines, as a
// client that keeps no jar (and ignores cookie expiry) sends them.
func (s *server) send(path string, cookies ...string) (*http.Response, string) {
	s.t.Helper()
	return s.do("GET", path, nil, nil, cookies...)
}

// do sends one request without a cookie jar: its Cookie header lines are
// exactly the ones given.
func (s *server) do(method, path string, body io.Reader, hdr http.Header, cookies ...string) (*http.Response, string) {
	s.t.Helper()
	return roundTrip(s.t, s.tr, method, s.URL+path, body, hdr, cookies...)
}

// sendID requests path with the session cookie set to value.
func (s *server) sendID(path, value string) (*http.Response, string) {
	s.t.Helper()
	return s.send(path, cookieName+"="+value)
}

// issue requests path without a cookie and returns the session cookie the
// answer sets: a new session of a client that keeps no jar.
func (s *server) issue(path string) string {
	s.t.Helper()
	res, _ := s.send(path)
	c := cookieIn(res, cookieName)
	if c == nil {
		s.t.Fatalf("GET %s set no session cookie: %q", path, res.Header.Values("Set-Cookie"))
	}
	return c.Value
}

// cookie returns the session cookie the server's browser holds, or "".
func (s *server) cookie() string { return jarCookie(s.browser, s.URL, cookieName) }

// err returns the next error the ErrorHandler was given, failing the test
// if none comes.
func (s *server) err() error {
	s.t.Helper()
	return within(s.t, s.errs, 5*time.Second, "the ErrorHandler")
}

// noErr fails the test if the ErrorHandler was given an error.
func (s *server) noErr() {
	s.t.Helper()
	select {
	case err := <-s.errs:
		s.t.Fatalf("ErrorHandler called: %v", err)
	default:
	}
}

// newBrowser is an HTTP client with a cookie jar that does not follow
// redirects.
func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Transport: newTransport(t), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// newTransport returns a transport of the test's own. Tests run in
// parallel must not share http.DefaultTransport: every httptest server's
// Close closes its idle connections, which breaks a request of another
// test that is just taking one.
func newTransport(t *testing.T) *http.Transport {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// fetch GETs u with c and returns the response and its body.
func fetch(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(u)
	return readAll(t, res, err)
}

// get sends one GET to u, on a connection of its own, with exactly the
// given Cookie header lines.
func get(t *testing.T, u string, cookies ...string) (*http.Response, string) {
	t.Helper()
	return roundTrip(t, &http.Transport{DisableKeepAlives: true}, "GET", u, nil, nil, cookies...)
}

func roundTrip(t *testing.T, tr http.RoundTripper, method, u string, body io.Reader, hdr http.Header, cookies ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	for _, c := range cookies {
		req.Header.Add("Cookie", c)
	}
	res, err := tr.RoundTrip(req)
	return readAll(t, res, err)
}

// readAll reads and closes the body of a response, failing the test on
// any error.
func readAll(t *testing.T, res *http.Response, err error) (*http.Response, string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// cookieIn returns the response's Set-Cookie for name, or nil.
func cookieIn(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// jarCookie returns the value browser b holds for name at srvURL, or "".
func jarCookie(b *http.Client, srvURL, name string) string {
	u, _ := url.Parse(srvURL)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// hashedKey is the store key the middleware derives from an id by default.
func hashedKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// signingKey returns a signing key of 32 bytes made of b.
func signingKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

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

// The routes most tests serve.

// setRoute sets key to value and answers "ok".
func setRoute(key string, value any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set(key, value)
		io.WriteString(w, "ok")
	}
}

// showRoute answers the session's values as a JSON object.
func showRoute(w http.ResponseWriter, r *http.Request) {
	json.NewEncoder(w).Encode(session.FromContext(r.Context()))
}

// whoRoute answers the session's "user".
func whoRoute(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, session.FromContext(r.Context()).GetString("user"))
}

// loginRoute logs in the user ?u= (default ann) as a login handler should:
// a new id, the user as the session's owner, the user in the session.
func loginRoute(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	u := r.URL.Query().Get("u")
	if u == "" {
		u = "ann"
	}
	s.Regenerate()
	s.SetOwner(u)
	s.Set("user", u)
}

func logoutRoute(w http.ResponseWriter, r *http.Request) {
	session.FromContext(r.Context()).Destroy()
}

func regenerateRoute(w http.ResponseWriter, r *http.Request) {
	session.FromContext(r.Context()).Regenerate()
}

// clock is a time source that moves only when a test says so. It starts
// at the real time, so that whatever still reads the real clock (a cookie
// jar, a cookie's Expires attribute) agrees with it until it is moved.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// memoryStore returns a memory store on c, closed when the test ends.
func (c *clock) memoryStore(t testing.TB, opts session.MemoryOptions) *session.MemoryStore {
	st := session.NewMemoryStoreClock(opts, c.now)
	t.Cleanup(func() { st.Close() })
	return st
}

// newMemory returns a memory store on the real clock, closed when the test
// ends.
func newMemory(t testing.TB) *session.MemoryStore {
	return newMemoryWith(t, session.MemoryOptions{})
}

func newMemoryWith(t testing.TB, opts session.MemoryOptions) *session.MemoryStore {
	st := session.NewMemoryStore(opts)
	t.Cleanup(func() { st.Close() })
	return st
}

// logBuffer collects log output from concurrent requests.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// discard is a ResponseWriter that keeps nothing and is reused across
// iterations, so that allocation counts and benchmarks measure the
// middleware, not the test.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// errTestDown is the error of a test store that is down.
var errTestDown = errors.New("test store down")
