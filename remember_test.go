package session_test

// "Remember me": a session's own idle timeout, lifetime and kind of cookie
// (Session.Remember, Session.ForgetOnClose), through real HTTP on a clock
// the tests move. The routes here serve the device tests too.

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// accountRoutes are a login that can remember the user, and the pages of
// "your devices":
//
//	/login?u=ann&remember=48h,240h&label=Laptop   (remember=no: ForgetOnClose)
//	/remember?d=48h,240h, /forget, /label?l=..., /who, /regen, /logout
//	/devices (the list as JSON), /end?h=handle, /others (all but this one)
func accountRoutes() routes {
	return routes{
		"/login": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			q := r.URL.Query()
			u := q.Get("u")
			if u == "" {
				u = "ann"
			}
			s.Regenerate()
			s.SetOwner(u)
			s.Set("user", u)
			rememberAs(s, q.Get("remember"))
			if l := q.Get("label"); l != "" {
				s.SetLabel(l)
			}
			io.WriteString(w, u)
		},
		"/remember": func(w http.ResponseWriter, r *http.Request) {
			rememberAs(session.FromContext(r.Context()), r.URL.Query().Get("d"))
		},
		"/forget": func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).ForgetOnClose() },
		"/label": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.SetLabel(r.URL.Query().Get("l"))
			io.WriteString(w, s.Label())
		},
		"/who":    whoRoute,
		"/regen":  regenerateRoute,
		"/logout": logoutRoute,
		"/devices": func(w http.ResponseWriter, r *http.Request) {
			list, err := session.FromContext(r.Context()).Devices()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			json.NewEncoder(w).Encode(list)
		},
		"/end": func(w http.ResponseWriter, r *http.Request) {
			err := session.FromContext(r.Context()).EndDevice(r.URL.Query().Get("h"))
			switch {
			case errors.Is(err, session.ErrNotFound):
				http.Error(w, err.Error(), http.StatusNotFound)
			case err != nil:
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		},
		"/others": func(w http.ResponseWriter, r *http.Request) {
			n, err := session.FromContext(r.Context()).RevokeOwner(true)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			json.NewEncoder(w).Encode(n)
		},
	}
}

// rememberAs applies a remember parameter: "idle,lifetime" (Go durations)
// calls Remember, "no" ForgetOnClose, "" nothing.
func rememberAs(s *session.Session, v string) {
	switch v {
	case "":
	case "no":
		s.ForgetOnClose()
	default:
		idle, lifetime, _ := strings.Cut(v, ",")
		a, _ := time.ParseDuration(idle)
		b, _ := time.ParseDuration(lifetime)
		s.Remember(a, b)
	}
}

// maxAge returns the session cookie a response sets, failing the test if
// there is none, and its Max-Age as a duration (0: a browser-session
// cookie).
func maxAge(t *testing.T, res *http.Response) (*http.Cookie, time.Duration) {
	t.Helper()
	ck := cookieIn(res, cookieName)
	if ck == nil {
		t.Fatalf("no session cookie: %q", res.Header.Values("Set-Cookie"))
	}
	if ck.MaxAge == 0 && !ck.Expires.IsZero() {
		t.Fatalf("cookie with Expires but no Max-Age: %q", res.Header.Values("Set-Cookie"))
	}
	return ck, time.Duration(ck.MaxAge) * time.Second
}

// TestRememberMe: a remembered login gets a persistent cookie and outlives
// the Options' idle timeout, up to its own; a plain one keeps the Options'
// browser-session cookie and idle timeout. The server enforces both.
func TestRememberMe(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := newServerAt(t, clk, session.Options{IdleTimeout: time.Hour, Lifetime: 24 * time.Hour}, accountRoutes())

	res, _ := srv.send("/login?remember=168h,720h")
	remembered, age := maxAge(t, res)
	if age != 168*time.Hour {
		t.Errorf("remembered cookie Max-Age = %v, want the 168h idle timeout", age)
	}
	res, _ = srv.send("/login?u=bob")
	plain, age := maxAge(t, res)
	if age != 0 {
		t.Errorf("plain login's cookie Max-Age = %v, want a browser-session cookie", age)
	}

	clk.advance(2 * time.Hour) // past the Options' idle timeout
	if _, body := srv.sendID("/who", remembered.Value); body != "ann" {
		t.Fatalf("remembered session after 2h idle: %q, want ann", body)
	}
	if _, body := srv.sendID("/who", plain.Value); body != "" {
		t.Fatalf("plain session after 2h idle: %q, want it ended", body)
	}
	// 2h in, no refresh was due (a tenth of 168h is 16.8h): the expiry is
	// still 168h after the login, and idle past it the session ends.
	clk.advance(166*time.Hour + time.Second)
	if _, body := srv.sendID("/who", remembered.Value); body != "" {
		t.Fatalf("remembered session idle past its own timeout: %q, want it ended", body)
	}
}

// TestRememberCookieMaxAge: what Remember's arguments give: zero means the
// Options', the idle timeout is cut to the lifetime, and both are capped
// by MaxRememberLifetime (default 30 days, or Lifetime if longer).
func TestRememberCookieMaxAge(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	for _, c := range []struct {
		name     string
		opts     session.Options
		remember string
		want     time.Duration
	}{
		{"zero: the Options'", session.Options{}, "0s,0s", 24 * time.Hour},
		{"negative: the Options'", session.Options{IdleTimeout: 2 * time.Hour}, "-1h,-1h", 2 * time.Hour},
		{"idle within lifetime", session.Options{}, "48h,240h", 48 * time.Hour},
		{"idle cut to lifetime", session.Options{}, "300h,240h", 240 * time.Hour},
		{"capped at 30 days by default", session.Options{}, "8760h,8760h", 30 * day},
		{"capped at a longer Lifetime", session.Options{IdleTimeout: day, Lifetime: 60 * day}, "8760h,8760h", 60 * day},
		{"capped as configured", session.Options{MaxRememberLifetime: 14 * day}, "8760h,8760h", 14 * day},
		{"a Remember of the Options' lifetime", session.Options{}, "0s,168h", 24 * time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := newServerAt(t, newClock(), c.opts, accountRoutes())
			res, _ := srv.send("/login?remember=" + c.remember)
			if _, age := maxAge(t, res); age != c.want {
				t.Errorf("Max-Age = %v, want %v", age, c.want)
			}
		})
	}
}

// TestRememberLifetimeIsAbsolute: activity does not extend a remembered
// session past its own lifetime, counted from its creation, and the
// cookie's Max-Age never reaches past it.
func TestRememberLifetimeIsAbsolute(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := newServerAt(t, clk, session.Options{}, accountRoutes())
	res, _ := srv.send("/login?remember=48h,240h")
	ck, _ := maxAge(t, res)
	for at := 40 * time.Hour; at <= 200*time.Hour; at += 40 * time.Hour {
		clk.advance(40 * time.Hour)
		res, body := srv.sendID("/who", ck.Value)
		if body != "ann" {
			t.Fatalf("at %v: %q, want ann", at, body)
		}
		// Each visit refreshes the expiry and sends the cookie again: 48h
		// more, never past the 240h lifetime.
		if _, age := maxAge(t, res); age != min(48*time.Hour, 240*time.Hour-at) {
			t.Errorf("at %v: Max-Age = %v, want %v", at, age, min(48*time.Hour, 240*time.Hour-at))
		}
	}
	clk.advance(40 * time.Hour) // 240h: the lifetime is over
	if _, body := srv.sendID("/who", ck.Value); body != "" {
		t.Fatalf("remembered session past its lifetime: %q, want it ended", body)
	}
}

// TestLoweredMaxRememberLifetimeShortensSessions: a server-side limit
// applies to the sessions remembered before it was lowered: a server with
// a 10-day MaxRememberLifetime (the same app, redeployed) ends, 10 days
// after its creation, a session that it remembered for 30 days under the
// default.
func TestLoweredMaxRememberLifetimeShortensSessions(t *testing.T) {
	t.Parallel()
	clk := newClock()
	st := clk.memoryStore(t, session.MemoryOptions{})
	before := newServerAt(t, clk, session.Options{Store: st}, accountRoutes())
	after := newServerAt(t, clk, session.Options{Store: st, MaxRememberLifetime: 10 * 24 * time.Hour}, accountRoutes())
	res, _ := before.send("/login?remember=720h,720h")
	ck, _ := maxAge(t, res)
	clk.advance(9 * 24 * time.Hour)
	if _, body := after.sendID("/who", ck.Value); body != "ann" {
		t.Fatalf("after 9 days: %q, want ann", body)
	}
	clk.advance(24 * time.Hour)
	if _, body := after.sendID("/who", ck.Value); body != "" {
		t.Fatalf("10 days after creation, under a 10-day cap: %q, want it ended", body)
	}
}

// TestRememberSurvivesRegenerate: a new id keeps the session's own
// lifetime, its kind of cookie and its label and handle, whether the store
// renames the record in one step (the memory store is a Renamer) or the
// middleware creates the new record and deletes the old one.
func TestRememberSurvivesRegenerate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		store func(*clock, *testing.T) session.Store
	}{
		{"Renamer", func(clk *clock, t *testing.T) session.Store { return clk.memoryStore(t, session.MemoryOptions{}) }},
		{"create and delete", func(clk *clock, t *testing.T) session.Store {
			return &countingStore{Store: clk.memoryStore(t, session.MemoryOptions{})} // an OwnerStore, not a Renamer
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			st := c.store(clk, t)
			srv := newServerAt(t, clk, session.Options{Store: st, IdleTimeout: time.Hour}, accountRoutes())
			res, _ := srv.send("/login?remember=48h,240h")
			old, _ := maxAge(t, res)
			clk.advance(30 * time.Minute)
			res, _ = srv.sendID("/regen", old.Value)
			ck, age := maxAge(t, res)
			if ck.Value == old.Value || age != 48*time.Hour {
				t.Fatalf("Regenerate gave cookie %v with Max-Age %v; want a new id and the remembered 48h", ck.Value != old.Value, age)
			}
			if _, body := srv.sendID("/who", old.Value); body != "" {
				t.Fatalf("old id after Regenerate: %q", body)
			}
			clk.advance(3 * time.Hour) // past the Options' idle timeout
			if _, body := srv.sendID("/who", ck.Value); body != "ann" {
				t.Fatalf("regenerated remembered session after 3h idle: %q, want ann", body)
			}
		})
	}
	t.Run("label and handle", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, session.Options{}, accountRoutes())
		res, _ := srv.send("/login?remember=48h,240h&label=Laptop")
		old, _ := maxAge(t, res)
		before := devicesOf(t, srv, old.Value)
		res, _ = srv.sendID("/regen", old.Value)
		ck, _ := maxAge(t, res)
		after := devicesOf(t, srv, ck.Value)
		if len(before) != 1 || len(after) != 1 || after[0].Handle != before[0].Handle || after[0].Label != "Laptop" || !after[0].Current {
			t.Fatalf("devices before Regenerate %+v, after %+v; want one, the same handle and label, current", before, after)
		}
	})
}

// TestForgetOnClose: a browser-session cookie for this session whatever
// Cookie.MaxAge says, never sent again with a Max-Age when the expiry is
// refreshed; and on a remembered session, back to the Options' idle
// timeout.
func TestForgetOnClose(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := newServerAt(t, clk, session.Options{Cookie: session.CookieOptions{MaxAge: 24 * time.Hour}}, accountRoutes())
	res, _ := srv.send("/login")
	if _, age := maxAge(t, res); age != 24*time.Hour {
		t.Fatalf("plain login under Cookie.MaxAge: Max-Age %v, want 24h", age)
	}
	res, _ = srv.send("/login?remember=no")
	ck, age := maxAge(t, res)
	if age != 0 {
		t.Fatalf("ForgetOnClose: Max-Age %v, want a browser-session cookie", age)
	}
	clk.advance(3 * time.Hour) // a refresh is due (a tenth of 24h)
	res, body := srv.sendID("/who", ck.Value)
	if body != "ann" || len(res.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("refresh of a browser-session cookie: %q, Set-Cookie %q; want ann and no cookie", body, res.Header.Values("Set-Cookie"))
	}

	res, _ = srv.sendID("/remember?d=48h,240h", ck.Value)
	if _, age := maxAge(t, res); age != 48*time.Hour {
		t.Fatalf("Remember after ForgetOnClose: Max-Age %v, want 48h", age)
	}
	res, _ = srv.sendID("/forget", ck.Value)
	if _, age := maxAge(t, res); age != 0 {
		t.Fatalf("ForgetOnClose after Remember: Max-Age %v, want a browser-session cookie", age)
	}
	clk.advance(25 * time.Hour)
	if _, body := srv.sendID("/who", ck.Value); body != "" {
		t.Fatalf("forgotten session idle past the Options' 24h: %q, want it ended", body)
	}
}

// TestRememberUnchangedCostsNoWrite: a handler may call Remember and
// SetLabel on every request: what the record has already costs no write.
func TestRememberUnchangedCostsNoWrite(t *testing.T) {
	t.Parallel()
	clk := newClock()
	st := &countingStore{Store: clk.memoryStore(t, session.MemoryOptions{})}
	rs := accountRoutes()
	rs["/again"] = func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Remember(48*time.Hour, 240*time.Hour)
		s.SetLabel("Laptop")
	}
	srv := newServerAt(t, clk, session.Options{Store: st}, rs)
	res, _ := srv.send("/login?remember=48h,240h&label=Laptop")
	ck, _ := maxAge(t, res)
	st.reset()
	for range 3 {
		if res, _ := srv.sendID("/again", ck.Value); len(res.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("unchanged Remember sent a cookie: %q", res.Header.Values("Set-Cookie"))
		}
	}
	if n := st.writes(); n != 0 {
		t.Errorf("%d store writes for a Remember and a label the session has already", n)
	}
}

// TestMaxRememberLifetimeOption: New refuses a negative MaxRememberLifetime
// and one shorter than Lifetime, naming both.
func TestMaxRememberLifetimeOption(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		opts session.Options
		want string
	}{
		{session.Options{MaxRememberLifetime: -time.Hour}, "MaxRememberLifetime must not be negative"},
		{session.Options{MaxRememberLifetime: 24 * time.Hour}, "MaxRememberLifetime (24h0m0s) is shorter than Lifetime (168h0m0s)"},
		{session.Options{MaxRememberLifetime: 48 * time.Hour, Lifetime: 72 * time.Hour}, "shorter than Lifetime (72h0m0s)"},
	} {
		_, err := session.New(c.opts)
		if !errors.Is(err, session.ErrInvalidOptions) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want ErrInvalidOptions saying %q", c.opts, err, c.want)
		}
	}
	m, err := session.New(session.Options{MaxRememberLifetime: 7 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("MaxRememberLifetime equal to Lifetime: %v", err)
	}
	m.Close()
}
