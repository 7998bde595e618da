//go:build !race

// The race detector changes allocation counts, so these run without it
// (.ci/run runs them in a step of their own).

package session_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/seed013449c2/session"
)

// TestHotPathAllocations pins what the README claims of the hot path: a
// request without a cookie allocates only its context (two objects), and a
// read-only request allocates the same whether its session holds one small
// value or fifty large ones: values are decoded only when read.
func TestHotPathAllocations(t *testing.T) {
	m, err := session.New(session.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	big := strings.Repeat("x", 1000)
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if r.URL.Path == "/write" {
			s.Set("count", 1)
			if r.URL.Query().Has("big") {
				for i := range 50 {
					s.Set("k"+strconv.Itoa(i), map[string]any{"blob": big, "n": []int{1, 2, 3}})
				}
			}
			return
		}
		if s.GetInt("count") > 1 {
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	read := func(cookie string) float64 {
		req := httptest.NewRequest("GET", "/read", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		w := &discard{h: http.Header{}}
		return testing.AllocsPerRun(200, func() {
			clear(w.h)
			h.ServeHTTP(w, req)
		})
	}
	newSession := func(path string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		c := rec.Result().Cookies()
		if len(c) != 1 {
			t.Fatalf("%s set no cookie", path)
		}
		return c[0].Name + "=" + c[0].Value
	}
	if n := read(""); n > 2 {
		t.Errorf("a request without a cookie allocates %v objects, want at most 2", n)
	}
	small, large := read(newSession("/write")), read(newSession("/write?big=1"))
	if small != large {
		t.Errorf("a read-only request allocates %v objects on a 1-key session but %v on a 51-key one: values are being decoded unread", small, large)
	}
	if small > 4 {
		t.Errorf("a read-only request allocates %v objects, want at most 4", small)
	}
}

// TestHeaderHotPathAllocations: with Options.Header set, a request that
// carries neither the header nor the cookie still allocates only its
// context.
func TestHeaderHotPathAllocations(t *testing.T) {
	m, err := session.New(session.Options{Header: "Authorization"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).GetInt("count")
	}))
	req := httptest.NewRequest("GET", "/", nil)
	w := &discard{h: http.Header{}}
	if n := testing.AllocsPerRun(200, func() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}); n > 2 {
		t.Errorf("a request without a cookie or the header allocates %v objects, want at most 2", n)
	}
}

// TestSetLabelUnchangedAllocations: setting the label a session already has
// costs nothing, as SetLabel's doc says a handler may do on every request:
// the request allocates what a plain read does.
func TestSetLabelUnchangedAllocations(t *testing.T) {
	m, err := session.New(session.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		switch r.URL.Path {
		case "/login":
			s.Set("user", "ann")
			s.SetLabel("Firefox on macOS")
		case "/label":
			s.SetLabel("Firefox on macOS")
		}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/login", nil))
	c := rec.Result().Cookies()
	if len(c) != 1 {
		t.Fatal("/login set no cookie")
	}
	allocs := func(path string) float64 {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Cookie", c[0].Name+"="+c[0].Value)
		w := &discard{h: http.Header{}}
		return testing.AllocsPerRun(200, func() {
			clear(w.h)
			h.ServeHTTP(w, req)
		})
	}
	if plain, label := allocs("/read"), allocs("/label"); label != plain {
		t.Errorf("a request that sets the label the session has allocates %v objects, a plain read %v", label, plain)
	}
}

// TestHotWriteAllocations pins the write path of the README's hot-session
// numbers: a request that adds to a counter and sets one key of a
// memory-store session of 512 keys allocates 12 objects (among them the
// request's copy, the store key, the encoded values, the new record, and
// the chunk list and the two chunks the change copies), not a copy of the
// session, and no map for the change: those come from the pool the memory
// store's commits give them back to. One more is allowed for a garbage
// collection that empties that pool during the run.
func TestHotWriteAllocations(t *testing.T) {
	serve := hotRequests(t)
	if n := testing.AllocsPerRun(500, serve); n > 13 {
		t.Errorf("a write to a 512-key session allocates %v objects, want at most 13", n)
	}
}
