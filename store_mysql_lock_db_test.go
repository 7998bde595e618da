package session_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session"
)

// These tests drive the SQL stores through real HTTP against a real MySQL
// or MariaDB (see store_mysql_db_test.go), where what they prove lives: how
// many connections a lock needs, what happens when the server drops the
// lock's connection, row locks that make a commit wait, and many writers of
// one session at once.

// httpApp is one app server: the middleware over one store, with the
// routes the tests use, recording what its ErrorHandler heard.
type httpApp struct {
	*httptest.Server
	store  session.Store
	client *http.Client
	mu     sync.Mutex
	errs   []error
}

// appOptions tune newHTTPApp.
type appOptions struct {
	lock         bool
	lockTimeout  time.Duration
	storeTimeout time.Duration
	// entered hears from /hold once it runs (the session loaded, and
	// locked with a lock); /hold then waits for release.
	entered chan<- struct{}
	release <-chan struct{}
	// served hears the path of each request once the middleware is done
	// with it, its commit included.
	served chan<- string
	// gone is closed once the request context of /key or /logout ends.
	gone chan<- struct{}
}

// newHTTPApp starts an app server over st. Its routes:
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
func newHTTPApp(t *testing.T, st session.Store, o appOptions) *httpApp {
	t.Helper()
	a := &httpApp{store: st, client: &http.Client{Timeout: 30 * time.Second}}
	m, err := session.New(session.Options{
		Store:        st,
		Lock:         o.lock,
		LockTimeout:  o.lockTimeout,
		StoreTimeout: o.storeTimeout,
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
		if o.gone != nil {
			go func() {
				<-r.Context().Done()
				close(o.gone)
			}()
		}
	}
	inner := http.NewServeMux()
	inner.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("count", 0)
	})
	inner.HandleFunc("/inc", inc)
	inner.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		o.entered <- struct{}{}
		<-o.release
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
		if o.served != nil {
			o.served <- r.URL.Path
		}
	}))
	t.Cleanup(a.Close)
	return a
}

// request sends GET path with the session id (none when id is empty) and
// returns the response's status, body and session cookie. A failure is
// reported with t.Errorf, so it may run in any goroutine.
func (a *httpApp) request(t *testing.T, ctx context.Context, id, path string) (code int, body, cookie string) {
	req, err := http.NewRequestWithContext(ctx, "GET", a.URL+path, nil)
	if err != nil {
		t.Error(err)
		return 0, "", ""
	}
	if id != "" {
		req.AddCookie(&http.Cookie{Name: "SESSION_ID", Value: id})
	}
	res, err := a.client.Do(req)
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

func (a *httpApp) get(t *testing.T, id, path string) (int, string) {
	code, body, _ := a.request(t, context.Background(), id, path)
	return code, body
}

// newSession starts a session through path (/set by default) and returns
// its id.
func (a *httpApp) newSession(t *testing.T, path string) string {
	t.Helper()
	code, body, id := a.request(t, context.Background(), "", path)
	if code != http.StatusOK || id == "" {
		t.Fatalf("GET %s = %d %q, cookie %q; want 200 and a session", path, code, body, id)
	}
	return id
}

func (a *httpApp) errors() []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]error(nil), a.errs...)
}

// answer is what one of parallel's requests got, and how long it took.
type answer struct {
	code int
	body string
	took time.Duration
}

// parallel sends n requests at once, the ith to path(i) with the session
// id(i), and returns their answers.
func (a *httpApp) parallel(t *testing.T, n int, id func(i int) string, path func(i int) string) []answer {
	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			code, body := a.get(t, id(i), path(i))
			answers[i] = answer{code, body, time.Since(t0)}
		}()
	}
	close(start)
	wg.Wait()
	return answers
}

// storeKey is the store key of an id: the store's own when it has a key
// scheme, else the SHA-256 the middleware uses.
func storeKey(st session.Store, id string) string {
	if ks, ok := st.(session.KeyScheme); ok {
		return ks.Key(id)
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// mysqlLockName is the GET_LOCK name the SQL stores use for key in table
// (TestMySQLLockName pins the formula).
func mysqlLockName(table, key string) string {
	sum := sha256.Sum256([]byte(table + "\x00" + key))
	return "session:" + hex.EncodeToString(sum[:])[:56]
}

// storedValues reads key's row as the database holds it, both stores'
// tables having id and data columns; found is false when there is none.
func storedValues(t *testing.T, db *sql.DB, table, key string) (values map[string]json.RawMessage, found bool) {
	t.Helper()
	var data string
	err := db.QueryRow("SELECT data FROM `"+table+"` WHERE id = ?", key).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(data), &values); err != nil {
		t.Fatalf("row %s: %v", data, err)
	}
	return values, true
}

// storedCount is the count the database holds for key, -1 for no row.
func storedCount(t *testing.T, db *sql.DB, table, key string) int {
	t.Helper()
	values, found := storedValues(t, db, table, key)
	if !found {
		return -1
	}
	n, err := strconv.Atoi(string(values["count"]))
	if err != nil {
		t.Fatalf("stored count %s: %v", values["count"], err)
	}
	return n
}

// sqlBackend opens one of the SQL stores on a pool and table.
type sqlBackend struct {
	name string
	open func(t *testing.T, db *sql.DB, table string) session.Store
}

var sqlBackends = []sqlBackend{
	{"MySQL", func(t *testing.T, db *sql.DB, table string) session.Store { return newMySQLTestStore(t, db, table) }},
	{"Koa", func(t *testing.T, db *sql.DB, table string) session.Store {
		s, err := session.NewKoaStore(db, session.KoaOptions{Table: table})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// newMySQLTestStore opens a store on the caller's pool, closed when the test
// ends.
func newMySQLTestStore(t *testing.T, db *sql.DB, table string) *session.MySQLStore {
	t.Helper()
	s, err := session.NewMySQLStore(db, session.MySQLOptions{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receive waits for one value from c, failing the test after 10 seconds.
func receive[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("waited 10s for %s", what)
		panic("unreachable")
	}
}

// TestMySQLLockedRequestsBounded: with Options.Lock, on a pool of 1, 2 or
// 10 connections, 20 requests at once, of one session or of 20, each
// holding its session 50 to 200 ms, all end within LockTimeout and a
// second, with 200 or, once the lock wait ran out, 503: a locked request
// needs one connection and its waiters hold none, so no pool size makes one
// hang. The 200s are exact: each stored count is the number of 200s its
// session got.
func TestMySQLLockedRequestsBounded(t *testing.T) {
	const requests, lockTimeout = 20, time.Second
	for _, conns := range []int{1, 2, 10} {
		for _, sessions := range []int{1, requests} {
			t.Run(fmt.Sprintf("MaxOpenConns=%d/sessions=%d", conns, sessions), func(t *testing.T) {
				cfg, table := mysqlTestTable(t)
				db := openMySQLTestDB(t, cfg)
				db.SetMaxOpenConns(conns)
				st := newMySQLTestStore(t, db, table)
				app := newHTTPApp(t, st, appOptions{lock: true, lockTimeout: lockTimeout})
				ids := make([]string, sessions)
				for i := range ids {
					ids[i] = app.newSession(t, "/set")
				}
				answers := app.parallel(t, requests, func(i int) string { return ids[i%sessions] }, func(i int) string {
					return fmt.Sprintf("/inc?hold=%d", 50+150*i/(requests-1))
				})
				ok := map[string]int{}
				var unavailable int
				var slowest time.Duration
				for i, a := range answers {
					switch a.code {
					case http.StatusOK:
						ok[ids[i%sessions]]++
					case http.StatusServiceUnavailable:
						unavailable++
					default:
						t.Errorf("request %d: %d %q, want 200 or 503", i, a.code, a.body)
					}
					if a.took > lockTimeout+time.Second {
						t.Errorf("request %d took %v, longer than LockTimeout and a second", i, a.took)
					}
					slowest = max(slowest, a.took)
				}
				total := 0
				for _, id := range ids {
					if got := storedCount(t, db, table, storeKey(st, id)); got != ok[id] {
						t.Errorf("stored count %d, but %d requests of that session answered 200", got, ok[id])
					}
					total += ok[id]
				}
				if total == 0 {
					t.Error("no request got the lock")
				}
				errs := app.errors()
				for _, err := range errs {
					if !errors.Is(err, session.ErrLockTimeout) {
						t.Errorf("ErrorHandler heard %v, want only lock timeouts", err)
					}
				}
				if len(errs) != unavailable {
					t.Errorf("ErrorHandler heard %d errors for %d 503s", len(errs), unavailable)
				}
				t.Logf("%d of %d requests answered 200, %d 503; the slowest took %v", total, requests, unavailable, slowest)
			})
		}
	}
}

// idConnector records the server's id (CONNECTION_ID()) of every
// connection a pool opens, so a test can find them in the processlist.
type idConnector struct {
	driver.Connector
	mu  sync.Mutex
	ids []string
}

func (c *idConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := conn.(driver.QueryerContext).QueryContext(ctx, "SELECT CONNECTION_ID()", nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	dest := make([]driver.Value, 1)
	err = rows.Next(dest)
	rows.Close()
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.mu.Lock()
	c.ids = append(c.ids, fmt.Sprint(dest[0]))
	c.mu.Unlock()
	return conn, nil
}

// open counts the connections of the pool that the server holds now.
func (c *idConnector) open(t *testing.T, admin *sql.DB) int {
	c.mu.Lock()
	ids := strings.Join(c.ids, ",")
	c.mu.Unlock()
	if ids == "" {
		return 0
	}
	var n int
	for _, id := range strings.Split(ids, ",") {
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			t.Errorf("CONNECTION_ID() gave %q", id)
			return 0
		}
	}
	if err := admin.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN (" + ids + ")").Scan(&n); err != nil {
		t.Error(err)
	}
	return n
}

// TestMySQLLockWaitersHoldNoConnection: 60 requests of one session at once
// on a slow locked route, with a pool that may open as many connections as
// it likes and keeps none idle, hold at most 2 of the server's connections
// at any time (the holder's, and its predecessor's on its way out): the
// waiters queue in the process and hold none. The count is exact.
func TestMySQLLockWaitersHoldNoConnection(t *testing.T) {
	const requests = 60
	for _, route := range []struct {
		name, path string
		lock       bool
	}{
		{"Options.Lock", "/inc?hold=20", true},
		{"Manager.Locked", "/locked/inc?hold=20", false},
	} {
		t.Run(route.name, func(t *testing.T) {
			cfg, table := mysqlTestTable(t)
			connector, err := mysql.NewConnector(cfg)
			if err != nil {
				t.Fatal(err)
			}
			conns := &idConnector{Connector: connector}
			db := sql.OpenDB(conns)
			t.Cleanup(func() { db.Close() })
			db.SetMaxIdleConns(0)
			st := newMySQLTestStore(t, db, table)
			app := newHTTPApp(t, st, appOptions{lock: route.lock, lockTimeout: time.Minute})
			id := app.newSession(t, "/set")
			admin := openMySQLTestDB(t, cfg)

			stop, stopped := make(chan struct{}), make(chan struct{})
			var peak, samples int
			go func() {
				defer close(stopped)
				for {
					select {
					case <-stop:
						return
					default:
					}
					peak = max(peak, conns.open(t, admin))
					samples++
				}
			}()
			answers := app.parallel(t, requests, func(int) string { return id }, func(int) string { return route.path })
			close(stop)
			<-stopped
			for i, a := range answers {
				if a.code != http.StatusOK {
					t.Errorf("request %d: %d %q", i, a.code, a.body)
				}
			}
			if got := storedCount(t, admin, table, storeKey(st, id)); got != requests {
				t.Errorf("stored count %d after %d locked increments", got, requests)
			}
			if peak > 2 || samples < 20 {
				t.Errorf("the pool held up to %d of the server's connections (%d samples), want at most 2", peak, samples)
			}
			conns.mu.Lock()
			opened := len(conns.ids)
			conns.mu.Unlock()
			t.Logf("%d samples of the processlist: at most %d connections of the pool, %d opened in all", samples, peak, opened)
		})
	}
}

// TestMySQLLockLostHTTP: the server drops the lock's connection while its
// holder is in its handler, killed with KILL or timed out by wait_timeout.
// Another app server takes the lock meanwhile and counts; the holder's
// commit then fails instead of overwriting that count (500 through the
// ErrorHandler, with an error wrapping ErrLockLost), and its app server
// carries on. The stored count is the number of 200s.
func TestMySQLLockLostHTTP(t *testing.T) {
	for _, tt := range []struct {
		name   string
		params map[string]string
		kill   bool
	}{
		{"KILL", nil, true},
		{"wait_timeout", map[string]string{"wait_timeout": "1"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, table := mysqlTestTable(t)
			admin := openMySQLTestDB(t, cfg)
			holderCfg := cfg.Clone()
			for k, v := range tt.params {
				if holderCfg.Params == nil {
					holderCfg.Params = map[string]string{}
				}
				holderCfg.Params[k] = v
			}
			holderCfg.Logger = mysql.Logger(log.New(io.Discard, "", 0)) // the driver would log the dropped connections
			entered, release := make(chan struct{}, 1), make(chan struct{})
			st := newMySQLTestStore(t, openMySQLTestDB(t, holderCfg), table)
			holder := newHTTPApp(t, st, appOptions{lock: true, lockTimeout: 10 * time.Second, entered: entered, release: release})
			other := newHTTPApp(t, newMySQLTestStore(t, openMySQLTestDB(t, cfg), table), appOptions{lock: true, lockTimeout: 10 * time.Second})
			id := holder.newSession(t, "/set")
			name := mysqlLockName(table, storeKey(st, id))

			held := make(chan answer, 1)
			go func() {
				code, body := holder.get(t, id, "/hold")
				held <- answer{code: code, body: body}
			}()
			receive(t, "/hold to hold the lock", entered)
			var conn sql.NullInt64
			if err := admin.QueryRow("SELECT IS_USED_LOCK(?)", name).Scan(&conn); err != nil || !conn.Valid {
				t.Fatalf("IS_USED_LOCK = %v, %v; want the holder's connection", conn, err)
			}
			if tt.kill {
				if _, err := admin.Exec(fmt.Sprintf("KILL CONNECTION %d", conn.Int64)); err != nil {
					t.Fatal(err)
				}
			} else {
				waitFor(t, "wait_timeout to drop the idle lock connection", func() bool {
					var c sql.NullInt64
					if err := admin.QueryRow("SELECT IS_USED_LOCK(?)", name).Scan(&c); err != nil {
						t.Fatal(err)
					}
					return !c.Valid
				})
			}

			if code, body := other.get(t, id, "/inc"); code != http.StatusOK || body != "1" {
				t.Fatalf("/inc on the other server while the holder runs = %d %q, want 200 1", code, body)
			}
			close(release)
			if a := receive(t, "the holder's answer", held); a.code != http.StatusInternalServerError {
				t.Errorf("the holder whose lock was lost answered %d %q, want 500", a.code, a.body)
			}
			errs := holder.errors()
			if len(errs) != 1 || !errors.Is(errs[0], session.ErrLockLost) {
				t.Errorf("the holder's ErrorHandler heard %v, want one error wrapping ErrLockLost", errs)
			}
			if code, body := holder.get(t, id, "/inc"); code != http.StatusOK || body != "2" {
				t.Errorf("/inc on the holder's server afterwards = %d %q, want 200 2", code, body)
			}
			if got := storedCount(t, admin, table, storeKey(st, id)); got != 2 {
				t.Errorf("stored count %d, want the 2 increments answered 200", got)
			}
			if errs := other.errors(); len(errs) != 0 {
				t.Errorf("the other server's ErrorHandler heard %v", errs)
			}
		})
	}
}

// TestMySQLLockedRevokeOneConnection: a locked request that revokes its
// owner's other sessions runs on the lock's connection, so it works on a
// pool of one.
func TestMySQLLockedRevokeOneConnection(t *testing.T) {
	cfg, table := mysqlTestTable(t)
	db := openMySQLTestDB(t, cfg)
	db.SetMaxOpenConns(1)
	st := newMySQLTestStore(t, db, table)
	app := newHTTPApp(t, st, appOptions{lock: true, lockTimeout: 2 * time.Second, storeTimeout: 2 * time.Second})
	phone := app.newSession(t, "/login?owner=ann")
	laptop := app.newSession(t, "/login?owner=ann")
	if code, body := app.get(t, laptop, "/revoke"); code != http.StatusOK || body != "1" {
		t.Fatalf("/revoke = %d %q, want 200 and 1 other session ended", code, body)
	}
	if _, found := storedValues(t, db, table, storeKey(st, phone)); found {
		t.Error("the other session survived the revoke")
	}
	if _, found := storedValues(t, db, table, storeKey(st, laptop)); !found {
		t.Error("the revoking session was ended too")
	}
}

// waitRowLockWait waits until a statement like pattern (a LIKE pattern in
// which TABLE stands for the quoted table) runs on another connection:
// while the test holds the row's lock, one that needs it waits.
func waitRowLockWait(t *testing.T, admin *sql.DB, table, pattern string) {
	t.Helper()
	pattern = strings.ReplaceAll(pattern, "TABLE", "`"+table+"`")
	waitFor(t, "a statement like "+pattern+" to wait for the row lock", func() bool {
		var n int
		err := admin.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND IN ('Query', 'Execute') AND INFO LIKE ? AND ID <> CONNECTION_ID()",
			pattern).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
}

// TestMySQLAndKoaCommitAfterClientLeft: the commit of a change or a
// logout waits for a row lock another transaction holds; the client gives
// up and the server sees it leave; then the lock is released. The commit,
// detached from the request's cancellation, still lands.
func TestMySQLAndKoaCommitAfterClientLeft(t *testing.T) {
	for _, b := range sqlBackends {
		for _, tt := range []struct {
			name, path string
			blocked    string // the commit's statement that waits for the row lock
			check      func(values map[string]json.RawMessage, found bool) bool
		}{
			{"change", "/key?k=late", "SELECT % FROM TABLE % FOR UPDATE",
				func(v map[string]json.RawMessage, found bool) bool { return found && string(v["late"]) == "true" }},
			{"logout", "/logout", "DELETE FROM TABLE WHERE id = ?",
				func(_ map[string]json.RawMessage, found bool) bool { return !found }},
		} {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				cfg, table := mysqlTestTable(t)
				db := openMySQLTestDB(t, cfg)
				st := b.open(t, db, table)
				served, gone := make(chan string, 2), make(chan struct{})
				app := newHTTPApp(t, st, appOptions{served: served, gone: gone})
				id := app.newSession(t, "/set")
				receive(t, "/set to be served", served)
				key := storeKey(st, id)

				admin := openMySQLTestDB(t, cfg)
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
					res, err := app.client.Do(req)
					if err == nil {
						res.Body.Close()
					}
					left <- err
				}()
				// The request's own load reads without a lock; only its
				// commit waits.
				waitRowLockWait(t, admin, table, tt.blocked)
				leave()
				if err := receive(t, "the client to give up", left); !errors.Is(err, context.Canceled) {
					t.Fatalf("the client's request ended with %v, want it cancelled", err)
				}
				receive(t, "the server to see the client leave", gone)
				if err := tx.Rollback(); err != nil {
					t.Fatal(err)
				}
				receive(t, "the request's commit", served)
				if values, found := storedValues(t, db, table, key); !tt.check(values, found) {
					t.Errorf("after %s, whose client left mid-commit: row %s (found %v)", tt.path, values, found)
				}
				if errs := app.errors(); len(errs) != 0 {
					t.Errorf("ErrorHandler heard %v", errs)
				}
			})
		}
	}
}

// TestMySQLAndKoaConcurrentWritersHTTP: 128 requests of one session at
// once, with no lock, each setting a key of its own, all succeed and every
// key is kept; 128 Session.Add of one counter all succeed and all count.
func TestMySQLAndKoaConcurrentWritersHTTP(t *testing.T) {
	const writers = 128
	for _, b := range sqlBackends {
		t.Run(b.name, func(t *testing.T) {
			cfg, table := mysqlTestTable(t)
			db := openMySQLTestDB(t, cfg)
			db.SetMaxOpenConns(32) // leave room in max_connections for the tests beside
			st := b.open(t, db, table)
			app := newHTTPApp(t, st, appOptions{})
			id := app.newSession(t, "/set")
			one := func(int) string { return id }

			for i, a := range app.parallel(t, writers, one, func(i int) string { return "/key?k=k" + strconv.Itoa(i) }) {
				if a.code != http.StatusOK {
					t.Errorf("/key?k=k%d: %d %q", i, a.code, a.body)
				}
			}
			values, _ := storedValues(t, db, table, storeKey(st, id))
			for i := range writers {
				if string(values["k"+strconv.Itoa(i)]) != "true" {
					t.Errorf("key k%d lost; the row holds %d values", i, len(values))
				}
			}

			for i, a := range app.parallel(t, writers, one, func(int) string { return "/add" }) {
				if a.code != http.StatusOK {
					t.Errorf("/add #%d: %d %q", i, a.code, a.body)
				}
			}
			if got := storedCount(t, db, table, storeKey(st, id)); got != writers {
				t.Errorf("count %d after %d concurrent Adds from 0, want %d", got, writers, writers)
			}
			if errs := app.errors(); len(errs) != 0 {
				t.Errorf("ErrorHandler heard %d errors, first %v", len(errs), errs[0])
			}
		})
	}
}
