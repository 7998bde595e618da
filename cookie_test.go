package session_test

// The session cookie: how the middleware writes it, with its defaults and
// every setting (R9) under a configurable name (R2), with the caching
// headers of the responses that set or read it (R14); and how it reads
// what a client sends: hostile Cookie headers get a normal answer at a
// bounded cost (R10), and the id is read from the cookie only (R11).
// FuzzCookieHeader (fuzz_test.go) explores the parser further.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// R9: the cookie of a new session is HttpOnly, SameSite=Lax, Path=/, with
// no Domain and no expiry, Secure exactly when the request came over TLS,
// and the response is not cached.
func TestCookieDefaults(t *testing.T) {
	t.Parallel()
	for _, tls := range []bool{false, true} {
		m, err := session.New(session.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		h := m.Handler(setRoute("a", 1))
		var srv *httptest.Server
		if tls {
			srv = httptest.NewTLSServer(h)
		} else {
			srv = httptest.NewServer(h)
		}
		defer srv.Close()
		res, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		sc := res.Header.Get("Set-Cookie")
		for _, want := range []string{"SESSION_ID=", "Path=/", "HttpOnly", "SameSite=Lax"} {
			if !strings.Contains(sc, want) {
				t.Errorf("tls=%v: Set-Cookie %q lacks %q", tls, sc, want)
			}
		}
		for _, bad := range []string{"Domain=", "Max-Age", "Expires"} {
			if strings.Contains(sc, bad) {
				t.Errorf("tls=%v: Set-Cookie %q has %q", tls, sc, bad)
			}
		}
		if got := strings.Contains(sc, "Secure"); got != tls {
			t.Errorf("tls=%v: Secure=%v in %q", tls, got, sc)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q with Set-Cookie, want no-store", cc)
		}
		id := strings.TrimPrefix(strings.SplitN(sc, ";", 2)[0], "SESSION_ID=")
		if len(id) != 43 {
			t.Errorf("id %q has %d characters, want 43 (256 bits, base64url)", id, len(id))
		}
	}
}

// R9: each cookie setting reaches the Set-Cookie header, and the cookie that
// ends the session repeats the attributes so that the browser deletes the
// right one.
func TestCookieAttributesAsConfigured(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		opts    session.Options
		want    []string // in the cookie that starts the session and the one that ends it
		wantNot []string
		login   []string // in the cookie that starts the session only
	}{
		{"__Host- prefix", session.Options{CookieName: "__Host-sid", Cookie: session.CookieOptions{Secure: true}},
			[]string{"__Host-sid=", "Path=/", "Secure", "HttpOnly", "SameSite=Lax"}, []string{"Domain="}, nil},
		{"__Secure- with Domain and Path", session.Options{CookieName: "__Secure-sid", Cookie: session.CookieOptions{Secure: true, Domain: "example.test", Path: "/app"}},
			[]string{"__Secure-sid=", "Domain=example.test", "Path=/app", "Secure"}, nil, nil},
		{"SameSite Strict", session.Options{Cookie: session.CookieOptions{SameSite: http.SameSiteStrictMode}},
			[]string{"SameSite=Strict", "HttpOnly"}, []string{"Secure"}, nil},
		{"SameSite None", session.Options{Cookie: session.CookieOptions{SameSite: http.SameSiteNoneMode, Secure: true}},
			[]string{"SameSite=None", "Secure"}, nil, nil},
		{"SameSite left out", session.Options{Cookie: session.CookieOptions{SameSite: http.SameSiteDefaultMode}},
			[]string{"HttpOnly"}, []string{"SameSite"}, nil},
		{"Partitioned", session.Options{Cookie: session.CookieOptions{Partitioned: true, Secure: true, SameSite: http.SameSiteNoneMode}},
			[]string{"Partitioned", "Secure", "SameSite=None"}, nil, nil},
		{"HttpOnly disabled", session.Options{Cookie: session.CookieOptions{DisableHTTPOnly: true}},
			[]string{"SameSite=Lax"}, []string{"HttpOnly"}, nil},
		{"persistent", session.Options{Cookie: session.CookieOptions{MaxAge: time.Hour}},
			[]string{"HttpOnly"}, nil, []string{"Max-Age=3600"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, c.opts, routes{"/login": loginRoute, "/logout": logoutRoute})
			name := c.opts.CookieName
			if name == "" {
				name = cookieName
			}
			res, _ := srv.send("/login")
			set := res.Header.Get("Set-Cookie")
			res, _ = srv.send("/logout", name+"="+cookieIn(res, name).Value)
			expire := res.Header.Get("Set-Cookie")
			if !strings.Contains(expire, "Max-Age=0") {
				t.Fatalf("logout Set-Cookie %q does not expire the cookie", expire)
			}
			for _, w := range c.login {
				if !strings.Contains(set, w) {
					t.Errorf("Set-Cookie %q lacks %q", set, w)
				}
			}
			for _, sc := range []string{set, expire} {
				for _, w := range c.want {
					if !strings.Contains(sc, w) {
						t.Errorf("Set-Cookie %q lacks %q", sc, w)
					}
				}
				for _, w := range c.wantNot {
					if strings.Contains(sc, w) {
						t.Errorf("Set-Cookie %q has %q", sc, w)
					}
				}
			}
		})
	}
}

// R2: the cookie name is configurable, and a cookie under any other name is
// not read at all.
func TestCookieNameConfigurable(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	rs := routes{"/login": loginRoute, "/": whoRoute}
	dflt := newServer(t, session.Options{Store: st}, rs)
	named := newServer(t, session.Options{Store: st, CookieName: "app_sid"}, rs)

	res, _ := named.send("/login")
	if cookieIn(res, cookieName) != nil || cookieIn(res, "app_sid") == nil {
		t.Fatalf("Set-Cookie %q: want only app_sid", res.Header.Values("Set-Cookie"))
	}
	id := dflt.issue("/login")
	before := st.calls()
	if _, body := named.sendID("/", id); body != "" {
		t.Fatalf("a server using app_sid read SESSION_ID: %q", body)
	}
	if n := st.calls() - before; n != 0 {
		t.Fatalf("a cookie under another name cost %d store calls", n)
	}
	// The same store and key scheme: under the configured name the id works.
	if _, body := named.send("/", "app_sid="+id); body != "ann" {
		t.Fatalf("app_sid=<live id> found %q", body)
	}
}

// R14: every response that sets the cookie forbids caching, whatever the
// handler asked for, on every path that sets it.
func TestEverySetCookieIsNoStore(t *testing.T) {
	t.Parallel()
	clk := newClock()
	cacheable := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=600")
			h(w, r)
		}
	}
	srv := newServerAt(t, clk, session.Options{IdleTimeout: 30 * time.Minute, Cookie: session.CookieOptions{MaxAge: time.Hour}}, routes{
		"/login":  cacheable(loginRoute),
		"/regen":  cacheable(regenerateRoute),
		"/empty":  cacheable(func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).Clear() }),
		"/logout": cacheable(logoutRoute),
		"/":       cacheable(whoRoute),
	})
	steps := []struct {
		name, path string
		wait       time.Duration
	}{
		{"new session", "/login", 0},
		{"regenerated id", "/regen", 0},
		{"refreshed persistent cookie", "/", 4 * time.Minute}, // a refresh is due after a tenth of IdleTimeout
		{"emptied session", "/empty", 0},
		{"login again", "/login", 0},
		{"logout", "/logout", 0},
	}
	for _, s := range steps {
		clk.advance(s.wait)
		res, _ := srv.get(s.path)
		if res.Header.Get("Set-Cookie") == "" {
			t.Fatalf("%s: no Set-Cookie", s.name)
		}
		if cc := res.Header.Values("Cache-Control"); len(cc) != 1 || cc[0] != "no-store" {
			t.Errorf("%s: Cache-Control %q with Set-Cookie, want no-store", s.name, cc)
		}
	}
}

// R14: a response to a request that carried the cookie varies by it, also
// when the cookie was refused, the store failed, or the handler set Vary
// itself; a shared cache must never serve it to another visitor. A request
// without the cookie, and read-only requests, are covered by
// TestLazySessionNoCookieNoRow and TestReadOnlyRequestWritesNothing.
func TestVaryCookieWheneverTheCookieCame(t *testing.T) {
	t.Parallel()
	st := &faultStore{Store: newMemory(t)}
	srv := newServer(t, session.Options{Store: st}, routes{
		"/login": loginRoute,
		"/":      whoRoute,
		"/own-vary": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Accept-Encoding")
			whoRoute(w, r)
		},
		"/add-vary": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "Origin")
			whoRoute(w, r)
		},
	})
	live := srv.issue("/login")
	varies := func(res *http.Response) bool {
		for _, v := range res.Header.Values("Vary") {
			for _, f := range strings.Split(v, ",") {
				if strings.EqualFold(strings.TrimSpace(f), "Cookie") {
					return true
				}
			}
		}
		return false
	}
	cases := []struct {
		name, path string
		cookies    []string
		storeDown  bool
	}{
		{"malformed cookie", "/", []string{"SESSION_ID=nope"}, false},
		{"unknown id", "/", []string{"SESSION_ID=" + strings.Repeat("U", 43)}, false},
		{"duplicate cookies", "/", []string{"SESSION_ID=" + live, "SESSION_ID=" + live}, false},
		{"store failure", "/", []string{"SESSION_ID=" + live}, true},
		{"handler adds Vary", "/add-vary", []string{"SESSION_ID=" + live}, false},
		{"handler sets Vary", "/own-vary", []string{"SESSION_ID=" + live}, false},
	}
	for _, c := range cases {
		if c.storeDown {
			st.set("load", errTestDown)
		}
		res, _ := srv.send(c.path, c.cookies...)
		st.set("load", nil)
		if !varies(res) {
			t.Errorf("%s: Vary %q, want Cookie among them", c.name, res.Header.Values("Vary"))
		}
	}
}

// hostileServer serves / with a handler that answers whether it saw a
// fresh session and its user, then sets a value, so every answer that works
// issues a new cookie. Its header limit admits a 1 MB Cookie header. It
// returns the store's call counts and a live session's id.
func hostileServer(t *testing.T) (srv *httptest.Server, st *countingStore, live string) {
	t.Helper()
	st = &countingStore{Store: newMemory(t)}
	app := newServer(t, session.Options{Store: st}, nil)
	srv = httptest.NewUnstartedServer(app.m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		seen := fmt.Sprint(s.IsNew(), s.GetString("user"))
		s.Set("visit", true)
		io.WriteString(w, seen)
	})))
	srv.Config.MaxHeaderBytes = 4 << 20
	srv.Start()
	t.Cleanup(srv.Close)
	res, _ := get(t, srv.URL)
	c := cookieIn(res, cookieName)
	if c == nil {
		t.Fatal("no session cookie")
	}
	return srv, st, c.Value
}

// rawGet sends header lines byte for byte over TCP, for what an
// http.Client would refuse to send, and reads the answer.
func rawGet(t *testing.T, srvURL string, cookieLines ...string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var req strings.Builder
	req.WriteString("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n")
	for _, l := range cookieLines {
		req.WriteString("Cookie: " + l + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

// R10: hostile Cookie headers, even ones that carry a live id, get a normal
// answer: 200, a fresh session with a new cookie, and not a single store
// read.
func TestHostileCookieHeadersGetFreshSession(t *testing.T) {
	t.Parallel()
	srv, st, live := hostileServer(t)
	other := live[:42] + "Q"
	if other == live {
		other = live[:42] + "R"
	}
	cases := []struct {
		name  string
		lines []string
	}{
		{"8 KB value", []string{"SESSION_ID=" + strings.Repeat("A", 8<<10)}},
		{"8 KB value starting with a live id", []string{"SESSION_ID=" + live + strings.Repeat("A", 8<<10)}},
		{"500 copies of a live id", []string{strings.Repeat("SESSION_ID="+live+"; ", 500)}},
		{"two Cookie headers, same live id", []string{"SESSION_ID=" + live, "SESSION_ID=" + live}},
		{"two Cookie headers, two ids", []string{"a=1; SESSION_ID=" + live, "SESSION_ID=" + other}},
		{"1 MB of other cookies", []string{strings.Repeat("a=b; ", 200_000)}},
		{"1 MB value", []string{"SESSION_ID=" + strings.Repeat("A", 1<<20)}},
		{"live id after 1 MB", []string{strings.Repeat("x", 1<<20) + "; SESSION_ID=" + live}},
		{"quoted live id", []string{`SESSION_ID="` + live + `"`}},
		{"non-UTF-8 value", []string{"SESSION_ID=\xff\xfe" + live[2:]}},
		{"non-UTF-8 around the name", []string{"\xc3\x28SESSION_ID=" + live}},
		{"separators only", []string{";;; ; =;==;SESSION_ID;SESSION_ID=;"}},
		{"empty line", []string{""}},
	}
	before := st.loads.Load()
	for _, c := range cases {
		res, body := rawGet(t, srv.URL, c.lines...)
		if res.StatusCode != 200 || body != "true" {
			t.Errorf("%s: status %d body %q, want 200 and a fresh session", c.name, res.StatusCode, body)
			continue
		}
		if ck := cookieIn(res, cookieName); ck == nil || ck.Value == live || len(ck.Value) != 43 {
			t.Errorf("%s: Set-Cookie %q, want a fresh id", c.name, res.Header.Values("Set-Cookie"))
		}
	}
	if n := st.loads.Load() - before; n != 0 {
		t.Fatalf("%d store reads for malformed or ambiguous cookies, want 0", n)
	}
	// The live session itself is untouched by all of it.
	if _, body := rawGet(t, srv.URL, "SESSION_ID="+live); body != "false" {
		t.Fatalf("the live session after the hostile requests: %q", body)
	}
}

// R10: the cost of reading the Cookie header does not grow with its size:
// no allocation depends on it, and nothing past the scan budget is read
// (a live cookie placed after 1 MB is not seen, in the table above). Not
// parallel: allocation counts are process-wide.
func TestCookieScanCostBounded(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	m, err := session.New(session.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	allocs := map[int]float64{}
	for _, size := range []int{1 << 10, 1 << 20, 4 << 20} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Cookie", "SESSION_ID=x; "+strings.Repeat("a=b; ", size/5))
		req.Header.Add("Cookie", strings.Repeat("SESSION_ID=y;", size/13))
		w := &discard{h: http.Header{}}
		allocs[size] = testing.AllocsPerRun(20, func() {
			clear(w.h)
			h.ServeHTTP(w, req)
		})
	}
	if allocs[1<<20] != allocs[1<<10] || allocs[4<<20] != allocs[1<<10] {
		t.Fatalf("allocations per request grow with the Cookie header: %v", allocs)
	}
	if n := st.calls(); n != 0 {
		t.Fatalf("%d store calls", n)
	}
}

// R10, R3: a Cookie header too long to scan whole cannot be trusted: a
// second copy of the cookie past the scan budget makes the first one as
// ambiguous as two copies side by side, and a value cut by the budget is
// not the value the client sent.
func TestOversizedCookieHeaderNotTrusted(t *testing.T) {
	t.Parallel()
	srv, st, live := hostileServer(t)
	planted := strings.Repeat("P", 43)
	pad := "pad=" + strings.Repeat("x", 20<<10)
	cut := "p=" + strings.Repeat("y", 16<<10-len("p=; SESSION_ID=")-len(live)) + "; SESSION_ID="
	cases := []struct {
		name  string
		lines []string
	}{
		{"second copy past the budget, same header", []string{"SESSION_ID=" + live + "; " + pad + "; SESSION_ID=" + planted}},
		{"second copy past the budget, next header", []string{"SESSION_ID=" + live + "; " + pad, "SESSION_ID=" + planted}},
		{"value cut at the budget", []string{cut + live + "-and-more"}},
	}
	for _, c := range cases {
		before := st.loads.Load()
		res, body := rawGet(t, srv.URL, c.lines...)
		if res.StatusCode != 200 || body != "true" {
			t.Errorf("%s: body %q, want a fresh session: the header was not scanned whole", c.name, body)
		}
		if n := st.loads.Load() - before; n != 0 {
			t.Errorf("%s: %d store reads, want 0", c.name, n)
		}
	}
}

// R11: the id is read from the cookie only: not from the query string, a
// form field, or any other header.
func TestIDOnlyTravelsInCookie(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	srv := newServer(t, session.Options{Store: st}, routes{"/login": loginRoute, "/": func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		whoRoute(w, r)
	}})
	id := srv.issue("/login")
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    http.Header
	}{
		{"query string", "GET", "/?SESSION_ID=" + id, "", nil},
		{"lower-case query", "GET", "/?session_id=" + id + "&sid=" + id, "", nil},
		{"form field", "POST", "/", "SESSION_ID=" + id, form},
		{"X-Session-Id header", "GET", "/", "", http.Header{"X-Session-Id": {id}}},
		{"Authorization header", "GET", "/", "", http.Header{"Authorization": {"Bearer " + id}}},
		{"SESSION_ID header", "GET", "/", "", http.Header{"Session_id": {id}, "SESSION_ID": {id}}},
		{"Cookie2 header", "GET", "/", "", http.Header{"Cookie2": {"SESSION_ID=" + id}}},
		{"path parameter", "GET", "/;SESSION_ID=" + id, "", nil},
	}
	before := st.calls()
	for _, c := range cases {
		res, body := srv.do(c.method, c.path, strings.NewReader(c.body), c.hdr)
		if body != "" || res.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s: found session %q", c.name, body)
		}
	}
	if n := st.calls() - before; n != 0 {
		t.Errorf("%d store calls for ids outside the cookie", n)
	}
	if _, body := srv.sendID("/", id); body != "ann" {
		t.Fatalf("the cookie itself no longer works: %q", body)
	}
}
