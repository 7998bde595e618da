// Package apptest starts app servers over a store for the SQL stores'
// tests through real HTTP: the middleware with the routes those tests use,
// requests with a session, and the checks that the MySQL store and the Koa
// bridge share (a commit whose client left).
package apptest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
)

// App is one app server: the middleware over one store, with the routes
// the tests use, recording what its ErrorHandler heard.
type App struct {
	*httptest.Server
	Store  session.Store
	Client *http.Client
	mu     sync.Mutex
	errs   []error
}

// Options tune New.
type Options struct {
	Lock         bool
	LockTimeout  time.Duration
	StoreTimeout time.Duration
	// Entered hears from /hold once it runs (the session loaded, and
	// locked with a lock); /hold then waits for Release.
	Entered chan<- struct{}
	Release <-chan struct{}
	// Served hears the path of each request once the middleware is done
	// with it, its commit included.
	Served chan<- string
	// Gone is closed once the request context of /key or /logout ends.
	Gone chan<- struct{}
}

// New starts an app server over st. Its routes:
//
//	/set            a new session with count 0
//	/inc?hold=ms    reads count, holds the session ms, writes count+1
//	/locked/inc     /inc under Manager.Locked, outside Handler
//	/hold           /inc, but holding the session until release
//	/key?k=name     sets name to true
//	/add            Session.Add("count", 1)
//	/logout         Destroy
//	/login?owner=o  a new session owned by o
//	/revoke         RevokeOwner, keeping this session
func New(t *testing.T, st session.Store, o Options) *App {
	t.Helper()
	a := &App{Store: st, Client: &http.Client{Timeout: 30 * time.Second}}
	m, err := session.New(session.Options{
		Store:        st,
		Lock:         o.Lock,
		LockTimeout:  o.LockTimeout,
		StoreTimeout: o.StoreTimeout,
		Logger:       slog.New(slog.DiscardHandler),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			a.mu.Lock()
			a.errs = append(a.errs, err)
			a.mu.Unlock()
			code := http.StatusInternalServerError
			if errors.Is(err, session.ErrLockTimeout) {
				code = http.StatusServiceUnavailable
			}
			if !errors.Is(err, session.ErrResponseStarted) {
				http.Error(w, err.Error(), code)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	inc := func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n := s.GetInt("count")
		if ms, _ := strconv.Atoi(r.URL.Query().Get("hold")); ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond) // the handler's own work
		}
		s.Set("count", n+1)
		fmt.Fprint(w, n+1)
	}
	watch := func(r *http.Request) {
		if o.Gone != nil {
			go func() {
				<-r.Context().Done()
				close(o.Gone)
			}()
		}
	}
	inner := http.NewServeMux()
	inner.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("count", 0)
	})
	inner.HandleFunc("/inc", inc)
	inner.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		// Every wait ends with the request: a test that stopped early
		// must not leave the server unable to close.
		select {
		case o.Entered <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		select {
		case <-o.Release:
		case <-r.Context().Done():
			return
		}
		inc(w, r)
	})
	inner.HandleFunc("/key", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set(r.URL.Query().Get("k"), true)
		watch(r)
	})
	inner.HandleFunc("/add", func(w http.ResponseWriter, r *http.Request) {
		n, err := session.FromContext(r.Context()).Add("count", 1)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprint(w, n)
	})
	inner.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Destroy()
		watch(r)
	})
	inner.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.SetOwner(r.URL.Query().Get("owner"))
		s.Set("count", 0)
	})
	inner.HandleFunc("/revoke", func(w http.ResponseWriter, r *http.Request) {
		n, err := session.FromContext(r.Context()).RevokeOwner(true)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n)
	})
	outer := http.NewServeMux()
	outer.Handle("/locked/inc", m.Locked(http.HandlerFunc(inc)))
	outer.Handle("/", m.Handler(inner))
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outer.ServeHTTP(w, r)
		if o.Served != nil {
			o.Served <- r.URL.Path
		}
	}))
	t.Cleanup(a.Close)
	return a
}

// Request sends GET path with the session id (none when id is empty) and
// returns the response's status, body and session cookie. A failure is
// reported with t.Errorf, so it may run in any goroutine.
func (a *App) Request(t *testing.T, ctx context.Context, id, path string) (code int, body, cookie string) {
	req, err := http.NewRequestWithContext(ctx, "GET", a.URL+path, nil)
	if err != nil {
		t.Error(err)
		return 0, "", ""
	}
	if id != "" {
		req.AddCookie(&http.Cookie{Name: "SESSION_ID", Value: id})
	}
	res, err := a.Client.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", path, err)
		return 0, "", ""
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Errorf("GET %s: %v", path, err)
	}
	for _, c := range res.Cookies() {
		if c.Name == "SESSION_ID" {
			cookie = c.Value
		}
	}
	return res.StatusCode, string(b), cookie
}

// Get is Request with no context of its own, returning status and body.
func (a *App) Get(t *testing.T, id, path string) (int, string) {
	code, body, _ := a.Request(t, context.Background(), id, path)
	return code, body
}

// NewSession starts a session through path (/set by default) and returns
// its id.
func (a *App) NewSession(t *testing.T, path string) string {
	t.Helper()
	code, body, id := a.Request(t, context.Background(), "", path)
	if code != http.StatusOK || id == "" {
		t.Fatalf("GET %s = %d %q, cookie %q; want 200 and a session", path, code, body, id)
	}
	return id
}

// Errors returns what the ErrorHandler heard so far.
func (a *App) Errors() []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]error(nil), a.errs...)
}

// Answer is what one of Parallel's requests got, and how long it took.
type Answer struct {
	Code int
	Body string
	Took time.Duration
}

// Parallel sends n requests at once, the ith to path(i) with the session
// id(i), and returns their answers.
func (a *App) Parallel(t *testing.T, n int, id func(i int) string, path func(i int) string) []Answer {
	answers := make([]Answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			code, body := a.Get(t, id(i), path(i))
			answers[i] = Answer{code, body, time.Since(t0)}
		}()
	}
	close(start)
	wg.Wait()
	return answers
}

// StoreKey is the store key of an id: the store's own when it has a key
// scheme, else the SHA-256 the middleware uses.
func StoreKey(st session.Store, id string) string {
	if ks, ok := st.(session.KeyScheme); ok {
		return ks.Key(id)
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// Opener opens a SQL store on a pool and table, closed when the test
// ends.
type Opener func(t *testing.T, db *sql.DB, table string) session.Store

// CommitAfterClientLeft: the commit of a change or a logout waits for a
// row lock another transaction holds; the client gives up and the server
// sees it leave; then the lock is released. The commit, detached from the
// request's cancellation, still lands.
func CommitAfterClientLeft(t *testing.T, open Opener) {
	for _, tt := range []struct {
		name, path string
		blocked    string // the commit's statement that waits for the row lock
		check      func(values map[string]json.RawMessage, found bool) bool
	}{
		// The change's first statement: a compare-and-swap UPDATE, or a
		// SELECT ... FOR UPDATE; both name the row and more.
		{"change", "/key?k=late", "% TABLE % id = ? AND %",
			func(v map[string]json.RawMessage, found bool) bool { return found && string(v["late"]) == "true" }},
		{"logout", "/logout", "DELETE FROM TABLE WHERE id = ?",
			func(_ map[string]json.RawMessage, found bool) bool { return !found }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, table := sqltest.Table(t)
			db := sqltest.OpenDB(t, cfg)
			st := open(t, db, table)
			served, gone := make(chan string, 2), make(chan struct{})
			app := New(t, st, Options{Served: served, Gone: gone})
			id := app.NewSession(t, "/set")
			sqltest.Receive(t, "/set to be served", served)
			key := StoreKey(st, id)

			admin := sqltest.OpenDB(t, cfg)
			tx, err := admin.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			var data string
			if err := tx.QueryRow("SELECT data FROM `"+table+"` WHERE id = ? FOR UPDATE", key).Scan(&data); err != nil {
				t.Fatal(err)
			}

			ctx, leave := context.WithCancel(t.Context())
			defer leave()
			left := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(ctx, "GET", app.URL+tt.path, nil)
				req.AddCookie(&http.Cookie{Name: "SESSION_ID", Value: id})
				res, err := app.Client.Do(req)
				if err == nil {
					res.Body.Close()
				}
				left <- err
			}()
			// The request's own load reads without a lock; only its
			// commit waits.
			sqltest.WaitRowLockWait(t, admin, table, tt.blocked)
			leave()
			if err := sqltest.Receive(t, "the client to give up", left); !errors.Is(err, context.Canceled) {
				t.Fatalf("the client's request ended with %v, want it cancelled", err)
			}
			sqltest.Receive(t, "the server to see the client leave", gone)
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			sqltest.Receive(t, "the request's commit", served)
			if values, found := sqltest.StoredValues(t, db, table, key); !tt.check(values, found) {
				t.Errorf("after %s, whose client left mid-commit: row %s (found %v)", tt.path, values, found)
			}
			if errs := app.Errors(); len(errs) != 0 {
				t.Errorf("ErrorHandler heard %v", errs)
			}
		})
	}
}
