package session_test

// Black-box tests of the security checklist (R1-R19 of SECURITY.md): real
// httptest servers, real cookies, and stores wrapped to see what they are
// asked. Tests that session_test.go or the sessiontest suites already run
// are not repeated here; SECURITY.md lists them next to these.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// secKeyStore records the key of every Create: what the store sees of an id.
type secKeyStore struct {
	session.Store
	mu   sync.Mutex
	keys []string
}

func (s *secKeyStore) Create(ctx context.Context, key string, rec *session.Record) error {
	s.mu.Lock()
	s.keys = append(s.keys, key)
	s.mu.Unlock()
	return s.Store.Create(ctx, key, rec)
}

func (s *secKeyStore) DeleteOwner(ctx context.Context, owner, except string) (int, error) {
	return deleteOwner(ctx, s.Store, owner, except)
}

func (s *secKeyStore) created() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys)
}

// secFaultStore fails chosen operations with a chosen error while it is set,
// and passes everything else to a real store.
type secFaultStore struct {
	session.Store
	mu   sync.Mutex
	fail map[string]error
}

func (f *secFaultStore) set(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]error{}
	}
	f.fail[op] = err
}

func (f *secFaultStore) err(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[op]
}

func (f *secFaultStore) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := f.err("load"); err != nil {
		return nil, err
	}
	return f.Store.Load(ctx, key)
}

func (f *secFaultStore) Create(ctx context.Context, key string, rec *session.Record) error {
	if err := f.err("create"); err != nil {
		return err
	}
	return f.Store.Create(ctx, key, rec)
}

func (f *secFaultStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	if err := f.err("update"); err != nil {
		return nil, err
	}
	return f.Store.Update(ctx, key, ch)
}

func (f *secFaultStore) Touch(ctx context.Context, key string, exp time.Time) error {
	if err := f.err("touch"); err != nil {
		return err
	}
	return f.Store.Touch(ctx, key, exp)
}

func (f *secFaultStore) Delete(ctx context.Context, key string) error {
	if err := f.err("delete"); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

func (f *secFaultStore) DeleteOwner(ctx context.Context, owner, except string) (int, error) {
	if err := f.err("deleteOwner"); err != nil {
		return 0, err
	}
	return deleteOwner(ctx, f.Store, owner, except)
}

// Lock passes the lock to the wrapped store, so that Options.Lock and
// Manager.Locked work through the wrapper.
func (f *secFaultStore) Lock(ctx context.Context, key string) (session.Lease, error) {
	return secLock(ctx, f, f.Store, key)
}

// secLock takes st's lock for wrapper, a test store around st: the lease's
// store is wrapper, so that what the wrapper does to each call goes on
// while the lock is held. That is only right for a store whose lease store
// is the store itself, as the memory store's is.
func secLock(ctx context.Context, wrapper, st session.Store, key string) (session.Lease, error) {
	l, ok := st.(session.Locker)
	if !ok {
		return nil, fmt.Errorf("test store: %T is not a session.Locker", st)
	}
	lease, err := l.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	if lease.Store() != st {
		lease.Unlock()
		return nil, fmt.Errorf("test store: %T's lease has a store of its own, which %T cannot wrap", st, wrapper)
	}
	return secLease{lease, wrapper}, nil
}

// secLease is a held lock whose store is a test wrapper.
type secLease struct {
	session.Lease
	store session.Store
}

func (l secLease) Store() session.Store { return l.store }

var errSecDown = errors.New("test store down")

// secLogBuffer collects log output from concurrent requests.
type secLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *secLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *secLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func secLogger(buf *secLogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// secManager builds a Manager with the library's own defaults for whatever
// opts leaves out, the ErrorHandler included; logs are discarded unless
// opts has a Logger.
func secManager(t *testing.T, opts session.Options) *session.Manager {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := session.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func secServer(t *testing.T, m *session.Manager, routes map[string]http.HandlerFunc) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for p, h := range routes {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	return srv
}

// secDo sends one request without a cookie jar: the Cookie header lines
// are exactly the ones given, as a client that ignores cookie expiry sends.
func secDo(t *testing.T, method, u string, body io.Reader, hdr http.Header, cookies ...string) (*http.Response, string) {
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
	res, err := http.DefaultTransport.RoundTrip(req)
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

// secCookie returns the response's Set-Cookie for name, or nil.
func secCookie(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// secJarCookie returns the value a browser holds for name at srvURL, or "".
func secJarCookie(c *http.Client, srvURL, name string) string {
	u, _ := url.Parse(srvURL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// secHashKey is the store key the middleware derives from an id by default.
func secHashKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// secKey returns a signing key of 32 bytes made of b.
func secKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func secWho(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, session.FromContext(r.Context()).GetString("user"))
}

func secLogin(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	u := r.URL.Query().Get("u")
	if u == "" {
		u = "ann"
	}
	s.Regenerate()
	s.SetOwner(u)
	s.Set("user", u)
}

func secLogout(w http.ResponseWriter, r *http.Request) {
	session.FromContext(r.Context()).Destroy()
}

// R1, R2: ids are 256 random bits from a CSPRNG, base64url, never repeated,
// with nothing predictable in them, not even a prefix.
func TestIDsAre256RandomBits(t *testing.T) {
	st := &secKeyStore{Store: newMemory(t)}
	m := secManager(t, session.Options{Store: st})
	srv := secServer(t, m, map[string]http.HandlerFunc{"/": func(w http.ResponseWriter, r *http.Request) {
		// Every session holds the same data at nearly the same instant: an id
		// derived from data or time would repeat or share a prefix.
		session.FromContext(r.Context()).Set("user", "ann")
	}})
	const n = 1000
	ids := make(map[string]bool, n)
	prefixes := make(map[string]bool, n)
	var ones int
	var everSet, everClear [32]byte
	for range n {
		res, _ := secDo(t, "GET", srv.URL, nil, nil)
		c := secCookie(res, "SESSION_ID")
		if c == nil {
			t.Fatal("no session cookie")
		}
		id := c.Value
		raw, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(id) != 43 || len(raw) != 32 || base64.RawURLEncoding.EncodeToString(raw) != id {
			t.Fatalf("id %q is not 32 bytes of unpadded base64url (%v)", id, err)
		}
		if ids[id] {
			t.Fatalf("id %q issued twice", id)
		}
		ids[id] = true
		if prefixes[id[:8]] {
			t.Fatalf("two ids share the 48-bit prefix %q", id[:8])
		}
		prefixes[id[:8]] = true
		for i, b := range raw {
			ones += bits.OnesCount8(b)
			everSet[i] |= b
			everClear[i] |= ^b
		}
	}
	// 256,000 fair coin flips: the mean is 128,000 with a standard deviation
	// of 253, so ±2,000 fails only for a broken generator.
	if ones < 126000 || ones > 130000 {
		t.Errorf("%d one-bits in %d ids of 256 bits: not uniformly random", ones, n)
	}
	for i := range everSet {
		if everSet[i] != 0xff || everClear[i] != 0xff {
			t.Errorf("byte %d of the id has bits that never change (set %08b, clear %08b)", i, everSet[i], everClear[i])
		}
	}
	// R12 as a side effect: what the store saw is the SHA-256 of each id,
	// never the id.
	keys := st.created()
	if len(keys) != n {
		t.Fatalf("%d creates for %d sessions", len(keys), n)
	}
	keySet := make(map[string]bool, n)
	for _, k := range keys {
		if ids[k] {
			t.Fatalf("the store was given an id as its key: %q", k)
		}
		keySet[k] = true
	}
	for id := range ids {
		if !keySet[secHashKey(id)] {
			t.Fatalf("no store key is the SHA-256 of id %q", id)
		}
	}
}

// R2: the cookie name is configurable, and a cookie under any other name is
// not read at all.
func TestCookieNameConfigurable(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	dflt := secServer(t, secManager(t, session.Options{Store: st}), map[string]http.HandlerFunc{"/login": secLogin, "/": secWho})
	named := secServer(t, secManager(t, session.Options{Store: st, CookieName: "app_sid"}), map[string]http.HandlerFunc{"/login": secLogin, "/": secWho})

	res, _ := secDo(t, "GET", named.URL+"/login", nil, nil)
	if secCookie(res, "SESSION_ID") != nil || secCookie(res, "app_sid") == nil {
		t.Fatalf("Set-Cookie %q: want only app_sid", res.Header.Values("Set-Cookie"))
	}
	res, _ = secDo(t, "GET", dflt.URL+"/login", nil, nil)
	id := secCookie(res, "SESSION_ID").Value
	before := st.calls()
	if _, body := secDo(t, "GET", named.URL, nil, nil, "SESSION_ID="+id); body != "" {
		t.Fatalf("a server using app_sid read SESSION_ID: %q", body)
	}
	if n := st.calls() - before; n != 0 {
		t.Fatalf("a cookie under another name cost %d store calls", n)
	}
	// The same store and key scheme: under the configured name the id works.
	if _, body := secDo(t, "GET", named.URL, nil, nil, "app_sid="+id); body != "ann" {
		t.Fatalf("app_sid=<live id> found %q", body)
	}
}

// R3: session fixation. Whatever id an attacker plants in the victim's
// browser (one of their own live sessions, a made-up one, a logged-out one,
// an expired one), the victim's login gets a fresh id, and the planted
// cookie sees nothing of the victim.
func TestFixationPlantedIDNeverAdopted(t *testing.T) {
	st := newMemory(t)
	m := secManager(t, session.Options{Store: st, IdleTimeout: 400 * time.Millisecond})
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/visit": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("cart", 1)
		},
		"/login":  secLogin,
		"/logout": secLogout,
		"/":       secWho,
	})
	attackerSession := func(t *testing.T) string {
		res, _ := secDo(t, "GET", srv.URL+"/visit", nil, nil)
		return secCookie(res, "SESSION_ID").Value
	}
	cases := []struct {
		name  string
		plant func(t *testing.T) string
	}{
		{"attacker's live session", attackerSession},
		{"made-up id", func(*testing.T) string { return strings.Repeat("P", 43) }},
		{"logged-out id", func(t *testing.T) string {
			id := attackerSession(t)
			secDo(t, "GET", srv.URL+"/logout", nil, nil, "SESSION_ID="+id)
			return id
		}},
		{"expired id", func(t *testing.T) string {
			id := attackerSession(t)
			time.Sleep(500 * time.Millisecond)
			return id
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			planted := c.plant(t)
			victim := newBrowser(t)
			u, _ := url.Parse(srv.URL)
			victim.Jar.SetCookies(u, []*http.Cookie{{Name: "SESSION_ID", Value: planted, Path: "/"}})
			res, _ := fetch(t, victim, srv.URL+"/login?u=victim")
			got := secCookie(res, "SESSION_ID")
			if got == nil || got.Value == planted {
				t.Fatalf("login kept the planted id (Set-Cookie %q)", res.Header.Values("Set-Cookie"))
			}
			if _, body := fetch(t, victim, srv.URL+"/"); body != "victim" {
				t.Fatalf("victim not logged in: %q", body)
			}
			if _, body := secDo(t, "GET", srv.URL+"/", nil, nil, "SESSION_ID="+planted); body != "" {
				t.Fatalf("the planted cookie sees the victim's session: %q", body)
			}
		})
	}
}

// R4: a flood of garbage costs no store write and leaves no row and no
// cookie; ids of the wrong form cost no store call at all.
func TestGarbageIDsCreateNothing(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	m := secManager(t, session.Options{Store: st})
	srv := secServer(t, m, map[string]http.HandlerFunc{"/": secWho})
	malformed := []string{
		strings.Repeat("A", 42),
		strings.Repeat("A", 44),
		strings.Repeat("+", 43),       // standard base64, not URL-safe
		strings.Repeat("A", 42) + "=", // padding
		strings.Repeat("A", 41) + "é", // 43 bytes, not the alphabet
		strings.Repeat("A", 20) + " " + "A" + strings.Repeat("A", 21),
		strings.Repeat("A", 43) + ".", // a signature separator with no keys
		"../../../../etc/passwd",
		"' OR '1'='1",
		"%00" + strings.Repeat("A", 40),
	}
	for _, v := range malformed {
		res, body := secDo(t, "GET", srv.URL, nil, nil, "SESSION_ID="+v)
		if res.StatusCode != 200 || body != "" || res.Header.Get("Set-Cookie") != "" {
			t.Fatalf("SESSION_ID=%q: status %d body %q Set-Cookie %q", v, res.StatusCode, body, res.Header.Get("Set-Cookie"))
		}
	}
	if n := st.calls(); n != 0 {
		t.Fatalf("%d store calls for %d malformed ids, want 0", n, len(malformed))
	}
	// Well-formed but unknown: one read each, never a write, a row or a cookie.
	const flood = 300
	for i := range flood {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		id := base64.RawURLEncoding.EncodeToString(sum[:])
		res, _ := secDo(t, "GET", srv.URL, nil, nil, "SESSION_ID="+id)
		if res.StatusCode != 200 || res.Header.Get("Set-Cookie") != "" {
			t.Fatalf("unknown id: status %d Set-Cookie %q", res.StatusCode, res.Header.Get("Set-Cookie"))
		}
	}
	if st.loads.Load() != flood || st.writes() != 0 {
		t.Fatalf("%d unknown ids: %d loads, %d writes; want %d and 0", flood, st.loads.Load(), st.writes(), flood)
	}
	if n := st.Store.(*session.MemoryStore).Len(); n != 0 {
		t.Fatalf("%d rows after a flood of garbage", n)
	}
}

// R5: Regenerate gives a new id, keeps the data and the owner, deletes the
// old record server-side, and does not extend the absolute lifetime.
func TestRegenerateKeepsDataOwnerAndDeadline(t *testing.T) {
	mem := newMemory(t)
	st := &secKeyStore{Store: mem}
	m := secManager(t, session.Options{Store: st})
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/set": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.SetOwner("u1")
			s.Set("user", "ann")
		},
		"/elevate": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Regenerate()
			s.Set("role", "admin")
		},
		"/": showRoute,
	})
	b := newBrowser(t)
	fetch(t, b, srv.URL+"/set")
	oldID := secJarCookie(b, srv.URL, "SESSION_ID")
	ctx := context.Background()
	oldRec, err := mem.Load(ctx, secHashKey(oldID))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // so that a regenerated Created or Deadline would differ
	res, _ := fetch(t, b, srv.URL+"/elevate")
	newID := secJarCookie(b, srv.URL, "SESSION_ID")
	if newID == "" || newID == oldID || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Regenerate: id %q -> %q, Cache-Control %q", oldID, newID, res.Header.Get("Cache-Control"))
	}
	if _, err := mem.Load(ctx, secHashKey(oldID)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the old record is still in the store: %v", err)
	}
	rec, err := mem.Load(ctx, secHashKey(newID))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Owner != "u1" || !rec.Created.Equal(oldRec.Created) || !rec.Deadline.Equal(oldRec.Deadline) {
		t.Fatalf("regenerated record: owner %q created %v deadline %v; want u1, %v, %v",
			rec.Owner, rec.Created, rec.Deadline, oldRec.Created, oldRec.Deadline)
	}
	if _, body := fetch(t, b, srv.URL+"/"); strings.TrimSpace(body) != `{"role":"admin","user":"ann"}` {
		t.Fatalf("after Regenerate: %s", body)
	}
	if n := mem.Len(); n != 1 {
		t.Fatalf("%d records after one session regenerated, want 1", n)
	}
}

// R6: logout deletes the record and expires the cookie with the attributes
// it was set with (a cookie expired under another Path survives in the
// browser); a client that replays the old cookie gets nothing.
func TestLogoutDeletesRecordAndExpiresCookie(t *testing.T) {
	mem := newMemory(t)
	m := secManager(t, session.Options{Store: mem, Cookie: session.CookieOptions{Path: "/app", MaxAge: time.Hour}})
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/app/login":  secLogin,
		"/app/logout": secLogout,
		"/app/":       secWho,
	})
	res, _ := secDo(t, "GET", srv.URL+"/app/login", nil, nil)
	set := secCookie(res, "SESSION_ID")
	if set == nil || set.Path != "/app" || set.MaxAge <= 0 {
		t.Fatalf("login Set-Cookie %q", res.Header.Values("Set-Cookie"))
	}
	id := set.Value
	res, _ = secDo(t, "GET", srv.URL+"/app/logout", nil, nil, "SESSION_ID="+id)
	gone := secCookie(res, "SESSION_ID")
	switch {
	case gone == nil:
		t.Fatal("logout sent no Set-Cookie")
	case gone.Value != "" || gone.MaxAge >= 0 || !gone.Expires.Before(time.Now()):
		t.Fatalf("logout cookie %q does not expire the cookie", res.Header.Values("Set-Cookie"))
	case gone.Path != set.Path || gone.Domain != set.Domain || gone.HttpOnly != set.HttpOnly || gone.SameSite != set.SameSite:
		t.Fatalf("logout cookie %+v has other attributes than the login cookie %+v: the browser keeps the old one", gone, set)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("logout Cache-Control %q", cc)
	}
	if _, err := mem.Load(context.Background(), secHashKey(id)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the record survived logout: %v", err)
	}
	// A stolen copy of the cookie, replayed after logout.
	res, body := secDo(t, "GET", srv.URL+"/app/", nil, nil, "SESSION_ID="+id)
	if body != "" || res.Header.Get("Set-Cookie") != "" {
		t.Fatalf("the old cookie still finds %q", body)
	}
	res, _ = secDo(t, "GET", srv.URL+"/app/login", nil, nil, "SESSION_ID="+id)
	if c := secCookie(res, "SESSION_ID"); c == nil || c.Value == id {
		t.Fatalf("a login with the dead cookie reused its id: %q", res.Header.Values("Set-Cookie"))
	}
}

// secStaleStore remembers every record it stored and returns it from Load
// even once the real store has dropped it, with an expiry pushed an hour
// ahead: a store whose cleanup lags and whose clock lies. The middleware
// must enforce the timeouts itself.
type secStaleStore struct {
	session.Store
	mu   sync.Mutex
	seen map[string]session.Record
}

func (s *secStaleStore) remember(key string, rec *session.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]session.Record{}
	}
	s.seen[key] = *rec
}

func (s *secStaleStore) Create(ctx context.Context, key string, rec *session.Record) error {
	s.remember(key, rec)
	return s.Store.Create(ctx, key, rec)
}

func (s *secStaleStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	rec, err := s.Store.Update(ctx, key, ch)
	if err == nil {
		s.remember(key, rec)
	}
	return rec, err
}

func (s *secStaleStore) DeleteOwner(ctx context.Context, owner, except string) (int, error) {
	return deleteOwner(ctx, s.Store, owner, except)
}

func (s *secStaleStore) Load(ctx context.Context, key string) (*session.Record, error) {
	rec, err := s.Store.Load(ctx, key)
	s.mu.Lock()
	old, ok := s.seen[key]
	s.mu.Unlock()
	if errors.Is(err, session.ErrNotFound) && ok {
		rec, err = &old, nil
	}
	if err != nil {
		return nil, err
	}
	stale := *rec
	if !stale.Deadline.IsZero() {
		stale.Expires = time.Now().Add(time.Hour)
	}
	return &stale, nil
}

// R7: the idle timeout is the server's: a persistent cookie replayed after
// it, from a client that ignores the cookie's own expiry, finds nothing.
func TestIdleTimeoutBeatsPersistentCookie(t *testing.T) {
	st := newMemory(t)
	m := secManager(t, session.Options{Store: st, IdleTimeout: 150 * time.Millisecond, Cookie: session.CookieOptions{MaxAge: 24 * time.Hour}})
	srv := secServer(t, m, map[string]http.HandlerFunc{"/login": secLogin, "/": secWho})
	res, _ := secDo(t, "GET", srv.URL+"/login", nil, nil)
	c := secCookie(res, "SESSION_ID")
	if c == nil || c.MaxAge <= 0 {
		t.Fatalf("want a persistent cookie, got %q", res.Header.Values("Set-Cookie"))
	}
	if c.MaxAge > 1 {
		t.Errorf("cookie Max-Age %d outlives the 150ms idle timeout", c.MaxAge)
	}
	time.Sleep(250 * time.Millisecond)
	if _, body := secDo(t, "GET", srv.URL+"/", nil, nil, "SESSION_ID="+c.Value); body != "" {
		t.Fatalf("idle session served to a replayed persistent cookie: %q", body)
	}
}

// R8: the absolute lifetime holds against activity, a persistent cookie
// and a store that returns stale records with a pushed expiry; the cookie
// itself never outlives it.
func TestLifetimeHoldsAgainstStaleStore(t *testing.T) {
	st := &secStaleStore{Store: newMemory(t)}
	m := secManager(t, session.Options{Store: st, IdleTimeout: time.Hour, Lifetime: 400 * time.Millisecond, Cookie: session.CookieOptions{MaxAge: 24 * time.Hour}})
	srv := secServer(t, m, map[string]http.HandlerFunc{"/login": secLogin, "/": secWho})
	res, _ := secDo(t, "GET", srv.URL+"/login", nil, nil)
	end := time.Now().Add(400 * time.Millisecond)
	c := secCookie(res, "SESSION_ID")
	if c == nil || c.MaxAge < 1 || c.MaxAge > 1 {
		t.Fatalf("cookie %q: Max-Age must not pass the 400ms lifetime", res.Header.Values("Set-Cookie"))
	}
	if _, body := secDo(t, "GET", srv.URL+"/", nil, nil, "SESSION_ID="+c.Value); body != "ann" {
		t.Fatalf("live session not found: %q", body)
	}
	time.Sleep(time.Until(end) + 100*time.Millisecond)
	if _, body := secDo(t, "GET", srv.URL+"/", nil, nil, "SESSION_ID="+c.Value); body != "" {
		t.Fatalf("session served past its absolute lifetime by a stale store: %q", body)
	}
}

// R9: each cookie setting reaches the Set-Cookie header, and the cookie that
// ends the session repeats the attributes so that the browser deletes the
// right one.
func TestCookieAttributesAsConfigured(t *testing.T) {
	cases := []struct {
		name    string
		opts    session.Options
		want    []string
		wantNot []string
	}{
		{"__Host- prefix", session.Options{CookieName: "__Host-sid", Cookie: session.CookieOptions{Secure: true}},
			[]string{"__Host-sid=", "Path=/", "Secure", "HttpOnly", "SameSite=Lax"}, []string{"Domain="}},
		{"__Secure- with Domain and Path", session.Options{CookieName: "__Secure-sid", Cookie: session.CookieOptions{Secure: true, Domain: "example.test", Path: "/app"}},
			[]string{"__Secure-sid=", "Domain=example.test", "Path=/app", "Secure"}, nil},
		{"SameSite Strict", session.Options{Cookie: session.CookieOptions{SameSite: http.SameSiteStrictMode}},
			[]string{"SameSite=Strict", "HttpOnly"}, []string{"Secure"}},
		{"SameSite None", session.Options{Cookie: session.CookieOptions{SameSite: http.SameSiteNoneMode, Secure: true}},
			[]string{"SameSite=None", "Secure"}, nil},
		{"SameSite left out", session.Options{Cookie: session.CookieOptions{SameSite: http.SameSiteDefaultMode}},
			[]string{"HttpOnly"}, []string{"SameSite"}},
		{"Partitioned", session.Options{Cookie: session.CookieOptions{Partitioned: true, Secure: true, SameSite: http.SameSiteNoneMode}},
			[]string{"Partitioned", "Secure", "SameSite=None"}, nil},
		{"HttpOnly disabled", session.Options{Cookie: session.CookieOptions{DisableHTTPOnly: true}},
			[]string{"SameSite=Lax"}, []string{"HttpOnly"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := secManager(t, c.opts)
			srv := secServer(t, m, map[string]http.HandlerFunc{"/login": secLogin, "/logout": secLogout})
			name := c.opts.CookieName
			if name == "" {
				name = "SESSION_ID"
			}
			res, _ := secDo(t, "GET", srv.URL+"/login", nil, nil)
			set := res.Header.Get("Set-Cookie")
			res, _ = secDo(t, "GET", srv.URL+"/logout", nil, nil, name+"="+secCookie(res, name).Value)
			expire := res.Header.Get("Set-Cookie")
			if !strings.Contains(expire, "Max-Age=0") {
				t.Fatalf("logout Set-Cookie %q does not expire the cookie", expire)
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

// R9: a configuration that browsers would silently refuse is an error at
// build time that names the setting; through Middleware it is logged and
// every request fails closed.
func TestCookieConfigErrorsNameTheSetting(t *testing.T) {
	cases := []struct {
		name string
		opts session.Options
		want []string
	}{
		{"__Host- without Secure", session.Options{CookieName: "__Host-sid"}, []string{"__Host-sid", "Secure"}},
		{"__Host- with Domain", session.Options{CookieName: "__Host-sid", Cookie: session.CookieOptions{Secure: true, Domain: "example.test"}}, []string{"__Host-sid", "Domain"}},
		{"__Host- with Path", session.Options{CookieName: "__Host-sid", Cookie: session.CookieOptions{Secure: true, Path: "/app"}}, []string{"__Host-sid", "Path"}},
		{"__Secure- without Secure", session.Options{CookieName: "__Secure-sid"}, []string{"__Secure-sid", "Secure"}},
		{"SameSite None without Secure", session.Options{Cookie: session.CookieOptions{SameSite: http.SameSiteNoneMode}}, []string{"SameSite", "Secure"}},
		{"Partitioned without Secure", session.Options{Cookie: session.CookieOptions{Partitioned: true}}, []string{"Partitioned", "Secure"}},
		{"Path with a semicolon", session.Options{Cookie: session.CookieOptions{Path: "/a;Domain=evil.test"}}, []string{"Path"}},
		{"signing key too short", session.Options{SigningKeys: [][]byte{secKey(1), []byte("short")}}, []string{"SigningKeys[1]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := session.New(c.opts)
			if !errors.Is(err, session.ErrInvalidOptions) {
				t.Fatalf("New: %v, want ErrInvalidOptions", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			var logs secLogBuffer
			opts := c.opts
			opts.Logger = secLogger(&logs)
			h := session.Middleware(opts)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				t.Error("handler ran under an invalid configuration")
			}))
			srv := httptest.NewServer(h)
			defer srv.Close()
			if res, _ := secDo(t, "GET", srv.URL, nil, nil); res.StatusCode != 500 {
				t.Errorf("status %d under an invalid configuration, want 500", res.StatusCode)
			}
			if !strings.Contains(logs.String(), c.want[0]) {
				t.Errorf("the configuration error was not logged: %q", logs.String())
			}
		})
	}
}

// secHostileServer serves / with a handler that records whether it saw a
// fresh session and then sets a value, so every answer that works issues a
// new cookie. Its header limit admits a 1 MB Cookie header.
func secHostileServer(t *testing.T, st session.Store) *httptest.Server {
	t.Helper()
	m := secManager(t, session.Options{Store: st})
	srv := httptest.NewUnstartedServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		seen := fmt.Sprint(s.IsNew(), s.GetString("user"))
		s.Set("visit", true)
		io.WriteString(w, seen)
	})))
	srv.Config.MaxHeaderBytes = 4 << 20
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// secRawGet sends header lines byte for byte over TCP, for what an
// http.Client would refuse to send, and reads the answer.
func secRawGet(t *testing.T, srvURL string, cookieLines ...string) (*http.Response, string) {
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
	mem := newMemory(t)
	st := &countingStore{Store: mem}
	srv := secHostileServer(t, st)
	live := func() string {
		res, _ := secDo(t, "GET", srv.URL, nil, nil)
		return secCookie(res, "SESSION_ID").Value
	}()
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
		res, body := secRawGet(t, srv.URL, c.lines...)
		if res.StatusCode != 200 || body != "true" {
			t.Errorf("%s: status %d body %q, want 200 and a fresh session", c.name, res.StatusCode, body)
			continue
		}
		if ck := secCookie(res, "SESSION_ID"); ck == nil || ck.Value == live || len(ck.Value) != 43 {
			t.Errorf("%s: Set-Cookie %q, want a fresh id", c.name, res.Header.Values("Set-Cookie"))
		}
	}
	if n := st.loads.Load() - before; n != 0 {
		t.Fatalf("%d store reads for malformed or ambiguous cookies, want 0", n)
	}
	// The live session itself is untouched by all of it.
	if _, body := secRawGet(t, srv.URL, "SESSION_ID="+live); body != "false" {
		t.Fatalf("the live session after the hostile requests: %q", body)
	}
}

// secSink is a ResponseWriter that keeps nothing, so that only the
// middleware's own allocations are counted.
type secSink struct{ h http.Header }

func (s *secSink) Header() http.Header         { return s.h }
func (s *secSink) Write(b []byte) (int, error) { return len(b), nil }
func (s *secSink) WriteHeader(int)             {}

// R10: the cost of reading the Cookie header does not grow with its size:
// no allocation depends on it, and nothing past the scan budget is read
// (a live cookie placed after 1 MB is not seen, in the table above).
func TestCookieScanCostBounded(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	m := secManager(t, session.Options{Store: st})
	h := m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	allocs := map[int]float64{}
	for _, size := range []int{1 << 10, 1 << 20, 4 << 20} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Cookie", "SESSION_ID=x; "+strings.Repeat("a=b; ", size/5))
		req.Header.Add("Cookie", strings.Repeat("SESSION_ID=y;", size/13))
		w := &secSink{h: http.Header{}}
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
	st := &countingStore{Store: newMemory(t)}
	srv := secHostileServer(t, st)
	res, _ := secDo(t, "GET", srv.URL, nil, nil)
	live := secCookie(res, "SESSION_ID").Value
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
		res, body := secRawGet(t, srv.URL, c.lines...)
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
	st := &countingStore{Store: newMemory(t)}
	m := secManager(t, session.Options{Store: st})
	srv := secServer(t, m, map[string]http.HandlerFunc{"/login": secLogin, "/": func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		secWho(w, r)
	}})
	res, _ := secDo(t, "GET", srv.URL+"/login", nil, nil)
	id := secCookie(res, "SESSION_ID").Value
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
		res, body := secDo(t, c.method, srv.URL+c.path, strings.NewReader(c.body), c.hdr)
		if body != "" || res.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s: found session %q", c.name, body)
		}
	}
	if n := st.calls() - before; n != 0 {
		t.Errorf("%d store calls for ids outside the cookie", n)
	}
	if _, body := secDo(t, "GET", srv.URL+"/", nil, nil, "SESSION_ID="+id); body != "ann" {
		t.Fatalf("the cookie itself no longer works: %q", body)
	}
}

// R12: the store holds the SHA-256 of the id; its key, sent as a cookie
// (as someone who read the session table would), logs no one in.
func TestStoreKeyIsNotACookie(t *testing.T) {
	mem := newMemory(t)
	keys := &secKeyStore{Store: mem}
	st := &countingStore{Store: keys}
	m := secManager(t, session.Options{Store: st})
	srv := secServer(t, m, map[string]http.HandlerFunc{"/login": secLogin, "/": secWho})
	res, _ := secDo(t, "GET", srv.URL+"/login", nil, nil)
	id := secCookie(res, "SESSION_ID").Value
	created := keys.created()
	if len(created) != 1 {
		t.Fatalf("%d creates for one login", len(created))
	}
	key := created[0]
	if key == id || key != secHashKey(id) {
		t.Fatalf("store key %q for id %q: want hex SHA-256 of the id", key, id)
	}
	before := st.calls()
	for _, v := range []string{key, strings.ToUpper(key)} {
		if _, body := secDo(t, "GET", srv.URL+"/", nil, nil, "SESSION_ID="+v); body != "" {
			t.Fatalf("the store key as a cookie logged in as %q", body)
		}
	}
	if n := st.calls() - before; n != 0 {
		t.Fatalf("the store key as a cookie cost %d store calls, want 0 (wrong length)", n)
	}
	// Cut to the length of an id it is well-formed, and still nobody's.
	if _, body := secDo(t, "GET", srv.URL+"/", nil, nil, "SESSION_ID="+key[:43]); body != "" {
		t.Fatalf("a prefix of the store key logged in as %q", body)
	}
}

// R13: with signing keys, a cookie is id.HMAC; every forgery is refused
// before the store is asked, and a signature is bound to its key, its id
// and the cookie's name.
func TestSignedIDsRefuseForgeries(t *testing.T) {
	mem := newMemory(t)
	st := &countingStore{Store: mem}
	routes := map[string]http.HandlerFunc{"/login": secLogin, "/": secWho}
	main := secServer(t, secManager(t, session.Options{Store: st, SigningKeys: [][]byte{secKey(1)}}), routes)
	otherKey := secServer(t, secManager(t, session.Options{Store: st, SigningKeys: [][]byte{secKey(2)}}), routes)
	otherName := secServer(t, secManager(t, session.Options{Store: st, SigningKeys: [][]byte{secKey(1)}, CookieName: "OTHER"}), routes)

	login := func(srv *httptest.Server, name string) string {
		res, _ := secDo(t, "GET", srv.URL+"/login", nil, nil)
		c := secCookie(res, name)
		if c == nil {
			t.Fatalf("no %s cookie", name)
		}
		return c.Value
	}
	v := login(main, "SESSION_ID")
	v2 := login(main, "SESSION_ID")
	if len(v) != 87 || v[43] != '.' {
		t.Fatalf("signed cookie %q: want 43-char id, '.', 43-char signature", v)
	}
	id, sig := v[:43], v[44:]
	if _, err := base64.RawURLEncoding.DecodeString(sig); err != nil {
		t.Fatalf("signature %q is not base64url: %v", sig, err)
	}
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	forged := []struct{ name, value string }{
		{"unsigned live id", id},
		{"last signature char changed", flip(v, len(v)-1)},
		{"first signature char changed", flip(v, 44)},
		{"id char changed", flip(v, 0)},
		{"signature of another session", id + "." + v2[44:]},
		{"signature cut short", v[:len(v)-1]},
		{"signature too long", v + "A"},
		{"signature padded", v + "="},
		{"no separator", id + sig},
		{"other separator", id + "_" + sig},
		{"empty signature", id + "."},
		{"signature twice", v + "." + sig},
		{"lower-cased signature", id + "." + strings.ToLower(sig)},
		{"signed with an unknown key", login(otherKey, "SESSION_ID")},
		{"signed for another cookie name", login(otherName, "OTHER")},
	}
	before, loads := st.calls(), st.loads.Load()
	for _, f := range forged {
		if f.value == v {
			continue // a no-op mutation
		}
		res, body := secDo(t, "GET", main.URL+"/", nil, nil, "SESSION_ID="+f.value)
		if res.StatusCode != 200 || body != "" {
			t.Errorf("%s: status %d, session %q", f.name, res.StatusCode, body)
		}
	}
	if n := st.calls() - before; n != 0 {
		t.Fatalf("forged signed cookies cost %d store calls, want 0", n)
	}
	if _, body := secDo(t, "GET", main.URL+"/", nil, nil, "SESSION_ID="+v); body != "ann" {
		t.Fatalf("the genuine signed cookie: %q", body)
	}
	if n := st.loads.Load() - loads; n != 1 {
		t.Fatalf("the genuine cookie cost %d loads, want 1", n)
	}
}

// R13: key rotation. With the new key first and the old one second, old
// cookies keep working and every new cookie is signed with the new key;
// once the old key is dropped, its cookies are refused without a store
// call.
func TestSigningKeyRotation(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	oldKey, newKey := secKey(1), secKey(2)
	routes := map[string]http.HandlerFunc{"/login": secLogin, "/regen": func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Regenerate()
	}, "/": secWho}
	before := secServer(t, secManager(t, session.Options{Store: st, SigningKeys: [][]byte{oldKey}}), routes)
	during := secServer(t, secManager(t, session.Options{Store: st, SigningKeys: [][]byte{newKey, oldKey}}), routes)
	after := secServer(t, secManager(t, session.Options{Store: st, SigningKeys: [][]byte{newKey}}), routes)
	who := func(srv *httptest.Server, v string) string {
		_, body := secDo(t, "GET", srv.URL+"/", nil, nil, "SESSION_ID="+v)
		return body
	}
	res, _ := secDo(t, "GET", before.URL+"/login", nil, nil)
	oldCookie := secCookie(res, "SESSION_ID").Value
	if who(during, oldCookie) != "ann" {
		t.Fatal("an old-key cookie was refused while the old key is still listed")
	}
	res, _ = secDo(t, "GET", during.URL+"/login", nil, nil)
	newCookie := secCookie(res, "SESSION_ID").Value
	if who(after, newCookie) != "ann" || who(before, newCookie) != "" {
		t.Fatal("a cookie issued during the rotation is not signed with the new key")
	}
	// A cookie re-issued during the rotation moves to the new key.
	res, _ = secDo(t, "GET", during.URL+"/regen", nil, nil, "SESSION_ID="+oldCookie)
	reissued := secCookie(res, "SESSION_ID").Value
	if who(after, reissued) != "ann" {
		t.Fatal("a cookie re-issued during the rotation is not signed with the new key")
	}
	res, _ = secDo(t, "GET", before.URL+"/login", nil, nil)
	stale := secCookie(res, "SESSION_ID").Value
	calls := st.calls()
	if who(after, stale) != "" {
		t.Fatal("an old-key cookie still works after the old key was removed")
	}
	if n := st.calls() - calls; n != 0 {
		t.Fatalf("the removed key's cookie cost %d store calls, want 0", n)
	}
}

// secCorruptStore answers ErrCorrupt for the keys it is told are corrupt,
// as a store does for a row edited by hand.
type secCorruptStore struct {
	session.Store
	mu      sync.Mutex
	corrupt map[string]bool
}

func (c *secCorruptStore) spoil(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corrupt == nil {
		c.corrupt = map[string]bool{}
	}
	c.corrupt[key] = true
}

// Lock passes the lock to the wrapped store.
func (c *secCorruptStore) Lock(ctx context.Context, key string) (session.Lease, error) {
	return secLock(ctx, c, c.Store, key)
}

func (c *secCorruptStore) DeleteOwner(ctx context.Context, owner, except string) (int, error) {
	return deleteOwner(ctx, c.Store, owner, except)
}

func (c *secCorruptStore) Load(ctx context.Context, key string) (*session.Record, error) {
	c.mu.Lock()
	bad := c.corrupt[key]
	c.mu.Unlock()
	if bad {
		return nil, fmt.Errorf("test store: decode record: %w", session.ErrCorrupt)
	}
	return c.Store.Load(ctx, key)
}

// R13 (logs), R19: a corrupt record is logged and replaced by a fresh
// session under a new id, never a 500 on every request of that visitor.
func TestCorruptRecordStartsFreshSession(t *testing.T) {
	var logs secLogBuffer
	st := &secCorruptStore{Store: newMemory(t)}
	m := secManager(t, session.Options{Store: st, Logger: secLogger(&logs)})
	srv := secServer(t, m, map[string]http.HandlerFunc{"/login": secLogin, "/": func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		seen := fmt.Sprint(s.IsNew(), s.GetString("user"))
		s.Set("seen", true)
		io.WriteString(w, seen)
	}})
	b := newBrowser(t)
	fetch(t, b, srv.URL+"/login")
	id := secJarCookie(b, srv.URL, "SESSION_ID")
	st.spoil(secHashKey(id))
	res, body := fetch(t, b, srv.URL+"/")
	if res.StatusCode != 200 || body != "true" {
		t.Fatalf("corrupt record: status %d body %q, want 200 and a fresh session", res.StatusCode, body)
	}
	fresh := secJarCookie(b, srv.URL, "SESSION_ID")
	if fresh == "" || fresh == id {
		t.Fatalf("the fresh session kept the corrupt record's id")
	}
	if _, body := fetch(t, b, srv.URL+"/"); body != "false" {
		t.Fatalf("the fresh session was not kept: %q", body)
	}
	if !strings.Contains(logs.String(), "corrupt") {
		t.Fatalf("the corrupt record was not logged: %q", logs.String())
	}
}

// R13: logs carry at most a short hash of an id: never the id, the signed
// cookie value, its signature or the store key, whatever goes wrong.
func TestLogsNeverContainIDs(t *testing.T) {
	var logs secLogBuffer
	mem := newMemory(t)
	corrupt := &secCorruptStore{Store: mem}
	faults := &secFaultStore{Store: corrupt}
	m := secManager(t, session.Options{
		Store:       faults,
		SigningKeys: [][]byte{secKey(7)},
		Logger:      secLogger(&logs),
		LockTimeout: 50 * time.Millisecond,
		IdleTimeout: 2 * time.Second,
		Cookie:      session.CookieOptions{MaxAge: time.Hour},
	})
	loaded, release := make(chan struct{}, 1), make(chan struct{})
	holding, letGo := make(chan struct{}, 1), make(chan struct{})
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/login":  secLogin,
		"/logout": secLogout,
		"/set": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("n", 1)
		},
		"/slow": func(w http.ResponseWriter, r *http.Request) {
			loaded <- struct{}{}
			<-release
			session.FromContext(r.Context()).Set("late", true)
		},
		"/late-new": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "streaming")
			session.FromContext(r.Context()).Set("x", 1)
		},
		"/hold": m.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			holding <- struct{}{}
			<-letGo
		})).ServeHTTP,
		"/": secWho,
	})
	var secrets []string
	login := func() string {
		res, _ := secDo(t, "GET", srv.URL+"/login", nil, nil)
		v := secCookie(res, "SESSION_ID").Value
		secrets = append(secrets, v, v[:43], v[44:], secHashKey(v[:43]))
		return v
	}
	get := func(path, v string) int {
		res, _ := secDo(t, "GET", srv.URL+path, nil, nil, "SESSION_ID="+v)
		return res.StatusCode
	}
	events := []struct {
		name   string
		status int
		run    func() int
	}{
		{"load fails", 500, func() int {
			v := login()
			faults.set("load", errSecDown)
			defer faults.set("load", nil)
			return get("/", v)
		}},
		{"update fails", 500, func() int {
			v := login()
			faults.set("update", errSecDown)
			defer faults.set("update", nil)
			return get("/set", v)
		}},
		{"delete fails", 500, func() int {
			v := login()
			faults.set("delete", errSecDown)
			defer faults.set("delete", nil)
			return get("/logout", v)
		}},
		{"refresh fails", 500, func() int {
			v := login()
			time.Sleep(250 * time.Millisecond) // a refresh is due after a tenth of IdleTimeout
			faults.set("touch", errSecDown)
			defer faults.set("touch", nil)
			return get("/", v)
		}},
		{"create fails", 500, func() int {
			faults.set("create", errSecDown)
			defer faults.set("create", nil)
			return get("/set", "")
		}},
		{"corrupt record", 200, func() int {
			v := login()
			corrupt.spoil(secHashKey(v[:43]))
			return get("/", v)
		}},
		{"destroyed by a concurrent request", 200, func() int {
			v := login()
			done := make(chan int)
			go func() { done <- get("/slow", v) }()
			<-loaded
			get("/logout", v)
			close(release)
			return <-done
		}},
		{"lock wait times out", 503, func() int {
			v := login()
			done := make(chan int)
			go func() { done <- get("/hold", v) }()
			<-holding
			code := get("/hold", v)
			close(letGo)
			<-done
			return code
		}},
		{"new session after the first byte", 200, func() int { return get("/late-new", "") }},
	}
	for _, e := range events {
		before := len(logs.String())
		if code := e.run(); code != e.status {
			t.Errorf("%s: status %d, want %d", e.name, code, e.status)
		}
		if len(logs.String()) == before {
			t.Errorf("%s: nothing was logged", e.name)
		}
	}
	out := logs.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("the logs contain %q, a secret of a session:\n%s", s, out)
		}
	}
	// What they carry instead is a short hash, enough to follow a session.
	hashes := regexp.MustCompile(`session=([0-9a-f]+)`).FindAllStringSubmatch(out, -1)
	if len(hashes) == 0 {
		t.Fatalf("no session hash in the logs:\n%s", out)
	}
	for _, h := range hashes {
		if len(h[1]) > 16 {
			t.Fatalf("session=%s in the logs is more than a short hash", h[1])
		}
	}
}

// R14: every response that sets the cookie forbids caching, whatever the
// handler asked for, on every path that sets it.
func TestEverySetCookieIsNoStore(t *testing.T) {
	st := newMemory(t)
	m := secManager(t, session.Options{Store: st, IdleTimeout: 2 * time.Second, Cookie: session.CookieOptions{MaxAge: time.Hour}})
	cacheable := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=600")
			h(w, r)
		}
	}
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/login":  cacheable(secLogin),
		"/regen":  cacheable(func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).Regenerate() }),
		"/empty":  cacheable(func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).Clear() }),
		"/logout": cacheable(secLogout),
		"/":       cacheable(secWho),
	})
	b := newBrowser(t)
	steps := []struct {
		name, path string
		wait       time.Duration
	}{
		{"new session", "/login", 0},
		{"regenerated id", "/regen", 0},
		{"refreshed persistent cookie", "/", 250 * time.Millisecond},
		{"emptied session", "/empty", 0},
		{"login again", "/login", 0},
		{"logout", "/logout", 0},
	}
	for _, s := range steps {
		time.Sleep(s.wait)
		res, _ := fetch(t, b, srv.URL+s.path)
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
// itself; a shared cache must never serve it to another visitor.
func TestVaryCookieWheneverTheCookieCame(t *testing.T) {
	st := &secFaultStore{Store: newMemory(t)}
	var logs secLogBuffer
	m := secManager(t, session.Options{Store: st, Logger: secLogger(&logs)})
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/login": secLogin,
		"/":      secWho,
		"/own-vary": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Accept-Encoding")
			secWho(w, r)
		},
		"/add-vary": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "Origin")
			secWho(w, r)
		},
	})
	res, _ := secDo(t, "GET", srv.URL+"/login", nil, nil)
	live := secCookie(res, "SESSION_ID").Value
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
			st.set("load", errSecDown)
		}
		res, _ := secDo(t, "GET", srv.URL+c.path, nil, nil, c.cookies...)
		st.set("load", nil)
		if !varies(res) {
			t.Errorf("%s: Vary %q, want Cookie among them", c.name, res.Header.Values("Vary"))
		}
	}
}

// R15: revoke everywhere. RevokeOwner(true) ends the owner's other devices
// and keeps this one; RevokeOwner(false) ends this one too; Manager.Revoke
// does it from outside any request. Other owners are untouched.
func TestRevokeEverywhere(t *testing.T) {
	mem := newMemory(t)
	m := secManager(t, session.Options{Store: mem})
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/login": secLogin,
		"/revoke-others": func(w http.ResponseWriter, r *http.Request) {
			n, err := session.FromContext(r.Context()).RevokeOwner(true)
			fmt.Fprint(w, n, err)
		},
		"/revoke-all": func(w http.ResponseWriter, r *http.Request) {
			n, err := session.FromContext(r.Context()).RevokeOwner(false)
			fmt.Fprint(w, n, err)
		},
		"/": secWho,
	})
	laptop, phone, bob := newBrowser(t), newBrowser(t), newBrowser(t)
	who := func(b *http.Client) string {
		_, body := fetch(t, b, srv.URL+"/")
		return body
	}
	fetch(t, laptop, srv.URL+"/login?u=alice")
	fetch(t, phone, srv.URL+"/login?u=alice")
	fetch(t, bob, srv.URL+"/login?u=bob")

	if _, body := fetch(t, laptop, srv.URL+"/revoke-others"); body != "1 <nil>" {
		t.Fatalf("RevokeOwner(true) answered %q, want 1 session ended", body)
	}
	if who(phone) != "" || who(laptop) != "alice" || who(bob) != "bob" {
		t.Fatalf("after revoke-others: phone %q laptop %q bob %q", who(phone), who(laptop), who(bob))
	}

	fetch(t, phone, srv.URL+"/login?u=alice")
	res, body := fetch(t, laptop, srv.URL+"/revoke-all")
	if body != "1 <nil>" || !strings.Contains(res.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("RevokeOwner(false) answered %q with Set-Cookie %q", body, res.Header.Get("Set-Cookie"))
	}
	if who(phone) != "" || who(laptop) != "" || who(bob) != "bob" {
		t.Fatalf("after revoke-all: phone %q laptop %q bob %q", who(phone), who(laptop), who(bob))
	}
	if n := mem.Len(); n != 1 {
		t.Fatalf("%d records left, want bob's only", n)
	}

	fetch(t, laptop, srv.URL+"/login?u=alice")
	fetch(t, phone, srv.URL+"/login?u=alice")
	ctx := context.Background()
	if n, err := m.Revoke(ctx, "alice"); n != 2 || err != nil {
		t.Fatalf("Manager.Revoke = %d, %v; want 2 sessions", n, err)
	}
	if who(phone) != "" || who(laptop) != "" || who(bob) != "bob" {
		t.Fatalf("after Manager.Revoke: phone %q laptop %q bob %q", who(phone), who(laptop), who(bob))
	}
	for _, owner := range []string{"", "nobody", "ALICE"} {
		if n, err := m.Revoke(ctx, owner); n != 0 || err != nil {
			t.Fatalf("Revoke(%q) = %d, %v", owner, n, err)
		}
	}
	if who(bob) != "bob" {
		t.Fatal("bob's session ended by revoking other owners")
	}
}

// R16: many clients at once, each with its own session, never see another
// one's values, and a request without a cookie always starts empty.
func TestNoStateLeaksBetweenConcurrentClients(t *testing.T) {
	m := secManager(t, session.Options{})
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/visit": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			me := r.URL.Query().Get("me")
			if got := s.GetString("me"); got != "" && got != me {
				t.Errorf("client %s sees client %s's session", me, got)
			}
			for _, k := range s.Keys() {
				if k != "me" && k != "n" && k != "secret-"+me {
					t.Errorf("client %s sees key %q", me, k)
				}
			}
			n := s.GetInt("n") + 1
			s.Set("me", me)
			s.Set("n", n)
			s.Set("secret-"+me, me)
			fmt.Fprintf(w, "%s %d", me, n)
		},
		"/anon": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			if b, _ := s.MarshalJSON(); !s.IsNew() || s.Len() != 0 || len(s.Keys()) != 0 || string(b) != "{}" {
				t.Errorf("a request without a cookie sees %s", b)
			}
		},
	})
	const clients, visits = 32, 15
	var wg sync.WaitGroup
	ids := make([]string, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := newBrowser(t)
			me := "c" + strconv.Itoa(c)
			for i := 1; i <= visits; i++ {
				res, err := b.Get(srv.URL + "/visit?me=" + me)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if want := fmt.Sprintf("%s %d", me, i); string(body) != want {
					t.Errorf("client %s visit %d: %q, want %q", me, i, body, want)
				}
				if res, err := http.Get(srv.URL + "/anon"); err == nil {
					res.Body.Close()
				}
			}
			ids[c] = secJarCookie(b, srv.URL, "SESSION_ID")
		}()
	}
	wg.Wait()
	slices.Sort(ids)
	if len(slices.Compact(ids)) != clients {
		t.Fatalf("%d distinct session ids for %d clients", len(slices.Compact(ids)), clients)
	}
}

// R17: a request that loaded the session before it was ended (logout,
// revoke from another device, Manager.Revoke, Regenerate) and commits after
// it never brings it back: not by writing a key, not by refreshing the
// expiry, not by regenerating. The sessiontest HTTP suite covers a slow
// write against logout and Regenerate on every store.
func TestSlowRequestCannotUndoEnd(t *testing.T) {
	ends := []string{"logout", "revoke from another device", "Manager.Revoke", "regenerate"}
	slows := []string{"write", "refresh", "regenerate"}
	for _, end := range ends {
		for _, slow := range slows {
			if end == "regenerate" && slow == "regenerate" {
				continue
			}
			t.Run(slow+" after "+end, func(t *testing.T) { secSlowAfterEnd(t, end, slow) })
		}
	}
}

func secSlowAfterEnd(t *testing.T, end, slow string) {
	mem := newMemory(t)
	m := secManager(t, session.Options{Store: mem, IdleTimeout: 2 * time.Second, Cookie: session.CookieOptions{MaxAge: time.Hour}})
	loaded, release := make(chan struct{}), make(chan struct{})
	srv := secServer(t, m, map[string]http.HandlerFunc{
		"/login":  secLogin,
		"/logout": secLogout,
		"/regen":  func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).Regenerate() },
		"/revoke-others": func(w http.ResponseWriter, r *http.Request) {
			if _, err := session.FromContext(r.Context()).RevokeOwner(true); err != nil {
				t.Error(err)
			}
		},
		"/slow": func(w http.ResponseWriter, r *http.Request) {
			close(loaded)
			<-release
			s := session.FromContext(r.Context())
			switch slow {
			case "write":
				s.Set("late", true)
			case "regenerate":
				s.Regenerate()
			} // refresh: only read, the expiry refresh is due by now
		},
		"/": secWho,
	})
	device, other := newBrowser(t), newBrowser(t)
	fetch(t, device, srv.URL+"/login?u=alice")
	old := secJarCookie(device, srv.URL, "SESSION_ID")
	if end == "revoke from another device" {
		fetch(t, other, srv.URL+"/login?u=alice")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fetch(t, device, srv.URL+"/slow")
	}()
	<-loaded
	switch end {
	case "logout":
		fetch(t, device, srv.URL+"/logout")
	case "revoke from another device":
		fetch(t, other, srv.URL+"/revoke-others")
	case "Manager.Revoke":
		if n, err := m.Revoke(context.Background(), "alice"); n != 1 || err != nil {
			t.Fatalf("Revoke = %d, %v", n, err)
		}
	case "regenerate":
		fetch(t, device, srv.URL+"/regen")
	}
	time.Sleep(250 * time.Millisecond) // a tenth of IdleTimeout: the slow request's refresh is due
	close(release)
	<-done

	if _, body := secDo(t, "GET", srv.URL+"/", nil, nil, "SESSION_ID="+old); body != "" {
		t.Errorf("the old cookie still finds %q", body)
	}
	if _, err := mem.Load(context.Background(), secHashKey(old)); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("the store holds the old key again: %v", err)
	}
	_, body := fetch(t, device, srv.URL+"/")
	wantRecords, wantWho := 0, ""
	switch end {
	case "revoke from another device":
		wantRecords = 1 // the other device's
	case "regenerate":
		wantRecords, wantWho = 1, "alice"
	}
	if body != wantWho {
		t.Errorf("the device's session after the slow request: %q, want %q", body, wantWho)
	}
	if n := mem.Len(); n != wantRecords {
		t.Errorf("%d records in the store, want %d: the ended session came back", n, wantRecords)
	}
}

// secCASStore is a store with only a read and a put-if-version, as many
// key-value backends offer: its Update is session.UpdateCAS over its own
// Load and Save, which merges a change onto the freshest record and retries
// on conflict. It counts the conflicts. When gate is set, each Update's
// first load waits there for the others, so that they all save against one
// version.
type secCASStore struct {
	mu        sync.Mutex
	recs      map[string]session.Record
	version   int64
	conflicts atomic.Int64
	gate      *sync.WaitGroup
}

// secCASTry is one Update's view of a secCASStore.
type secCASTry struct {
	*secCASStore
	loaded bool
}

func (t *secCASTry) Load(ctx context.Context, key string) (*session.Record, error) {
	rec, err := t.secCASStore.Load(ctx, key)
	if !t.loaded && t.gate != nil {
		t.loaded = true
		t.gate.Done()
		t.gate.Wait()
	}
	return rec, err
}

func (s *secCASStore) live(key string) (session.Record, bool) {
	rec, ok := s.recs[key]
	return rec, ok && time.Now().Before(rec.Expires)
}

func (s *secCASStore) Load(ctx context.Context, key string) (*session.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.live(key)
	if !ok {
		return nil, session.ErrNotFound
	}
	return &rec, nil
}

func (s *secCASStore) Create(ctx context.Context, key string, rec *session.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(key); ok {
		return session.ErrExists
	}
	if s.recs == nil {
		s.recs = map[string]session.Record{}
	}
	s.version++
	rec.Version = s.version
	s.recs[key] = *rec
	return nil
}

func (s *secCASStore) Save(ctx context.Context, key string, rec *session.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.live(key)
	switch {
	case !ok:
		return session.ErrNotFound
	case old.Version != rec.Version:
		s.conflicts.Add(1)
		return session.ErrConflict
	}
	s.version++
	rec.Version = s.version
	s.recs[key] = *rec
	return nil
}

func (s *secCASStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	return session.UpdateCAS(ctx, &secCASTry{secCASStore: s}, key, ch)
}

func (s *secCASStore) Touch(ctx context.Context, key string, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.live(key)
	if !ok {
		return session.ErrNotFound
	}
	rec.Expires = exp
	s.recs[key] = rec
	return nil
}

func (s *secCASStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, key)
	return nil
}

// R18: requests that all loaded the same version and then commit at once
// (a barrier makes sure they do) keep every request's own change,
// additions and deletions alike. The memory store applies each change in
// one atomic step, so n requests cost n updates and no retry; on a
// compare-and-swap store (through UpdateCAS) the n updates all read one
// version before any saves (a second barrier), so n-1 of them conflict and
// merge key by key.
func TestForcedConflictsMergeKeyByKey(t *testing.T) {
	t.Run("memory store", func(t *testing.T) {
		st := &countingStore{Store: newMemory(t)}
		const n = 16
		secForcedConflicts(t, st, n)
		if u := st.updates.Load(); u != n {
			t.Fatalf("%d updates for %d commits, want exactly one each", u, n)
		}
	})
	t.Run("compare-and-swap store", func(t *testing.T) {
		const n = 16
		st := &secCASStore{gate: new(sync.WaitGroup)}
		st.gate.Add(n) // one Update per change; the seed's commit is a Create
		secForcedConflicts(t, st, n)
		if c := st.conflicts.Load(); c < n-1 {
			t.Fatalf("%d conflicts, want at least %d: the test did not test the merge", c, n-1)
		}
		t.Logf("%d conflicts merged", st.conflicts.Load())
	})
}

func secForcedConflicts(t *testing.T, st session.Store, n int) {
	var barrier sync.WaitGroup
	barrier.Add(n)
	a := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{
		"/seed": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("keep", "me")
			for i := 1; i < n; i += 2 {
				s.Set("d"+strconv.Itoa(i), i)
			}
		},
		"/change": func(w http.ResponseWriter, r *http.Request) {
			barrier.Done()
			barrier.Wait() // everyone has loaded the same version
			s := session.FromContext(r.Context())
			i, _ := strconv.Atoi(r.URL.Query().Get("i"))
			if i%2 == 0 {
				s.Set("a"+strconv.Itoa(i), i)
			} else {
				s.Delete("d" + strconv.Itoa(i))
			}
		},
		"/": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.Join(session.FromContext(r.Context()).Keys(), ","))
		},
	})
	a.get("/seed")
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := a.client.Get(a.srv.URL + "/change?i=" + strconv.Itoa(i))
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("request %d: status %d", i, res.StatusCode)
			}
		}()
	}
	wg.Wait()
	want := []string{"keep"}
	for i := 0; i < n; i += 2 {
		want = append(want, "a"+strconv.Itoa(i))
	}
	slices.Sort(want)
	if _, body := a.get("/"); body != strings.Join(want, ",") {
		t.Fatalf("after %d commits on one version: keys %s, want %s", n, body, strings.Join(want, ","))
	}
}

// R19: whichever store write fails, the answer is an error through the
// ErrorHandler, the cookie is left alone, and the session is as it was once
// the store is back.
func TestStoreWriteFailureKeepsSession(t *testing.T) {
	cases := []struct {
		name, op, path string
		wait           time.Duration
	}{
		{"update of a change", "update", "/set", 0},
		{"refresh of the expiry", "touch", "/", 250 * time.Millisecond},
		{"delete at logout", "delete", "/logout", 0},
		{"create at Regenerate", "create", "/regen", 0},
		{"delete of the old id at Regenerate", "delete", "/regen", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &secFaultStore{Store: newMemory(t)}
			a := newApp(t, session.Options{Store: st, IdleTimeout: 2 * time.Second, Cookie: session.CookieOptions{MaxAge: time.Hour}},
				map[string]http.HandlerFunc{
					"/login":  secLogin,
					"/logout": secLogout,
					"/set":    setRoute("user", "mallory"),
					"/regen":  func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).Regenerate() },
					"/":       secWho,
				})
			a.get("/login")
			cookie := a.sessionCookie("SESSION_ID")
			time.Sleep(c.wait)
			st.set(c.op, errSecDown)
			res, _ := a.get(c.path)
			st.set(c.op, nil)
			if res.StatusCode != 500 {
				t.Fatalf("status %d with the store failing, want 500", res.StatusCode)
			}
			if sc := res.Header.Get("Set-Cookie"); sc != "" {
				t.Fatalf("the failed request changed the cookie: %q", sc)
			}
			if err := <-a.errs; !errors.Is(err, errSecDown) {
				t.Fatalf("ErrorHandler got %v", err)
			}
			if a.sessionCookie("SESSION_ID") != cookie {
				t.Fatal("the browser's cookie changed")
			}
			if _, body := a.get("/"); body != "ann" {
				t.Fatalf("after the store came back: %q, want the session as it was", body)
			}
		})
	}
	t.Run("create of a new session", func(t *testing.T) {
		st := &secFaultStore{Store: newMemory(t)}
		a := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{"/login": secLogin})
		st.set("create", errSecDown)
		res, _ := a.get("/login")
		if res.StatusCode != 500 || res.Header.Get("Set-Cookie") != "" {
			t.Fatalf("status %d Set-Cookie %q", res.StatusCode, res.Header.Get("Set-Cookie"))
		}
		if err := <-a.errs; !errors.Is(err, errSecDown) {
			t.Fatalf("ErrorHandler got %v", err)
		}
		if n := st.Store.(*session.MemoryStore).Len(); n != 0 {
			t.Fatalf("%d records after a failed create", n)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		st := &secFaultStore{Store: newMemory(t)}
		var got error
		a := newApp(t, session.Options{Store: st}, map[string]http.HandlerFunc{
			"/login": secLogin,
			"/revoke": func(w http.ResponseWriter, r *http.Request) {
				_, got = session.FromContext(r.Context()).RevokeOwner(true)
			},
			"/": secWho,
		})
		a.get("/login")
		st.set("deleteOwner", errSecDown)
		a.get("/revoke")
		if !errors.Is(got, errSecDown) {
			t.Fatalf("RevokeOwner with the store down: %v", got)
		}
		if _, body := a.get("/"); body != "ann" {
			t.Fatalf("after a failed revoke: %q", body)
		}
	})
}

// R19, R4: a store at its cap refuses new sessions with 503 through the
// default ErrorHandler, and sessions already in it keep working.
func TestFullStoreRefusesNewSessionsOnly(t *testing.T) {
	mem := session.NewMemoryStore(session.MemoryOptions{MaxSessions: 1})
	t.Cleanup(func() { mem.Close() })
	var logs secLogBuffer
	m := secManager(t, session.Options{Store: mem, Logger: secLogger(&logs)})
	srv := secServer(t, m, map[string]http.HandlerFunc{"/login": secLogin, "/": secWho})
	first := newBrowser(t)
	fetch(t, first, srv.URL+"/login")
	res, _ := fetch(t, newBrowser(t), srv.URL+"/login")
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Set-Cookie") != "" {
		t.Fatalf("a new session in a full store: status %d Set-Cookie %q", res.StatusCode, res.Header.Get("Set-Cookie"))
	}
	if _, body := fetch(t, first, srv.URL+"/"); body != "ann" {
		t.Fatalf("the existing session in a full store: %q", body)
	}
	if !strings.Contains(logs.String(), "full") {
		t.Fatalf("the refusal was not logged: %s", logs.String())
	}
}

// TestInvalidIDsAreCounted: refused cookies and unknown ids are counted, so
// a flood of forged or stale ids shows in metrics (R13).
func TestInvalidIDsAreCounted(t *testing.T) {
	st := &countingStore{Store: newMemory(t)}
	m, err := session.New(session.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv := httptest.NewServer(m.Handler(setRoute("user", "ann")))
	defer srv.Close()
	send := func(cookie string) {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	send("")                                                         // no cookie: counts nothing
	send("other=1")                                                  // another cookie: counts nothing
	send("SESSION_ID=short")                                         // rejected
	send("SESSION_ID=" + strings.Repeat("A", 43) + "; SESSION_ID=x") // rejected: two copies
	send("SESSION_ID=" + strings.Repeat("B", 43))                    // well-formed, unknown
	if got, want := m.Stats(), (session.Stats{RejectedIDs: 2, UnknownIDs: 1}); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
	if st.loads.Load() != 1 {
		t.Fatalf("%d loads: only the well-formed id may reach the store", st.loads.Load())
	}
}
