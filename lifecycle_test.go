package session_test

// How a session ends or changes its id: Regenerate at a privilege change
// (R5), logout (R6), a session emptied of its values, and revoking every
// session of a user (R15).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// Regenerate gives a new id and keeps the data, the old id finds nothing;
// Destroy and a session emptied of its values expire the cookie and leave
// no record.
func TestDestroyRegenerateAndEmpty(t *testing.T) {
	t.Parallel()
	st := newMemory(t)
	rs := routes{
		"/set":    setRoute("user", "ann"),
		"/regen":  regenerateRoute,
		"/logout": logoutRoute,
		"/empty":  func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).Delete("user") },
		"/":       showRoute,
	}
	srv := newServer(t, session.Options{Store: st}, rs)
	srv.get("/set")
	before := srv.cookie()
	res, _ := srv.get("/regen")
	after := srv.cookie()
	if after == "" || after == before || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("regenerate: id %q -> %q", before, after)
	}
	if _, body := srv.get("/"); !strings.Contains(body, "ann") {
		t.Fatalf("regenerate lost the data: %s", body)
	}
	if _, body := srv.sendID("/", before); strings.TrimSpace(body) != "{}" {
		t.Fatalf("the old id still works after Regenerate: %s", body)
	}
	res, _ = srv.get("/logout")
	if sc := res.Header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("logout Set-Cookie %q, want an expired cookie", sc)
	}
	if _, body := srv.sendID("/", after); strings.TrimSpace(body) != "{}" {
		t.Fatalf("the id still works after Destroy: %s", body)
	}
	srv.get("/set")
	res, _ = srv.get("/empty")
	if sc := res.Header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("emptied session: Set-Cookie %q, want an expired cookie", sc)
	}
	if n := st.Len(); n != 0 {
		t.Fatalf("%d records left after logout and emptying", n)
	}
}

// R5: Regenerate gives a new id, keeps the data and the owner, deletes the
// old record server-side, and does not extend the absolute lifetime.
func TestRegenerateKeepsDataOwnerAndDeadline(t *testing.T) {
	t.Parallel()
	clk := newClock()
	mem := clk.memoryStore(t, session.MemoryOptions{})
	srv := newServerAt(t, clk, session.Options{Store: mem}, routes{
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
	srv.get("/set")
	oldID := srv.cookie()
	ctx := context.Background()
	oldRec, err := mem.Load(ctx, hashedKey(oldID))
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour) // so that a regenerated Created or Deadline would differ
	res, _ := srv.get("/elevate")
	newID := srv.cookie()
	if newID == "" || newID == oldID || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Regenerate: id %q -> %q, Cache-Control %q", oldID, newID, res.Header.Get("Cache-Control"))
	}
	if _, err := mem.Load(ctx, hashedKey(oldID)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the old record is still in the store: %v", err)
	}
	rec, err := mem.Load(ctx, hashedKey(newID))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Owner != "u1" || !rec.Created.Equal(oldRec.Created) || !rec.Deadline.Equal(oldRec.Deadline) {
		t.Fatalf("regenerated record: owner %q created %v deadline %v; want u1, %v, %v",
			rec.Owner, rec.Created, rec.Deadline, oldRec.Created, oldRec.Deadline)
	}
	if _, body := srv.get("/"); strings.TrimSpace(body) != `{"role":"admin","user":"ann"}` {
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
	t.Parallel()
	mem := newMemory(t)
	srv := newServer(t, session.Options{Store: mem, Cookie: session.CookieOptions{Path: "/app", MaxAge: time.Hour}}, routes{
		"/app/login":  loginRoute,
		"/app/logout": logoutRoute,
		"/app/":       whoRoute,
	})
	res, _ := srv.send("/app/login")
	set := cookieIn(res, cookieName)
	if set == nil || set.Path != "/app" || set.MaxAge <= 0 {
		t.Fatalf("login Set-Cookie %q", res.Header.Values("Set-Cookie"))
	}
	id := set.Value
	res, _ = srv.sendID("/app/logout", id)
	gone := cookieIn(res, cookieName)
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
	if _, err := mem.Load(context.Background(), hashedKey(id)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the record survived logout: %v", err)
	}
	// A stolen copy of the cookie, replayed after logout.
	res, body := srv.sendID("/app/", id)
	if body != "" || res.Header.Get("Set-Cookie") != "" {
		t.Fatalf("the old cookie still finds %q", body)
	}
	res, _ = srv.sendID("/app/login", id)
	if c := cookieIn(res, cookieName); c == nil || c.Value == id {
		t.Fatalf("a login with the dead cookie reused its id: %q", res.Header.Values("Set-Cookie"))
	}
}

// R15: revoke everywhere. RevokeOwner(true) ends the owner's other devices
// and keeps this one; RevokeOwner(false) ends this one too; Manager.Revoke
// does it from outside any request. Other owners are untouched.
func TestRevokeEverywhere(t *testing.T) {
	t.Parallel()
	mem := newMemory(t)
	revoke := func(keepCurrent bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			n, err := session.FromContext(r.Context()).RevokeOwner(keepCurrent)
			fmt.Fprint(w, n, err)
		}
	}
	srv := newServer(t, session.Options{Store: mem}, routes{
		"/login":         loginRoute,
		"/revoke-others": revoke(true),
		"/revoke-all":    revoke(false),
		"/":              whoRoute,
	})
	laptop, phone, bob := newBrowser(t), newBrowser(t), newBrowser(t)
	visit := func(b *http.Client, path string) (*http.Response, string) { return fetch(t, b, srv.URL+path) }
	who := func(b *http.Client) string {
		_, body := visit(b, "/")
		return body
	}
	visit(laptop, "/login?u=alice")
	visit(phone, "/login?u=alice")
	visit(bob, "/login?u=bob")

	if _, body := visit(laptop, "/revoke-others"); body != "1 <nil>" {
		t.Fatalf("RevokeOwner(true) answered %q, want 1 session ended", body)
	}
	if who(phone) != "" || who(laptop) != "alice" || who(bob) != "bob" {
		t.Fatalf("after revoke-others: phone %q laptop %q bob %q", who(phone), who(laptop), who(bob))
	}

	visit(phone, "/login?u=alice")
	res, body := visit(laptop, "/revoke-all")
	if body != "1 <nil>" || !strings.Contains(res.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("RevokeOwner(false) answered %q with Set-Cookie %q", body, res.Header.Get("Set-Cookie"))
	}
	if who(phone) != "" || who(laptop) != "" || who(bob) != "bob" {
		t.Fatalf("after revoke-all: phone %q laptop %q bob %q", who(phone), who(laptop), who(bob))
	}
	if n := mem.Len(); n != 1 {
		t.Fatalf("%d records left, want bob's only", n)
	}

	visit(laptop, "/login?u=alice")
	visit(phone, "/login?u=alice")
	ctx := context.Background()
	if n, err := srv.m.Revoke(ctx, "alice"); n != 2 || err != nil {
		t.Fatalf("Manager.Revoke = %d, %v; want 2 sessions", n, err)
	}
	if who(phone) != "" || who(laptop) != "" || who(bob) != "bob" {
		t.Fatalf("after Manager.Revoke: phone %q laptop %q bob %q", who(phone), who(laptop), who(bob))
	}
	for _, owner := range []string{"", "nobody", "ALICE"} {
		if n, err := srv.m.Revoke(ctx, owner); n != 0 || err != nil {
			t.Fatalf("Revoke(%q) = %d, %v", owner, n, err)
		}
	}
	if who(bob) != "bob" {
		t.Fatal("bob's session ended by revoking other owners")
	}
}

// On a store without the optional OwnerStore, sessions work, but an owner
// cannot be stored (the commit fails loudly with errors.ErrUnsupported
// instead of storing an owner that no revoke could find) and revoking
// fails the same way.
func TestOwnerNeedsOwnerStore(t *testing.T) {
	t.Parallel()
	var revokeErr error
	srv := newServer(t, session.Options{Store: plainStore{newMemory(t)}}, routes{
		"/set":   setRoute("user", "ann"),
		"/login": loginRoute,
		"/owner": func(w http.ResponseWriter, r *http.Request) { session.FromContext(r.Context()).SetOwner("ann") },
		"/revoke": func(w http.ResponseWriter, r *http.Request) {
			_, revokeErr = session.FromContext(r.Context()).RevokeOwner(true)
		},
		"/": whoRoute,
	})
	if res, _ := srv.get("/set"); res.StatusCode != 200 {
		t.Fatalf("a session without owner: status %d", res.StatusCode)
	}
	for _, path := range []string{"/owner", "/login"} {
		res, _ := srv.get(path)
		if res.StatusCode != 500 {
			t.Fatalf("%s: status %d, want 500", path, res.StatusCode)
		}
		if err := srv.err(); !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "OwnerStore") {
			t.Fatalf("%s: ErrorHandler got %v, want errors.ErrUnsupported naming OwnerStore", path, err)
		}
	}
	if _, body := srv.get("/"); body != "ann" {
		t.Fatalf("the session after the refused owner: %q", body)
	}
	srv.get("/revoke")
	if revokeErr != nil {
		t.Fatalf("RevokeOwner of a session without owner: %v", revokeErr)
	}
	if _, err := srv.m.Revoke(t.Context(), "ann"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Manager.Revoke: %v, want errors.ErrUnsupported", err)
	}
}
