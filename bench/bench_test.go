package bench

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/alexedwards/scs/v2"
	"github.com/gorilla/sessions"
	"github.com/seed013449c2/session"
)

// The contenders, in the order the benchmarks run them. bare is the same
// handler with no session middleware at all: the floor.
const (
	bare    = "bare"
	ours    = "session"
	scsLib  = "scs"
	gorilla = "gorilla"
)

func contenderNames() []string { return []string{bare, ours, scsLib, gorilla} }

// gorillaName is the name of gorilla's session, which is also its cookie's.
const gorillaName = "session"

// contender is one library's handlers for the shared scenarios. Each uses
// the library the way its README does: session.FromContext with GetInt and
// Set; scs's LoadAndSave with GetInt and Put; gorilla's CookieStore.Get,
// Values and Save.
type contender struct {
	name string
	// read answers with the session's int "count" (0 when there is none).
	read http.Handler
	// write adds one to "count" and answers with the new value. The count
	// wraps at 100 (see bodies), so that neither boxing it in an interface
	// (every library's setter takes an any) nor writing the body allocates:
	// the allocations counted are the middleware's.
	write http.Handler
}

// bodies holds the response bodies "0" to "99", made once per contender, so
// that a handler writes its answer without allocating.
type bodies [100][]byte

func newBodies() *bodies {
	var b bodies
	for i := range b {
		b[i] = []byte(strconv.Itoa(i))
	}
	return &b
}

func (b *bodies) write(w http.ResponseWriter, n int) {
	if n < 0 || n >= len(b) {
		http.Error(w, "count out of range: "+strconv.Itoa(n), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(b[n])
}

func newContender(tb testing.TB, name string) contender {
	tb.Helper()
	body := newBodies()
	switch name {
	case bare:
		return contender{
			name:  name,
			read:  http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { body.write(w, 0) }),
			write: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { body.write(w, 1) }),
		}
	case ours:
		m := newManager(tb, session.Options{})
		return contender{name: name, read: m.Handler(oursRead(body)), write: m.Handler(oursWrite(body))}
	case scsLib:
		return scsContender(newSCS(), body)
	case gorilla:
		store := sessions.NewCookieStore(randomKey(tb, 64))
		return contender{
			name: name,
			read: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sess, err := store.Get(r, gorillaName)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				n, _ := sess.Values["count"].(int)
				body.write(w, n)
			}),
			write: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sess, err := store.Get(r, gorillaName)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				n, _ := sess.Values["count"].(int)
				n = (n + 1) % 100
				sess.Values["count"] = n
				if err := sess.Save(r, w); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				body.write(w, n)
			}),
		}
	}
	tb.Fatalf("unknown contender %q", name)
	return contender{}
}

// scsContender gives scs's handlers, on whatever store sm has.
func scsContender(sm *scs.SessionManager, body *bodies) contender {
	return contender{
		name: scsLib,
		read: sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body.write(w, sm.GetInt(r.Context(), "count"))
		})),
		write: sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := (sm.GetInt(r.Context(), "count") + 1) % 100
			sm.Put(r.Context(), "count", n)
			body.write(w, n)
		})),
	}
}

func oursRead(body *bodies) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body.write(w, session.FromContext(r.Context()).GetInt("count"))
	})
}

func oursWrite(body *bodies) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n := (s.GetInt("count") + 1) % 100
		s.Set("count", n)
		body.write(w, n)
	})
}

// newSCS returns scs's manager with its default store, memstore.New().
// That store's cleanup goroutine is left running (it ticks once a minute):
// its StopCleanup reads, without synchronization, a field the goroutine
// sets when it starts, which the race detector reports when a test is
// short.
func newSCS() *scs.SessionManager { return scs.New() }

// newManager builds our middleware; with no store it makes (and at the end
// closes) its own memory store, as a zero Options does.
func newManager(tb testing.TB, opts session.Options) *session.Manager {
	tb.Helper()
	m, err := session.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	return m
}

func randomKey(tb testing.TB, n int) []byte {
	tb.Helper()
	k := make([]byte, n)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	return k
}

// sink is the cheap ResponseWriter every in-process benchmark reuses: its
// header map is cleared, not reallocated, between requests, so what is
// counted is the middleware's work and not the harness's.
type sink struct {
	h      http.Header
	status int
	body   []byte
}

func newSink() *sink { return &sink{h: make(http.Header)} }

func (w *sink) Header() http.Header { return w.h }

func (w *sink) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *sink) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}

// client sends one request again and again, from one goroutine. The request
// is built once; each round copies it into req, because gorilla/sessions
// replaces the request it is given (*r = *r.WithContext(...)) to keep its
// registry, which would otherwise serve later rounds from that cache.
type client struct {
	base, req *http.Request
	w         *sink
}

func newClient(path, cookie string) *client {
	base := httptest.NewRequest(http.MethodGet, "http://example.com"+path, nil)
	if cookie != "" {
		base.Header.Set("Cookie", cookie)
	}
	return &client{base: base, req: new(http.Request), w: newSink()}
}

func (c *client) do(h http.Handler) {
	clear(c.w.h)
	c.w.status, c.w.body = 0, c.w.body[:0]
	*c.req = *c.base
	h.ServeHTTP(c.w, c.req)
}

// expect sends the request once, outside the clock, and checks the answer,
// so that a benchmark never times an error path.
func (c *client) expect(tb testing.TB, h http.Handler, want string) {
	tb.Helper()
	c.do(h)
	if c.w.status != http.StatusOK || string(c.w.body) != want {
		tb.Fatalf("%s: got %d %q, want 200 %q", c.base.URL.Path, c.w.status, c.w.body, want)
	}
}

// newSession runs h (a write handler) once with no cookie, as a visitor's
// first request, and returns the Cookie header that brings the session
// back. bare has no session: its cookie is "".
func newSession(tb testing.TB, name string, h http.Handler, path string) string {
	tb.Helper()
	if name == bare {
		return ""
	}
	c := newClient(path, "")
	c.do(h)
	cookies := (&http.Response{Header: c.w.h}).Cookies()
	if c.w.status != http.StatusOK || len(cookies) != 1 {
		tb.Fatalf("%s: first request: got %d with %d cookies (%q), want 200 and one cookie", name, c.w.status, len(cookies), c.w.h.Values("Set-Cookie"))
	}
	return cookies[0].Name + "=" + cookies[0].Value
}

// unlessBare returns the answer expected from a session handler, or the
// bare handler's fixed one.
func unlessBare(name, session, bareAnswer string) string {
	if name == bare {
		return bareAnswer
	}
	return session
}

// runSerial times h answering c's request.
func runSerial(b *testing.B, h http.Handler, c *client) {
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.do(h)
	}
	b.StopTimer()
	if c.w.status != http.StatusOK {
		b.Fatalf("last answer %d %q", c.w.status, c.w.body)
	}
}

// runParallel times h with b.RunParallel, each goroutine sending its own
// request: clients[i] belongs to the i-th goroutine. The clients are made
// before the clock starts, one per goroutine RunParallel will start.
func runParallel(b *testing.B, h http.Handler, clients []*client) {
	var next atomic.Int64
	var failed atomic.Bool
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := clients[next.Add(1)-1]
		ran := false
		for pb.Next() {
			c.do(h)
			ran = true
		}
		if ran && c.w.status != http.StatusOK {
			failed.Store(true)
		}
	})
	b.StopTimer()
	if failed.Load() {
		b.Fatal("a goroutine's last answer was not 200")
	}
}

// goroutines is how many goroutines b.RunParallel starts with the default
// parallelism.
func goroutines() int { return runtime.GOMAXPROCS(0) }

// BenchmarkNoCookie: a first visit, no cookie. The handler reads "count"
// (absent) and writes a tiny body; nothing is stored, no cookie is set.
func BenchmarkNoCookie(b *testing.B) {
	for _, name := range contenderNames() {
		b.Run(name, func(b *testing.B) {
			ct := newContender(b, name)
			c := newClient("/", "")
			c.expect(b, ct.read, "0")
			if got := c.w.h.Values("Set-Cookie"); len(got) != 0 {
				b.Fatalf("no-cookie read set a cookie: %q", got)
			}
			runSerial(b, ct.read, c)
		})
	}
}

// BenchmarkReadOnly: a request with the cookie of an existing session; the
// handler reads the int "count" and writes it.
func BenchmarkReadOnly(b *testing.B) {
	for _, name := range contenderNames() {
		b.Run(name, func(b *testing.B) {
			ct := newContender(b, name)
			c := newClient("/", newSession(b, name, ct.write, "/"))
			c.expect(b, ct.read, unlessBare(name, "1", "0"))
			runSerial(b, ct.read, c)
		})
	}
}

// BenchmarkWrite: a request with the cookie of an existing session; the
// handler sets "count" to count+1 and writes it.
func BenchmarkWrite(b *testing.B) {
	for _, name := range contenderNames() {
		b.Run(name, func(b *testing.B) {
			ct := newContender(b, name)
			c := newClient("/", newSession(b, name, ct.write, "/"))
			c.expect(b, ct.write, unlessBare(name, "2", "1"))
			runSerial(b, ct.write, c)
		})
	}
}

// BenchmarkReadOnlyParallel is BenchmarkReadOnly from every goroutine of
// b.RunParallel, each with its own session.
func BenchmarkReadOnlyParallel(b *testing.B) {
	benchParallel(b, func(ct contender) http.Handler { return ct.read })
}

// BenchmarkWriteParallel is BenchmarkWrite from every goroutine of
// b.RunParallel, each with its own session.
func BenchmarkWriteParallel(b *testing.B) {
	benchParallel(b, func(ct contender) http.Handler { return ct.write })
}

func benchParallel(b *testing.B, handler func(contender) http.Handler) {
	for _, name := range contenderNames() {
		b.Run(name, func(b *testing.B) {
			ct := newContender(b, name)
			clients := make([]*client, goroutines())
			for i := range clients {
				clients[i] = newClient("/", newSession(b, name, ct.write, "/"))
			}
			runParallel(b, handler(ct), clients)
		})
	}
}

// BenchmarkHTTPNoCookie is BenchmarkNoCookie through a real HTTP server on
// loopback, with a keep-alive client: what a first visit costs end to end,
// client included, and how much of that the middleware is.
func BenchmarkHTTPNoCookie(b *testing.B) {
	benchHTTP(b, false)
}

// BenchmarkHTTPReadOnly is BenchmarkReadOnly through a real HTTP server on
// loopback, with a keep-alive client.
func BenchmarkHTTPReadOnly(b *testing.B) {
	benchHTTP(b, true)
}

func benchHTTP(b *testing.B, withSession bool) {
	for _, name := range contenderNames() {
		b.Run(name, func(b *testing.B) {
			ct := newContender(b, name)
			srv := httptest.NewServer(ct.read)
			defer srv.Close()
			hc := srv.Client()
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
			if err != nil {
				b.Fatal(err)
			}
			want := "0"
			if withSession {
				if cookie := newSession(b, name, ct.write, "/"); cookie != "" {
					req.Header.Set("Cookie", cookie)
					want = "1"
				}
			}
			// The first round trip opens the connection and checks the answer.
			if got := get(b, hc, req); got != want {
				b.Fatalf("got %q, want %q", got, want)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				get(b, hc, req)
			}
		})
	}
}

// get sends req and returns the body of a 200 answer.
func get(tb testing.TB, hc *http.Client, req *http.Request) string {
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("got %d %q (%v)", resp.StatusCode, body, err)
	}
	return string(body)
}
