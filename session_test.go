package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// countingStore passes every call to a real store and counts them, so tests
// can prove which requests cost a store call.
type countingStore struct {
	session.Store
	loads, creates, updates, touches, deletes atomic.Int64
}

func (c *countingStore) Load(ctx context.Context, key string) (*session.Record, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, key)
}
func (c *countingStore) Create(ctx context.Context, key string, rec *session.Record) error {
	c.creates.Add(1)
	return c.Store.Create(ctx, key, rec)
}
func (c *countingStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	c.updates.Add(1)
	return c.Store.Update(ctx, key, ch)
}
func (c *countingStore) Touch(ctx context.Context, key string, exp time.Time) error {
	c.touches.Add(1)
	return c.Store.Touch(ctx, key, exp)
}
func (c *countingStore) Delete(ctx context.Context, key string) error {
	c.deletes.Add(1)
	return c.Store.Delete(ctx, key)
}
func (c *countingStore) DeleteOwner(ctx context.Context, owner, except string) (int, error) {
	return deleteOwner(ctx, c.Store, owner, except)
}
func (c *countingStore) calls() int64 {
	return c.loads.Load() + c.creates.Load() + c.updates.Load() + c.touches.Load() + c.deletes.Load()
}
func (c *countingStore) writes() int64 {
	return c.creates.Load() + c.updates.Load() + c.touches.Load() + c.deletes.Load()
}

// deleteOwner passes DeleteOwner on to st: a test wrapper keeps the
// optional OwnerStore of the store it wraps, so that SetOwner works
// through it.
func deleteOwner(ctx context.Context, st session.Store, owner, except string) (int, error) {
	o, ok := st.(session.OwnerStore)
	if !ok {
		return 0, fmt.Errorf("test store: %T is not a session.OwnerStore: %w", st, errors.ErrUnsupported)
	}
	return o.DeleteOwner(ctx, owner, except)
}

// failingStore fails every call while down is set.
type failingStore struct {
	session.Store
	down atomic.Bool
}

var errDown = errors.New("store down")

func (f *failingStore) Load(ctx context.Context, key string) (*session.Record, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Load(ctx, key)
}
func (f *failingStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Update(ctx, key, ch)
}
func (f *failingStore) Create(ctx context.Context, key string, rec *session.Record) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.Create(ctx, key, rec)
}

func newMemory(t *testing.T) *session.MemoryStore {
	t.Helper()
	st := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { st.Close() })
	return st
}

// app is a test server with routes that drive the session, and a browser
// (a client with a cookie jar) to talk to it.
type app struct {
	t      *testing.T
	srv    *httptest.Server
	client *http.Client
	errs   chan error
}

func newApp(t *testing.T, opts session.Options, routes map[string]http.HandlerFunc) *app {
	t.Helper()
	a := &app{t: t, errs: make(chan error, 100)}
	if opts.ErrorHandler == nil {
		opts.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			a.errs <- err
			if !errors.Is(err, session.ErrResponseStarted) {
				http.Error(w, "session error", http.StatusInternalServerError)
			}
		}
	}
	m, err := session.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	mux := http.NewServeMux()
	for p, h := range routes {
		mux.Handle(p, h)
	}
	a.srv = httptest.NewServer(m.Handler(mux))
	t.Cleanup(a.srv.Close)
	a.client = newBrowser(t)
	return a
}

func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get requests path with the browser and returns the response and its body.
func (a *app) get(path string) (*http.Response, string) {
	a.t.Helper()
	return fetch(a.t, a.client, a.srv.URL+path)
}

func fetch(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// sessionCookie returns the browser's session cookie value, or "".
func (a *app) sessionCookie(name string) string {
	u, _ := url.Parse(a.srv.URL)
	for _, c := range a.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// raw sends one request with exactly the given Cookie header lines.
func (a *app) raw(path string, cookies ...string) (*http.Response, string) {
	a.t.Helper()
	return secDo(a.t, "GET", a.srv.URL+path, nil, nil, cookies...)
}

func setRoute(key string, value any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set(key, value)
		io.WriteString(w, "ok")
	}
}

func showRoute(w http.ResponseWriter, r *http.Request) {
	json.NewEncoder(w).Encode(session.FromContext(r.Context()))
}

func TestLazySessionNoCookieNoRow(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	a := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{
		"/": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			if s == nil || !s.IsNew() || s.Len() != 0 || s.Get("x") != nil {
				t.Errorf("want an empty new session, got %v", s)
			}
			io.WriteString(w, "hello")
		},
	})
	res, body := a.get("/")
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

func TestCookieDefaults(t *testing.T) {
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

func TestRoundTripTypes(t *testing.T) {
	type profile struct {
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
	}
	when := time.Date(2026, 11, 26, 1, 2, 3, 456789000, time.UTC)
	a := newApp(t, session.Options{}, map[string]http.HandlerFunc{
		"/set": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("int", 42)
			s.Set("int64", int64(1)<<60)
			s.Set("float", 2.5)
			s.Set("bool", true)
			s.Set("str", "héllo \"world\" <b>")
			s.Set("plain", "k3j2")
			s.Set("time", when)
			s.Set("profile", profile{Name: "ann", Roles: []string{"admin"}})
			s.Set("gone", "x")
			s.Set("gone", nil)
		},
		"/get": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			if s.IsNew() {
				t.Error("session not found on the second request")
			}
			var p profile
			if err := s.Decode("profile", &p); err != nil || p.Name != "ann" || p.Roles[0] != "admin" {
				t.Errorf("Decode: %v %+v", err, p)
			}
			checks := []struct {
				name string
				got  any
				want any
			}{
				{"GetInt", s.GetInt("int"), 42},
				{"GetInt64", s.GetInt64("int64"), int64(1) << 60},
				{"GetFloat64", s.GetFloat64("float"), 2.5},
				{"GetFloat64 of int", s.GetFloat64("int"), 42.0},
				{"GetBool", s.GetBool("bool"), true},
				{"GetString", s.GetString("str"), "héllo \"world\" <b>"},
				{"GetString plain", s.GetString("plain"), "k3j2"},
				{"GetTime", s.GetTime("time").Equal(when), true},
				{"Get number", s.Get("int"), 42.0},
				{"GetInt of string", s.GetInt("str"), 0},
				{"GetString of int", s.GetString("int"), ""},
				{"Has gone", s.Has("gone"), false},
				{"Has int", s.Has("int"), true},
				{"Len", s.Len(), 8},
				{"Keys", strings.Join(s.Keys(), ","), "bool,float,int,int64,plain,profile,str,time"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
			if err := s.Decode("gone", &p); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("Decode of a missing key: %v, want ErrNotFound", err)
			}
		},
	})
	a.get("/set")
	a.get("/get")
}

func TestReadOnlyRequestWritesNothing(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	a := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{
		"/set": setRoute("n", 1),
		"/read": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, session.FromContext(r.Context()).GetString("n"))
		},
	})
	a.get("/set")
	before := st.writes()
	for range 3 {
		res, _ := a.get("/read")
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

func TestMalformedCookiesCostNoStoreCall(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	a := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{
		"/": func(w http.ResponseWriter, r *http.Request) {
			if !session.FromContext(r.Context()).IsNew() {
				t.Error("a malformed cookie found a session")
			}
		},
	})
	valid := strings.Repeat("A", 43)
	cases := map[string][]string{
		"short":           {"SESSION_ID=abc"},
		"long":            {"SESSION_ID=" + strings.Repeat("A", 44)},
		"huge":            {"SESSION_ID=" + strings.Repeat("A", 8000)},
		"bad alphabet":    {"SESSION_ID=" + strings.Repeat("A", 42) + "+"},
		"quoted":          {`SESSION_ID="` + strings.Repeat("A", 41) + `"`},
		"empty":           {"SESSION_ID="},
		"duplicate":       {"SESSION_ID=" + valid + "; SESSION_ID=" + valid},
		"two headers dup": {"SESSION_ID=" + valid, "SESSION_ID=" + valid},
		"500 duplicates":  {strings.Repeat("SESSION_ID="+valid+"; ", 500)},
		"other cookie":    {"OTHER=" + valid},
	}
	for name, hdrs := range cases {
		res, _ := a.raw("/", hdrs...)
		if res.StatusCode != 200 {
			t.Errorf("%s: status %d", name, res.StatusCode)
		}
	}
	if n := st.calls(); n != 0 {
		t.Fatalf("%d store calls for malformed cookies, want 0", n)
	}
	// A well-formed but unknown id costs exactly one read, and is not adopted.
	res, _ := a.raw("/", "x=1", "SESSION_ID="+valid)
	if res.StatusCode != 200 || st.loads.Load() != 1 {
		t.Fatalf("status %d, %d loads for a well-formed unknown id", res.StatusCode, st.loads.Load())
	}
}

func TestUnknownIDNeverAdopted(t *testing.T) {
	a := newApp(t, session.Options{}, map[string]http.HandlerFunc{"/set": setRoute("user", "mallory")})
	planted := strings.Repeat("P", 43)
	res, _ := a.raw("/set", "SESSION_ID="+planted)
	sc := res.Header.Get("Set-Cookie")
	if sc == "" || strings.Contains(sc, planted) {
		t.Fatalf("Set-Cookie %q: want a fresh id, not the planted one", sc)
	}
}

func TestIdleTimeoutEnforced(t *testing.T) {
	a := newApp(t, session.Options{IdleTimeout: 150 * time.Millisecond}, map[string]http.HandlerFunc{
		"/set": setRoute("user", "ann"),
		"/":    showRoute,
	})
	a.get("/set")
	if _, body := a.get("/"); !strings.Contains(body, "ann") {
		t.Fatalf("fresh session lost: %s", body)
	}
	time.Sleep(250 * time.Millisecond)
	if _, body := a.get("/"); strings.TrimSpace(body) != "{}" {
		t.Fatalf("idle session still served: %s", body)
	}
}

func TestActivityKeepsSessionAlive(t *testing.T) {
	a := newApp(t, session.Options{IdleTimeout: 300 * time.Millisecond}, map[string]http.HandlerFunc{
		"/set": setRoute("user", "ann"),
		"/":    showRoute,
	})
	a.get("/set")
	for range 8 { // 8 × 100 ms: well past the idle timeout, never idle for long
		time.Sleep(100 * time.Millisecond)
		if _, body := a.get("/"); !strings.Contains(body, "ann") {
			t.Fatalf("active session expired: %s", body)
		}
	}
}

func TestLifetimeIsAbsolute(t *testing.T) {
	a := newApp(t, session.Options{IdleTimeout: 300 * time.Millisecond, Lifetime: 300 * time.Millisecond}, map[string]http.HandlerFunc{
		"/set": setRoute("user", "ann"),
		"/":    showRoute,
	})
	a.get("/set")
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline.Add(-50 * time.Millisecond)) {
		if _, body := a.get("/"); !strings.Contains(body, "ann") {
			t.Fatalf("session ended before its lifetime: %s", body)
		}
		time.Sleep(40 * time.Millisecond)
	}
	time.Sleep(time.Until(deadline) + 50*time.Millisecond)
	if _, body := a.get("/"); strings.TrimSpace(body) != "{}" {
		t.Fatalf("session outlived its absolute lifetime: %s", body)
	}
}

// expiredStore returns records as stored, even past their expiry, as a
// store whose cleanup lags might; the middleware must not trust it.
type expiredStore struct{ session.Store }

func (e expiredStore) Load(ctx context.Context, key string) (*session.Record, error) {
	rec, err := e.Store.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	old := *rec
	old.Expires = time.Now().Add(-time.Second)
	return &old, nil
}

func TestExpiryCheckedByMiddlewareToo(t *testing.T) {
	a := newApp(t, session.Options{Store: expiredStore{newMemory(t)}}, map[string]http.HandlerFunc{
		"/set": setRoute("user", "ann"),
		"/":    showRoute,
	})
	a.get("/set")
	if _, body := a.get("/"); strings.TrimSpace(body) != "{}" {
		t.Fatalf("expired record served: %s", body)
	}
}

func TestCommitBeforeFirstByte(t *testing.T) {
	release := make(chan struct{})
	a := newApp(t, session.Options{}, map[string]http.HandlerFunc{
		"/login": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("user", "ann")
			http.Redirect(w, r, "/home", http.StatusSeeOther)
			http.NewResponseController(w).Flush()
			<-release // the handler is still running when the client follows the redirect
		},
		"/home": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, session.FromContext(r.Context()).GetString("user"))
		},
	})
	defer close(release)
	res, err := a.client.Get(a.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", res.StatusCode)
	}
	if _, body := a.get("/home"); body != "ann" {
		t.Fatalf("after the redirect: %q, want the user logged in", body)
	}
	res.Body.Close()
}

func TestChangeAfterFirstByteIsSaved(t *testing.T) {
	a := newApp(t, session.Options{}, map[string]http.HandlerFunc{
		"/set": setRoute("a", 1),
		"/late": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "streaming")
			session.FromContext(r.Context()).Set("late", 2)
		},
		"/new-late": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "streaming")
			session.FromContext(r.Context()).Set("x", 1)
		},
		"/": showRoute,
	})
	a.get("/set")
	a.get("/late")
	if _, body := a.get("/"); !strings.Contains(body, `"late":2`) {
		t.Fatalf("late change lost: %s", body)
	}
	// A brand-new session created after the headers went out cannot get
	// its cookie: the ErrorHandler hears of it.
	fresh := newBrowser(t)
	fetch(t, fresh, a.srv.URL+"/new-late")
	select {
	case err := <-a.errs:
		if !errors.Is(err, session.ErrResponseStarted) {
			t.Fatalf("error %v, want ErrResponseStarted", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ErrorHandler not called for a session created after the first byte")
	}
}

func TestStreamingFlushAndHijack(t *testing.T) {
	next := make(chan struct{})
	a := newApp(t, session.Options{}, map[string]http.HandlerFunc{
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
	res, err := a.client.Get(a.srv.URL + "/stream")
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
	res2, body := fetch(t, newBrowser(t), a.srv.URL+"/hijack")
	if body != "hi" || res2.StatusCode != 200 {
		t.Fatalf("hijacked response %d %q", res2.StatusCode, body)
	}
}

func TestStoreFailureFailsClosedAndKeepsCookie(t *testing.T) {
	st := &failingStore{Store: newMemory(t)}
	a := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{
		"/set": setRoute("user", "ann"),
		"/inc": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("n", s.GetInt("n")+1)
			w.Header().Set("Location", "/somewhere")
			w.WriteHeader(http.StatusFound)
		},
		"/": showRoute,
	})
	a.get("/set")
	cookie := a.sessionCookie("SESSION_ID")
	st.down.Store(true)
	for _, path := range []string{"/", "/inc"} {
		res, _ := a.get(path)
		if res.StatusCode != 500 {
			t.Fatalf("%s with the store down: status %d, want 500", path, res.StatusCode)
		}
		if sc := res.Header.Get("Set-Cookie"); sc != "" {
			t.Fatalf("%s with the store down touched the cookie: %q", path, sc)
		}
		if loc := res.Header.Get("Location"); loc != "" {
			t.Fatalf("the failed response kept the handler's Location %q", loc)
		}
		if err := <-a.errs; !errors.Is(err, errDown) {
			t.Fatalf("ErrorHandler got %v", err)
		}
	}
	st.down.Store(false)
	if a.sessionCookie("SESSION_ID") != cookie {
		t.Fatal("cookie changed during the outage")
	}
	if _, body := a.get("/"); !strings.Contains(body, `"user":"ann"`) || strings.Contains(body, `"n"`) {
		t.Fatalf("after the outage: %s", body)
	}
}

func TestDestroyRegenerateAndEmpty(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	a := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{
		"/set": setRoute("user", "ann"),
		"/regen": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Regenerate()
		},
		"/logout": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Destroy()
		},
		"/empty": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Delete("user")
		},
		"/": showRoute,
	})
	a.get("/set")
	before := a.sessionCookie("SESSION_ID")
	res, _ := a.get("/regen")
	after := a.sessionCookie("SESSION_ID")
	if after == "" || after == before || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("regenerate: id %q -> %q", before, after)
	}
	if _, body := a.get("/"); !strings.Contains(body, "ann") {
		t.Fatalf("regenerate lost the data: %s", body)
	}
	old := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{"/": showRoute})
	if _, body := old.raw("/", "SESSION_ID="+before); strings.TrimSpace(body) != "{}" {
		t.Fatalf("the old id still works after Regenerate: %s", body)
	}
	res, _ = a.get("/logout")
	if sc := res.Header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("logout Set-Cookie %q, want an expired cookie", sc)
	}
	if _, body := old.raw("/", "SESSION_ID="+after); strings.TrimSpace(body) != "{}" {
		t.Fatalf("the id still works after Destroy: %s", body)
	}
	a.get("/set")
	res, _ = a.get("/empty")
	if sc := res.Header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("emptied session: Set-Cookie %q, want an expired cookie", sc)
	}
	if n := st.Store.(*session.MemoryStore).Len(); n != 0 {
		t.Fatalf("%d records left after logout and emptying", n)
	}
}

func TestPopAndMarshalJSON(t *testing.T) {
	a := newApp(t, session.Options{}, map[string]http.HandlerFunc{
		"/flash": setRoute("flash", "saved!"),
		"/pop": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("keep", 1)
			v, _ := s.Pop("flash").(string)
			io.WriteString(w, v)
		},
		"/": showRoute,
	})
	a.get("/flash")
	if _, body := a.get("/pop"); body != "saved!" {
		t.Fatalf("Pop = %q", body)
	}
	if _, body := a.get("/pop"); body != "" {
		t.Fatalf("second Pop = %q, want nothing", body)
	}
	if _, body := a.get("/"); strings.TrimSpace(body) != `{"keep":1}` {
		t.Fatalf("session JSON %s", body)
	}
}

func TestMaxSize(t *testing.T) {
	a := newApp(t, session.Options{MaxSize: 1024}, map[string]http.HandlerFunc{
		"/big": setRoute("blob", strings.Repeat("x", 2000)),
	})
	res, _ := a.get("/big")
	if res.StatusCode != 500 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if err := <-a.errs; !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("error %v, want ErrTooLarge", err)
	}
}

func TestInvalidOptions(t *testing.T) {
	cases := map[string]session.Options{
		"__Host- without Secure": {CookieName: "__Host-sid"},
		"__Host- with Domain":    {CookieName: "__Host-sid", Cookie: session.CookieOptions{Secure: true, Domain: "example.com"}},
		"__Host- with Path":      {CookieName: "__Host-sid", Cookie: session.CookieOptions{Secure: true, Path: "/app"}},
		"__Secure- not Secure":   {CookieName: "__Secure-sid"},
		"SameSite None":          {Cookie: session.CookieOptions{SameSite: http.SameSiteNoneMode}},
		"Partitioned":            {Cookie: session.CookieOptions{Partitioned: true}},
		"bad name":               {CookieName: "a b"},
		"negative idle":          {IdleTimeout: -1},
		"negative StoreTimeout":  {StoreTimeout: -time.Second},
		"negative CommitTimeout": {CommitTimeout: -time.Second},
		"negative MaxAge":        {Cookie: session.CookieOptions{MaxAge: -time.Second}},
		"short key":              {SigningKeys: [][]byte{[]byte("short")}},
		"lock without locker":    {Store: expiredStore{session.NewMemoryStore(session.MemoryOptions{})}, Lock: true},
	}
	for name, opts := range cases {
		m, err := session.New(opts)
		if !errors.Is(err, session.ErrInvalidOptions) {
			t.Errorf("%s: err %v, want ErrInvalidOptions", name, err)
		}
		if m != nil {
			t.Errorf("%s: got a manager", name)
		}
	}
	ok := session.Options{CookieName: "__Host-sid", Cookie: session.CookieOptions{Secure: true}}
	if _, err := session.New(ok); err != nil {
		t.Fatalf("valid __Host- options refused: %v", err)
	}
	// Middleware cannot return the error: it fails closed on every request.
	h := session.Middleware(session.Options{CookieName: "__Host-sid"})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("handler ran with invalid options")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 {
		t.Fatalf("status %d with invalid options", rec.Code)
	}
}

func TestPersistentCookie(t *testing.T) {
	a := newApp(t, session.Options{Cookie: session.CookieOptions{MaxAge: time.Hour}}, map[string]http.HandlerFunc{
		"/set": setRoute("a", 1),
	})
	res, _ := a.get("/set")
	if sc := res.Header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=3600") {
		t.Fatalf("Set-Cookie %q, want Max-Age=3600", sc)
	}
}

func TestConcurrentDifferentKeysAllPersist(t *testing.T) {
	a := newApp(t, session.Options{}, map[string]http.HandlerFunc{
		"/set": setRoute("start", 1),
		"/key": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set(r.URL.Query().Get("k"), true)
		},
		"/": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.Join(session.FromContext(r.Context()).Keys(), ","))
		},
	})
	a.get("/set")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := a.client.Get(a.srv.URL + "/key?k=k" + string(rune('A'+i/26)) + string(rune('a'+i%26)))
			if err == nil {
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	_, body := a.get("/")
	if n := len(strings.Split(body, ",")); n != 51 {
		t.Fatalf("%d keys after 50 concurrent requests each adding one (want 51): %s", n, body)
	}
}

func TestPanickingHandlerCommitsNothing(t *testing.T) {
	a := newApp(t, session.Options{}, map[string]http.HandlerFunc{
		"/set": setRoute("n", 1),
		"/panic": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("n", 99)
			panic(http.ErrAbortHandler)
		},
		"/": showRoute,
	})
	a.get("/set")
	if _, err := a.client.Get(a.srv.URL + "/panic"); err == nil {
		t.Fatal("aborted handler answered")
	}
	if _, body := a.get("/"); strings.TrimSpace(body) != `{"n":1}` {
		t.Fatalf("a panicking handler's change was saved: %s", body)
	}
}

func TestFromContextOutsideMiddleware(t *testing.T) {
	if s := session.FromContext(context.Background()); s != nil {
		t.Fatalf("FromContext outside the middleware = %v", s)
	}
}

// TestIdleRefreshThrottled: an unchanged session's expiry is refreshed (one
// Touch, no Update) only once a tenth of the idle timeout has passed, not on
// every request.
func TestIdleRefreshThrottled(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	a := newApp(t, session.Options{Store: st, IdleTimeout: 2 * time.Second}, map[string]http.HandlerFunc{
		"/set": setRoute("user", "ann"),
		"/":    showRoute,
	})
	a.get("/set")
	for range 5 {
		a.get("/")
	}
	if n := st.touches.Load(); n != 0 {
		t.Fatalf("%d refreshes within a tenth of the idle timeout, want 0", n)
	}
	time.Sleep(250 * time.Millisecond) // past 2s/10
	a.get("/")
	a.get("/")
	if n, u := st.touches.Load(), st.updates.Load(); n != 1 || u != 0 {
		t.Fatalf("%d refreshes and %d updates after a tenth of the idle timeout, want 1 and 0", n, u)
	}
}
