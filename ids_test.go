package session_test

// Session ids: how they are drawn (R1, R2), that the server adopts only the
// ones it issued (R3), that garbage costs nothing (R4), that the store sees
// only their hash (R12), and, with SigningKeys, that a cookie is id.HMAC
// whose forgeries are refused before the store is asked, with keys that
// can be rotated (R13); refused ids are counted. FuzzVerifySigned
// (fuzz_test.go) explores the signature further.

import (
	"crypto/sha256"
	"encoding/base64"
	"math/bits"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// R1, R2: ids are 256 random bits from a CSPRNG, base64url, never repeated,
// with nothing predictable in them, not even a prefix.
func TestIDsAre256RandomBits(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	srv := newServer(t, session.Options{Store: st}, routes{"/": func(w http.ResponseWriter, r *http.Request) {
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
		id := srv.issue("/")
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
		if !keySet[hashedKey(id)] {
			t.Fatalf("no store key is the SHA-256 of id %q", id)
		}
	}
}

// R3: session fixation. Whatever id an attacker plants in the victim's
// browser (one of their own live sessions, a made-up one, a logged-out one,
// an expired one), the victim's login gets a fresh id, and the planted
// cookie sees nothing of the victim.
func TestFixationPlantedIDNeverAdopted(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const idle = 30 * time.Minute
	srv := newServerAt(t, clk, session.Options{IdleTimeout: idle}, routes{
		"/visit":  setRoute("cart", 1),
		"/login":  loginRoute,
		"/logout": logoutRoute,
		"/":       whoRoute,
	})
	cases := []struct {
		name  string
		plant func() string
	}{
		{"attacker's live session", func() string { return srv.issue("/visit") }},
		{"made-up id", func() string { return strings.Repeat("P", 43) }},
		{"logged-out id", func() string {
			id := srv.issue("/visit")
			srv.sendID("/logout", id)
			return id
		}},
		{"expired id", func() string {
			id := srv.issue("/visit")
			clk.advance(idle + time.Minute)
			return id
		}},
	}
	// Not parallel: the expired case moves the clock they share.
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			planted := c.plant()
			victim := newBrowser(t)
			u, _ := url.Parse(srv.URL)
			victim.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: planted, Path: "/"}})
			res, _ := fetch(t, victim, srv.URL+"/login?u=victim")
			got := cookieIn(res, cookieName)
			if got == nil || got.Value == planted {
				t.Fatalf("login kept the planted id (Set-Cookie %q)", res.Header.Values("Set-Cookie"))
			}
			if _, body := fetch(t, victim, srv.URL+"/"); body != "victim" {
				t.Fatalf("victim not logged in: %q", body)
			}
			if _, body := srv.sendID("/", planted); body != "" {
				t.Fatalf("the planted cookie sees the victim's session: %q", body)
			}
		})
	}
}

// R3: strict mode without a login: a request that stores data under an id
// the server never issued gets a fresh id, not the planted one.
func TestUnknownIDNeverAdopted(t *testing.T) {
	t.Parallel()
	srv := newServer(t, session.Options{}, routes{"/set": setRoute("user", "mallory")})
	planted := strings.Repeat("P", 43)
	res, _ := srv.sendID("/set", planted)
	sc := res.Header.Get("Set-Cookie")
	if sc == "" || strings.Contains(sc, planted) {
		t.Fatalf("Set-Cookie %q: want a fresh id, not the planted one", sc)
	}
}

// R4: a flood of garbage costs no store write and leaves no row and no
// cookie; cookies of the wrong form, duplicated or under another name cost
// no store call at all, and a well-formed unknown id costs exactly one
// read.
func TestGarbageIDsCreateNothing(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	srv := newServer(t, session.Options{Store: st}, routes{"/": func(w http.ResponseWriter, r *http.Request) {
		if !session.FromContext(r.Context()).IsNew() {
			t.Error("a malformed cookie found a session")
		}
		whoRoute(w, r)
	}})
	valid := strings.Repeat("A", 43)
	malformed := [][]string{
		{"SESSION_ID=abc"},
		{"SESSION_ID=" + strings.Repeat("A", 42)},
		{"SESSION_ID=" + strings.Repeat("A", 44)},
		{"SESSION_ID=" + strings.Repeat("A", 8000)},
		{"SESSION_ID=" + strings.Repeat("+", 43)},       // standard base64, not URL-safe
		{"SESSION_ID=" + strings.Repeat("A", 42) + "+"}, // one character outside the alphabet
		{"SESSION_ID=" + strings.Repeat("A", 42) + "="}, // padding
		{"SESSION_ID=" + strings.Repeat("A", 41) + "é"}, // 43 bytes, not the alphabet
		{"SESSION_ID=" + strings.Repeat("A", 20) + " " + strings.Repeat("A", 22)},
		{"SESSION_ID=" + valid + "."}, // a signature separator with no keys
		{`SESSION_ID="` + strings.Repeat("A", 41) + `"`},
		{"SESSION_ID="},
		{"SESSION_ID=../../../../etc/passwd"},
		{"SESSION_ID=' OR '1'='1"},
		{"SESSION_ID=%00" + strings.Repeat("A", 40)},
		{"SESSION_ID=" + valid + "; SESSION_ID=" + valid},   // two copies
		{"SESSION_ID=" + valid, "SESSION_ID=" + valid},      // two copies in two headers
		{strings.Repeat("SESSION_ID="+valid+"; ", 500)},     // 500 copies
		{"OTHER=" + valid},                                  // another cookie
		{"x=1; session_id=" + valid, "Session_Id=" + valid}, // the name in another case
		{"SESSION_ID2=" + valid + "; XSESSION_ID=" + valid}, // names that contain it
	}
	for _, lines := range malformed {
		res, body := srv.send("/", lines...)
		if res.StatusCode != 200 || body != "" || res.Header.Get("Set-Cookie") != "" {
			t.Fatalf("Cookie %.80q: status %d body %q Set-Cookie %q", lines, res.StatusCode, body, res.Header.Get("Set-Cookie"))
		}
	}
	if n := st.calls(); n != 0 {
		t.Fatalf("%d store calls for %d malformed cookies, want 0", n, len(malformed))
	}
	// Well-formed but unknown: one read each, never a write, a row or a
	// cookie, also among other cookies and headers.
	if res, _ := srv.send("/", "x=1", "SESSION_ID="+valid); res.StatusCode != 200 || st.loads.Load() != 1 {
		t.Fatalf("status %d, %d loads for a well-formed unknown id", res.StatusCode, st.loads.Load())
	}
	const flood = 300
	for i := range flood {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		res, _ := srv.sendID("/", base64.RawURLEncoding.EncodeToString(sum[:]))
		if res.StatusCode != 200 || res.Header.Get("Set-Cookie") != "" {
			t.Fatalf("unknown id: status %d Set-Cookie %q", res.StatusCode, res.Header.Get("Set-Cookie"))
		}
	}
	if st.loads.Load() != flood+1 || st.writes() != 0 {
		t.Fatalf("%d unknown ids: %d loads, %d writes; want %d and 0", flood+1, st.loads.Load(), st.writes(), flood+1)
	}
	if n := st.Store.(*session.MemoryStore).Len(); n != 0 {
		t.Fatalf("%d rows after a flood of garbage", n)
	}
}

// R12: the store holds the SHA-256 of the id; its key, sent as a cookie
// (as someone who read the session table would), logs no one in.
func TestStoreKeyIsNotACookie(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	srv := newServer(t, session.Options{Store: st}, routes{"/login": loginRoute, "/": whoRoute})
	id := srv.issue("/login")
	created := st.created()
	if len(created) != 1 {
		t.Fatalf("%d creates for one login", len(created))
	}
	key := created[0]
	if key == id || key != hashedKey(id) {
		t.Fatalf("store key %q for id %q: want hex SHA-256 of the id", key, id)
	}
	before := st.calls()
	for _, v := range []string{key, strings.ToUpper(key)} {
		if _, body := srv.sendID("/", v); body != "" {
			t.Fatalf("the store key as a cookie logged in as %q", body)
		}
	}
	if n := st.calls() - before; n != 0 {
		t.Fatalf("the store key as a cookie cost %d store calls, want 0 (wrong length)", n)
	}
	// Cut to the length of an id it is well-formed, and still nobody's.
	if _, body := srv.sendID("/", key[:43]); body != "" {
		t.Fatalf("a prefix of the store key logged in as %q", body)
	}
}

// R13: refused cookies and unknown ids are counted, so a flood of forged
// or stale ids shows in metrics.
func TestInvalidIDsAreCounted(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	srv := newServer(t, session.Options{Store: st}, routes{"/": setRoute("user", "ann")})
	srv.send("/")                                                         // no cookie: counts nothing
	srv.send("/", "other=1")                                              // another cookie: counts nothing
	srv.send("/", "SESSION_ID=short")                                     // rejected
	srv.send("/", "SESSION_ID="+strings.Repeat("A", 43)+"; SESSION_ID=x") // rejected: two copies
	srv.send("/", "SESSION_ID="+strings.Repeat("B", 43))                  // well-formed, unknown
	if got, want := srv.m.Stats(), (session.Stats{RejectedIDs: 2, UnknownIDs: 1}); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
	if st.loads.Load() != 1 {
		t.Fatalf("%d loads: only the well-formed id may reach the store", st.loads.Load())
	}
}

// R13: with signing keys, a cookie is id.HMAC; every forgery is refused
// before the store is asked, and a signature is bound to its key, its id
// and the cookie's name.
func TestSignedIDsRefuseForgeries(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	rs := routes{"/login": loginRoute, "/": whoRoute}
	main := newServer(t, session.Options{Store: st, SigningKeys: [][]byte{signingKey(1)}}, rs)
	otherKey := newServer(t, session.Options{Store: st, SigningKeys: [][]byte{signingKey(2)}}, rs)
	otherName := newServer(t, session.Options{Store: st, SigningKeys: [][]byte{signingKey(1)}, CookieName: "OTHER"}, rs)

	v := main.issue("/login")
	v2 := main.issue("/login")
	if len(v) != 87 || v[43] != '.' {
		t.Fatalf("signed cookie %q: want 43-char id, '.', 43-char signature", v)
	}
	id, sig := v[:43], v[44:]
	if _, err := base64.RawURLEncoding.DecodeString(sig); err != nil {
		t.Fatalf("signature %q is not base64url: %v", sig, err)
	}
	res, _ := otherName.send("/login")
	signedForOther := cookieIn(res, "OTHER")
	if signedForOther == nil {
		t.Fatal("no OTHER cookie")
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
		{"signed with an unknown key", otherKey.issue("/login")},
		{"signed for another cookie name", signedForOther.Value},
	}
	before, loads := st.calls(), st.loads.Load()
	for _, f := range forged {
		if f.value == v {
			continue // a no-op mutation
		}
		res, body := main.sendID("/", f.value)
		if res.StatusCode != 200 || body != "" {
			t.Errorf("%s: status %d, session %q", f.name, res.StatusCode, body)
		}
	}
	if n := st.calls() - before; n != 0 {
		t.Fatalf("forged signed cookies cost %d store calls, want 0", n)
	}
	if _, body := main.sendID("/", v); body != "ann" {
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
	t.Parallel()
	st := &countingStore{Store: newMemory(t)}
	oldKey, newKey := signingKey(1), signingKey(2)
	rs := routes{"/login": loginRoute, "/regen": regenerateRoute, "/": whoRoute}
	before := newServer(t, session.Options{Store: st, SigningKeys: [][]byte{oldKey}}, rs)
	during := newServer(t, session.Options{Store: st, SigningKeys: [][]byte{newKey, oldKey}}, rs)
	after := newServer(t, session.Options{Store: st, SigningKeys: [][]byte{newKey}}, rs)
	who := func(srv *server, v string) string {
		_, body := srv.sendID("/", v)
		return body
	}
	oldCookie := before.issue("/login")
	if who(during, oldCookie) != "ann" {
		t.Fatal("an old-key cookie was refused while the old key is still listed")
	}
	newCookie := during.issue("/login")
	if who(after, newCookie) != "ann" || who(before, newCookie) != "" {
		t.Fatal("a cookie issued during the rotation is not signed with the new key")
	}
	// A cookie re-issued during the rotation moves to the new key.
	res, _ := during.sendID("/regen", oldCookie)
	if who(after, cookieIn(res, cookieName).Value) != "ann" {
		t.Fatal("a cookie re-issued during the rotation is not signed with the new key")
	}
	stale := before.issue("/login")
	calls := st.calls()
	if who(after, stale) != "" {
		t.Fatal("an old-key cookie still works after the old key was removed")
	}
	if n := st.calls() - calls; n != 0 {
		t.Fatalf("the removed key's cookie cost %d store calls, want 0", n)
	}
}
