package session_test

// Several Managers in one app: an admin area with its own cookie and store
// inside the main app. Each Manager's session is reachable with its own
// FromContext; the package's FromContext is the innermost.

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/seed013449c2/session"
)

// The admin area's middleware runs inside the app's: a request to it has
// both sessions, each reachable with its Manager's FromContext, and the
// package FromContext gives the admin one (the innermost). One request
// changes both, and each is saved in its own store under its own cookie.
// Outside the admin area the admin Manager has no session. The app's
// Handler nested again inside the admin area reuses the app's session (no
// second load), and the app's Locked there fails loudly, since the handler
// would see the admin session.
func TestNestedManagers(t *testing.T) {
	t.Parallel()
	appStore, adminStore := &countingStore{Store: newMemory(t)}, newMemory(t)
	admin, err := session.New(session.Options{Store: adminStore, CookieName: "ADMIN"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var app *server
	describe := func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		get := func(s *session.Session, key string) string {
			if s == nil {
				return "(none)"
			}
			return s.GetString(key)
		}
		a, ad, inner := app.m.FromContext(ctx), admin.FromContext(ctx), session.FromContext(ctx)
		fmt.Fprintf(w, "user=%s admin=%s innermost=%s", get(a, "user"), get(ad, "admin"), get(inner, "admin"))
	}
	adminMux := http.NewServeMux()
	adminMux.HandleFunc("/admin/login", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		admin.FromContext(ctx).Set("admin", "root")
		app.m.FromContext(ctx).Set("audit", "admin login")
	})
	adminMux.HandleFunc("/admin/", describe)
	adminMux.Handle("/admin/again", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Set aside: the app's Handler again, inside the admin area.
		var outer *session.Session
		h := func(w http.ResponseWriter, r *http.Request) {
			if s := app.m.FromContext(r.Context()); s != outer {
				t.Error("the app's Handler nested again loaded a second session")
			}
			describe(w, r)
		}
		outer = app.m.FromContext(r.Context())
		app.m.Handler(http.HandlerFunc(h)).ServeHTTP(w, r)
	}))
	app = newServer(t, session.Options{Store: appStore}, routes{
		"/login": setRoute("user", "ann"),
		"/admin/": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/admin/locked" {
				admin.Handler(app.m.Locked(http.HandlerFunc(whoRoute))).ServeHTTP(w, r)
				return
			}
			admin.Handler(adminMux).ServeHTTP(w, r)
		},
		"/": func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			if admin.FromContext(ctx) != nil || app.m.FromContext(ctx) != session.FromContext(ctx) {
				t.Error("outside the admin area: an admin session, or the app's is not the innermost")
			}
			describe(w, r)
		},
	})

	app.get("/login")
	res, _ := app.get("/admin/login")
	if cookieIn(res, "ADMIN") == nil || cookieIn(res, cookieName) != nil {
		t.Fatalf("admin login: Set-Cookie %q, want the new ADMIN cookie only (the app's session only changed)", res.Header.Values("Set-Cookie"))
	}
	if _, body := app.get("/admin/"); body != "user=ann admin=root innermost=root" {
		t.Fatalf("in the admin area: %q", body)
	}
	if _, body := app.get("/"); body != "user=ann admin=(none) innermost=" {
		t.Fatalf("outside it: %q", body)
	}
	if s, err := app.m.LoadID(t.Context(), app.cookie()); err != nil || s.GetString("audit") != "admin login" || s.Has("admin") {
		t.Fatalf("the app's session in its store: %v", err)
	}
	if s, err := admin.LoadID(t.Context(), jarCookie(app.browser, app.URL, "ADMIN")); err != nil || s.GetString("admin") != "root" || s.Has("user") {
		t.Fatalf("the admin session in its store: %v", err)
	}
	appStore.reset()
	if _, body := app.get("/admin/again"); body != "user=ann admin=root innermost=root" {
		t.Fatalf("the app's Handler nested in the admin area: %q", body)
	}
	if n := appStore.loads.Load(); n != 1 {
		t.Fatalf("the app's session was loaded %d times in one request, want 1", n)
	}
	if res, _ := app.get("/admin/locked"); res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("the app's Locked inside the admin Handler answered %d, want 500", res.StatusCode)
	}
	if err := app.err(); err == nil {
		t.Fatal("no error for Locked inside another Manager's Handler")
	}
}
