package session_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/seed013449c2/session"
)

// benchSession runs one real request that creates a session and returns
// its Cookie header.
func benchSession(b *testing.B, h http.Handler) string {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/write", nil))
	c := rec.Result().Cookies()
	if len(c) != 1 {
		b.Fatalf("no session cookie: %v", rec.Result().Header)
	}
	return c[0].Name + "=" + c[0].Value
}

func BenchmarkMiddleware(b *testing.B) {
	m, err := session.New(session.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	var buf [20]byte
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n := s.GetInt64("count")
		switch r.URL.Path {
		case "/write":
			n++
			s.Set("count", n)
		case "/add":
			n, _ = s.Add("count", 1)
		}
		w.Write(strconv.AppendInt(buf[:0], n, 10))
	}))
	for _, bc := range []struct {
		name, path string
		cookie     bool
	}{
		{"NoCookie", "/read", false},
		{"ReadOnly", "/read", true},
		{"Write", "/write", true},
		{"Add", "/add", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", bc.path, nil)
			if bc.cookie {
				req.Header.Set("Cookie", benchSession(b, h))
			}
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkMiddlewareHot is BenchmarkHotSession's request in-process: one
// session that already holds 512 keys, and every request adds one to
// "count" and sets one of the 512 keys, in turn. It measures what the
// middleware itself costs per request when a big session is written, with
// no network, client or scheduler in the way.
func BenchmarkMiddlewareHot(b *testing.B) {
	serve := hotRequests(b)
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
}

// hotRequests starts a memory-store session of 512 keys and "count", and
// returns a function that serves the next request to it: one that adds
// one to "count" and sets the next of the 512 keys.
func hotRequests(tb testing.TB) func() {
	m, err := session.New(session.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	const keys = 512
	names := make([]string, keys)
	for i := range names {
		names[i] = "k" + strconv.Itoa(i)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if r.URL.Path == "/write" {
			s.Set("count", 0)
			return
		}
		if _, err := s.Add("count", 1); err != nil {
			tb.Error(err)
		}
		i, _ := strconv.Atoi(r.URL.Path[len("/w/"):])
		s.Set(names[i], 1)
		w.Write(okBody)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/write", nil))
	c := rec.Result().Cookies()
	if len(c) != 1 {
		tb.Fatalf("no session cookie: %v", rec.Result().Header)
	}
	reqs := make([]*http.Request, keys)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("POST", "/w/"+strconv.Itoa(i), nil)
		reqs[i].Header.Set("Cookie", c[0].Name+"="+c[0].Value)
	}
	w := &discard{h: http.Header{}}
	next := 0
	serve := func() {
		clear(w.h)
		h.ServeHTTP(w, reqs[next%keys])
		next++
	}
	for range keys { // the session holds every key before anything is measured
		serve()
	}
	return serve
}

var okBody = []byte("ok")
