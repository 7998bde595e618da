//go:build !race

package session_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// TestEventsAllocations: a store-call hook that allocates nothing itself
// adds no allocation to a request that reads, writes or starts a session
// (a nil hook is not even timed: the hot path without hooks is pinned by
// TestHotPathAllocations); a session event adds only its LogID string.
func TestEventsAllocations(t *testing.T) {
	var n int
	calls := &session.Events{StoreCall: func(context.Context, string, time.Duration, error) { n++ }}
	created := &session.Events{Created: func(context.Context, session.SessionEvent) { n++ }}
	allocs := func(path string, events *session.Events) float64 {
		m, err := session.New(session.Options{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/read" {
				session.FromContext(r.Context()).Set("n", 1)
			}
		}))
		req := httptest.NewRequest("GET", path, nil)
		if path != "/new" {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/write", nil))
			c := rec.Result().Cookies()[0]
			req.Header.Set("Cookie", c.Name+"="+c.Value)
		}
		w := &discard{h: http.Header{}}
		return testing.AllocsPerRun(200, func() {
			clear(w.h)
			h.ServeHTTP(w, req)
		})
	}
	for _, path := range []string{"/read", "/write", "/new"} {
		if without, with := allocs(path, nil), allocs(path, calls); with != without {
			t.Errorf("%s: %v allocations with a StoreCall hook, %v without", path, with, without)
		}
	}
	if without, with := allocs("/new", nil), allocs("/new", created); with > without+2 {
		t.Errorf("a new session: %v allocations with a Created hook, %v without: more than its LogID", with, without)
	}
	if n == 0 {
		t.Error("the hooks never ran")
	}
}
