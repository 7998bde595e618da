package redisstore

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/redisstore/internal/redistest"
)

// counterServer is the tutorial counter over st: "/" adds one to count
// and answers it. errs hears the ErrorHandler.
func counterServer(t *testing.T, st session.Store, storeTimeout time.Duration) (*httptest.Server, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	m, err := session.New(session.Options{Store: st, StoreTimeout: storeTimeout,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			select {
			case errs <- err:
			default:
			}
			http.Error(w, "store unavailable", http.StatusInternalServerError)
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := session.FromContext(r.Context()).Add("count", 1)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprint(w, n)
	})))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { m.Close() })
	return srv, errs
}

// visit is one browser request: status, body, and the Set-Cookie header.
func visit(t *testing.T, c *http.Client, url string) (int, string, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body), res.Header.Get("Set-Cookie")
}

// TestRedisDown: while Redis is stopped or hung, requests get a 500 with
// the cookie left alone; once Redis is back the session is intact and
// counting resumes where it was.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		down func(*redistest.Server) error
		up   func(*redistest.Server) error
	}{
		// Stopped: connections are refused. The server keeps its data in
		// an append-only file, as a production Redis would, so the
		// session is there after the restart.
		{"Stopped", func(s *redistest.Server) error { s.Stop(); return nil }, (*redistest.Server).Start},
		// Hung (SIGSTOP): calls wait for their StoreTimeout.
		{"Hung", (*redistest.Server).Pause, (*redistest.Server).Resume},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := ownServer(t, "--appendonly", "yes", "--appendfsync", "always")
			c := rs.Client()
			t.Cleanup(func() { c.Close() })
			st := newStore(t, c, Options{})
			srv, errs := counterServer(t, st, 300*time.Millisecond)
			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
			for i := 1; i <= 2; i++ {
				if code, body, _ := visit(t, browser, srv.URL); code != 200 || body != fmt.Sprint(i) {
					t.Fatalf("visit %d: %d %s", i, code, body)
				}
			}
			if err := tc.down(rs); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			code, _, setCookie := visit(t, browser, srv.URL)
			took := time.Since(start)
			if code != http.StatusInternalServerError || setCookie != "" {
				t.Fatalf("with Redis down: %d, Set-Cookie %q; want 500 and no cookie", code, setCookie)
			}
			if took > 3*time.Second {
				t.Fatalf("the failing request took %v; StoreTimeout is 300ms", took)
			}
			select {
			case err := <-errs:
				t.Logf("ErrorHandler heard (after %v): %v", took, err)
			default:
				t.Fatal("ErrorHandler heard nothing")
			}
			if err := tc.up(rs); err != nil {
				t.Fatal(err)
			}
			// go-redis reconnects on the next call; give it a few tries.
			deadline := time.Now().Add(5 * time.Second)
			for {
				code, body, _ := visit(t, browser, srv.URL)
				if code == 200 {
					if body != "3" {
						t.Fatalf("first count after Redis came back = %s, want 3", body)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("still %d %s 5s after Redis came back", code, body)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
