package session_test

// API clients without cookies (Options.Header): the id travels in a request
// header with the cookie's strict checks and signing, a new id comes back
// in the same response header, and a request that carries the header never
// gets a cookie, while browsers on the same server keep their cookies and
// never see a token in a header.

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// headerKinds are the two forms Options.Header takes: Authorization with
// the Bearer scheme, and a header of the application's own with the bare
// token.
var headerKinds = []struct {
	name  string
	empty string // the value that starts a session
	form  func(token string) string
}{
	{"Authorization", "Bearer", func(tok string) string { return "Bearer " + tok }},
	{"Session-Token", "", func(tok string) string { return tok }},
}

// apiClient is a client that keeps no cookies: it sends the value the
// server last gave it in the header, as it was given.
type apiClient struct {
	srv    *server
	header string
	value  string
}

// do requests path with the client's header and takes a new value from the
// answer. It fails the test if the answer sets a cookie.
func (c *apiClient) do(path string) (*http.Response, string) {
	c.srv.t.Helper()
	res, body := c.srv.do("GET", path, nil, http.Header{c.header: {c.value}})
	if sc := res.Header.Values("Set-Cookie"); len(sc) > 0 {
		c.srv.t.Fatalf("GET %s with the %s header got Set-Cookie %q", path, c.header, sc)
	}
	if v, ok := res.Header[c.header]; ok {
		c.value = v[0]
	}
	return res, body
}

// A session carried in the header: an API client starts one with the empty
// token, gets its token in the response header (with no-store and Vary),
// uses it, gets a new one from Regenerate (the old one then names nothing),
// and an empty token at logout. Load reads the header too. A browser on the
// same server gets a cookie and never a token in a header.
func TestHeaderCarriesSession(t *testing.T) {
	t.Parallel()
	for _, kind := range headerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, session.Options{Header: kind.name}, routes{
				"/login":  loginRoute,
				"/regen":  regenerateRoute,
				"/logout": logoutRoute,
				"/":       whoRoute,
			})
			api := &apiClient{srv: srv, header: kind.name, value: kind.empty}
			res, _ := api.do("/login")
			first := api.value
			if !strings.HasPrefix(first, kind.form("")) || len(first) != len(kind.form(""))+43 {
				t.Fatalf("login answered %s: %q, want a token in the request's form", kind.name, first)
			}
			if res.Header.Get("Cache-Control") != "no-store" || !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), kind.name) {
				t.Fatalf("login: Cache-Control %q, Vary %q", res.Header.Get("Cache-Control"), res.Header.Values("Vary"))
			}
			res, body := api.do("/")
			if body != "ann" {
				t.Fatalf("with the token: %q", body)
			}
			if _, sent := res.Header[kind.name]; sent {
				t.Fatal("an unchanged session's token was sent again")
			}

			// Load, outside the middleware, reads the header as the middleware does.
			outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s, err := srv.m.Load(r)
				if err != nil {
					t.Error(err)
					return
				}
				fmt.Fprint(w, s.GetString("user"))
			}))
			t.Cleanup(outside.Close)
			if _, body := roundTrip(t, srv.tr, "GET", outside.URL, nil, http.Header{kind.name: {first}}); body != "ann" {
				t.Fatalf("Load with the header: %q", body)
			}

			api.do("/regen")
			second := api.value
			if second == first || !strings.HasPrefix(second, kind.form("")) {
				t.Fatalf("Regenerate answered %q after %q", second, first)
			}
			if _, body := api.do("/"); body != "ann" {
				t.Fatalf("with the regenerated token: %q", body)
			}
			old := &apiClient{srv: srv, header: kind.name, value: first}
			if _, body := old.do("/"); body != "" {
				t.Fatalf("the token from before Regenerate still works: %q", body)
			}
			api.do("/logout")
			if api.value != kind.empty {
				t.Fatalf("logout answered %q, want the empty token %q", api.value, kind.empty)
			}
			gone := &apiClient{srv: srv, header: kind.name, value: second}
			if _, body := gone.do("/"); body != "" {
				t.Fatalf("the token still works after logout: %q", body)
			}

			// A browser, on the same server, keeps to its cookie.
			res, _ = srv.get("/login")
			if cookieIn(res, cookieName) == nil {
				t.Fatal("a browser got no cookie")
			}
			if _, leaked := res.Header[kind.name]; leaked {
				t.Fatalf("a cookie session's id was sent in %s, where scripts can read it", kind.name)
			}
			if _, body := srv.get("/"); body != "ann" {
				t.Fatalf("the browser's session: %q", body)
			}
			srv.noErr()
		})
	}
}

// A request that carries the header never gets a cookie, whatever happens
// to its session: a new one, a login, Regenerate, a refresh of a
// persistent cookie's expiry, an emptied session, logout, an invalid
// token. It is served from the header alone: a cookie it also carries is
// neither read nor touched.
func TestHeaderSessionsNeverGetCookies(t *testing.T) {
	t.Parallel()
	for _, kind := range headerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			srv := newServerAt(t, clk, session.Options{Header: kind.name, IdleTimeout: time.Hour, Cookie: session.CookieOptions{MaxAge: time.Hour}}, routes{
				"/set":    setRoute("theme", "dark"),
				"/login":  loginRoute,
				"/regen":  regenerateRoute,
				"/logout": logoutRoute,
				"/empty":  func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).Clear() },
				"/":       whoRoute,
			})
			api := &apiClient{srv: srv, header: kind.name, value: kind.empty}
			for _, path := range []string{"/set", "/login", "/regen", "/", "/empty", "/login", "/logout", "/login?u=bob"} {
				api.do(path)                  // fails on any Set-Cookie
				clk.advance(10 * time.Minute) // every request refreshes the expiry
			}
			(&apiClient{srv: srv, header: kind.name, value: kind.form("garbage")}).do("/set")

			srv.get("/login") // the browser's session: ann
			browser := srv.cookie()
			res, body := srv.do("GET", "/", nil, http.Header{kind.name: {api.value}}, cookieName+"="+browser)
			if body != "bob" || len(res.Header.Values("Set-Cookie")) > 0 {
				t.Fatalf("header and cookie of two sessions: %q, Set-Cookie %q", body, res.Header.Values("Set-Cookie"))
			}
			res, _ = srv.do("GET", "/logout", nil, http.Header{kind.name: {kind.empty}}, cookieName+"="+browser)
			if len(res.Header.Values("Set-Cookie")) > 0 {
				t.Fatalf("a header request with a cookie got Set-Cookie %q", res.Header.Values("Set-Cookie"))
			}
			if _, body = srv.get("/"); body != "ann" {
				t.Fatalf("a header request changed the cookie's session: %q", body)
			}
			srv.noErr()
		})
	}
}

// R10, R13 for the header: with signing keys, a forged, unsigned,
// oversized, duplicated or otherwise wrong token gives a fresh session
// without a store call and is counted; the genuine token works; a
// scheme other than Bearer leaves Authorization to the application.
func TestHeaderRefusesForgeries(t *testing.T) {
	t.Parallel()
	for _, kind := range headerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			st := &countingStore{Store: newMemory(t)}
			rs := routes{"/login": loginRoute, "/": whoRoute}
			srv := newServer(t, session.Options{Store: st, Header: kind.name, SigningKeys: [][]byte{signingKey(1)}}, rs)
			other := newServer(t, session.Options{Store: st, Header: kind.name, SigningKeys: [][]byte{signingKey(2)}}, rs)
			api := &apiClient{srv: srv, header: kind.name, value: kind.empty}
			api.do("/login")
			genuine := api.value
			tok := strings.TrimPrefix(genuine, kind.form(""))
			if len(tok) != 87 || tok[43] != '.' {
				t.Fatalf("signed token %q: want id.signature", tok)
			}
			stranger := &apiClient{srv: other, header: kind.name, value: kind.empty}
			stranger.do("/login")
			flipped, flipID := tok[:86]+"A", tok[:42]+"A"
			if flipped == tok {
				flipped = tok[:86] + "B"
			}
			if flipID == tok[:43] {
				flipID = tok[:42] + "B"
			}
			forged := map[string][]string{
				"unsigned id":             {kind.form(tok[:43])},
				"signature changed":       {kind.form(flipped)},
				"signed with another key": {stranger.value},
				"oversized":               {kind.form(strings.Repeat("a", 64<<10))},
				"two copies":              {genuine, genuine},
				"two tokens in one line":  {genuine + ", " + genuine},
				"id changed":              {kind.form(flipID + tok[43:])},
			}
			if kind.name == "Authorization" {
				forged["token without the scheme"] = []string{tok}
				forged["Basic scheme"] = []string{"Basic " + tok}
			}
			calls, rejected := st.calls(), srv.m.Stats().RejectedIDs
			for name, values := range forged {
				res, body := srv.do("GET", "/", nil, http.Header{kind.name: values})
				if body != "" || res.StatusCode != 200 || len(res.Header.Values("Set-Cookie")) > 0 {
					t.Errorf("%s: status %d, session %q, Set-Cookie %q", name, res.StatusCode, body, res.Header.Values("Set-Cookie"))
				}
			}
			if n := st.calls() - calls; n != 0 {
				t.Fatalf("forged tokens cost %d store calls, want 0", n)
			}
			if n := srv.m.Stats().RejectedIDs - rejected; n < 7 {
				t.Fatalf("Stats.RejectedIDs rose by %d for the forged tokens", n)
			}
			if _, body := api.do("/"); body != "ann" {
				t.Fatalf("the genuine token: %q", body)
			}
			if kind.name == "Authorization" {
				lower := &apiClient{srv: srv, header: kind.name, value: "bearer " + tok}
				if _, body := lower.do("/"); body != "ann" {
					t.Fatalf("the scheme in lower case (it is case-insensitive): %q", body)
				}
			}
		})
	}
}

// R13 for the header: key rotation works as for the cookie. While the old
// key is listed, its tokens work and Regenerate answers a token signed with
// the new key; once it is dropped, its tokens are refused without a store
// call.
func TestHeaderSigningKeyRotation(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	oldKey, newKey := signingKey(1), signingKey(2)
	rs := routes{"/login": loginRoute, "/regen": regenerateRoute, "/": whoRoute}
	const h = "Session-Token"
	before := newServer(t, session.Options{Store: st, Header: h, SigningKeys: [][]byte{oldKey}}, rs)
	during := newServer(t, session.Options{Store: st, Header: h, SigningKeys: [][]byte{newKey, oldKey}}, rs)
	after := newServer(t, session.Options{Store: st, Header: h, SigningKeys: [][]byte{newKey}}, rs)
	who := func(srv *server, token string) string {
		_, body := (&apiClient{srv: srv, header: h, value: token}).do("/")
		return body
	}
	api := &apiClient{srv: before, header: h}
	api.do("/login")
	oldToken := api.value
	if who(during, oldToken) != "ann" {
		t.Fatal("an old-key token was refused while the old key is still listed")
	}
	api.srv = during
	api.do("/regen")
	if api.value == oldToken || who(after, api.value) != "ann" || who(before, api.value) != "" {
		t.Fatal("Regenerate during the rotation did not answer a token signed with the new key")
	}
	stale := &apiClient{srv: before, header: h}
	stale.do("/login")
	calls := st.calls()
	if who(after, stale.value) != "" {
		t.Fatal("an old-key token still works after the old key was removed")
	}
	if n := st.calls() - calls; n != 0 {
		t.Fatalf("the removed key's token cost %d store calls, want 0", n)
	}
}

// New refuses a Header that is not a header name or that HTTP already
// uses, naming the setting.
func TestHeaderOptionChecked(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"Cookie", "set-cookie", "Vary", "Content-Length", "Session Token", "Token:", "Tök"} {
		_, err := session.New(session.Options{Header: bad})
		if !errors.Is(err, session.ErrInvalidOptions) || !strings.Contains(err.Error(), "option Header") {
			t.Errorf("Header %q: %v, want ErrInvalidOptions naming option Header", bad, err)
		}
	}
	for _, good := range []string{"Authorization", "authorization", "Session-Token", "x-api-session"} {
		m, err := session.New(session.Options{Header: good})
		if err != nil {
			t.Errorf("Header %q refused: %v", good, err)
			continue
		}
		m.Close()
	}
}
