package session_test

// Misuse fails loudly: options that cannot be honoured (R9's cookie rules
// among them) are an error from New that names the setting, and through
// Middleware every request fails closed.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// R9: a configuration that browsers would silently refuse, or that
// contradicts itself, is an error from New that wraps ErrInvalidOptions and
// names the setting; through Middleware it is logged and every request
// fails closed with a 500, the handler never running.
func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts session.Options
		want []string // in the error; the first also in the log
	}{
		{"__Host- without Secure", session.Options{CookieName: "__Host-sid"}, []string{"__Host-sid", "Secure"}},
		{"__Host- with Domain", session.Options{CookieName: "__Host-sid", Cookie: session.CookieOptions{Secure: true, Domain: "example.test"}}, []string{"__Host-sid", "Domain"}},
		{"__Host- with Path", session.Options{CookieName: "__Host-sid", Cookie: session.CookieOptions{Secure: true, Path: "/app"}}, []string{"__Host-sid", "Path"}},
		{"__Secure- without Secure", session.Options{CookieName: "__Secure-sid"}, []string{"__Secure-sid", "Secure"}},
		{"SameSite None without Secure", session.Options{Cookie: session.CookieOptions{SameSite: http.SameSiteNoneMode}}, []string{"SameSite", "Secure"}},
		{"Partitioned without Secure", session.Options{Cookie: session.CookieOptions{Partitioned: true}}, []string{"Partitioned", "Secure"}},
		{"Path with a semicolon", session.Options{Cookie: session.CookieOptions{Path: "/a;Domain=evil.test"}}, []string{"Path"}},
		{"bad cookie name", session.Options{CookieName: "a b"}, []string{"CookieName"}},
		{"negative MaxAge", session.Options{Cookie: session.CookieOptions{MaxAge: -time.Second}}, []string{"MaxAge"}},
		{"negative IdleTimeout", session.Options{IdleTimeout: -1}, []string{"IdleTimeout"}},
		{"IdleTimeout past the default Lifetime", session.Options{IdleTimeout: 8 * 24 * time.Hour}, []string{"IdleTimeout", "Lifetime"}},
		{"IdleTimeout past Lifetime", session.Options{IdleTimeout: 2 * time.Hour, Lifetime: time.Hour}, []string{"IdleTimeout", "Lifetime"}},
		{"negative StoreTimeout", session.Options{StoreTimeout: -time.Second}, []string{"StoreTimeout"}},
		{"negative CommitTimeout", session.Options{CommitTimeout: -time.Second}, []string{"CommitTimeout"}},
		{"signing key too short", session.Options{SigningKeys: [][]byte{signingKey(1), []byte("short")}}, []string{"SigningKeys[1]"}},
		{"Lock without a Locker", session.Options{Store: plainStore{newMemory(t)}, Lock: true}, []string{"Lock", "Locker"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m, err := session.New(c.opts)
			if !errors.Is(err, session.ErrInvalidOptions) {
				t.Fatalf("New: %v, want ErrInvalidOptions", err)
			}
			if m != nil {
				t.Error("New returned a Manager with its error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			var logs logBuffer
			opts := c.opts
			opts.Logger = logs.logger()
			h := session.Middleware(opts)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				t.Error("handler ran under an invalid configuration")
			}))
			srv := httptest.NewServer(h)
			defer srv.Close()
			if res, _ := get(t, srv.URL); res.StatusCode != 500 {
				t.Errorf("status %d under an invalid configuration, want 500", res.StatusCode)
			}
			if !strings.Contains(logs.String(), c.want[0]) {
				t.Errorf("the configuration error was not logged: %q", logs.String())
			}
		})
	}
	ok := session.Options{CookieName: "__Host-sid", Cookie: session.CookieOptions{Secure: true}}
	m, err := session.New(ok)
	if err != nil {
		t.Fatalf("valid __Host- options refused: %v", err)
	}
	m.Close()
}

// Outside the middleware there is no session: FromContext says so with nil,
// and a method called on that nil panics with a message that names the
// missing middleware rather than a bare nil dereference.
func TestFromContextOutsideMiddleware(t *testing.T) {
	t.Parallel()
	s := session.FromContext(context.Background())
	if s != nil {
		t.Fatalf("FromContext outside the middleware = %v", s)
	}
	for name, call := range map[string]func(){
		"Get":        func() { s.Get("k") },
		"Set":        func() { _ = s.Set("k", 1) },
		"Add":        func() { _, _ = s.Add("k", 1) },
		"ID":         func() { s.ID() },
		"Destroy":    func() { s.Destroy() },
		"Regenerate": func() { s.Regenerate() },
		"Keys":       func() { s.Keys() },
	} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, "session.Middleware") {
					t.Errorf("%s on the nil session panicked with %q; want a message naming session.Middleware", name, msg)
				}
			}()
			call()
		}()
	}
}
