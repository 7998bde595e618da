// Package interop proves that the Go session library, through the Koa
// bridge (package koa), shares sessions with the real Koa tutorial app
// (interop/koa: koa-session-minimal 3.0.4 over koa-mysql-session 0.0.2, run
// with Node), not with a copy of its format.
package interop

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session/internal/sqltest"
)

// koaTable is the table koa-mysql-session 0.0.2 hard-codes.
const koaTable = "_mysql_session_store"

var (
	listening = regexp.MustCompile(`listening on (http://127\.0\.0\.1:[0-9]+)`)
	koaID     = regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`)
)

// TestKoaInterop starts the Koa tutorial's app with Node and
// examples/counter in Koa mode on one MariaDB database and walks cookie jars
// across both, once on a table Go created and once on the table Koa
// creates itself.
func TestKoaInterop(t *testing.T) {
	node := requireNode(t)
	db, cfg := openDB(t)
	counter := buildCounter(t)
	forms := []struct {
		name     string
		koaFirst bool
		column   string // the id column as SHOW CREATE TABLE gives it
	}{
		{"table created by Koa", true, "`id` varchar(255) NOT NULL"},
		// Last, so the table stays in the stricter form.
		{"table created by Go", false, "`id` varbinary(255) NOT NULL"},
	}
	for _, form := range forms {
		t.Run(form.name, func(t *testing.T) {
			// The table is the Koa app's fixed one; this test is its only
			// user in the test database, and each form starts from none.
			if _, err := db.Exec("DROP TABLE IF EXISTS " + koaTable); err != nil {
				t.Fatal(err)
			}
			e := &env{t: t, db: db}
			t.Cleanup(e.deleteRows)
			if form.koaFirst {
				e.koa = startKoa(t, node, cfg)
				e.goURL = startCounter(t, counter, cfg)
			} else {
				e.goURL = startCounter(t, counter, cfg)
				e.koa = startKoa(t, node, cfg)
			}
			var name, create string
			if err := db.QueryRow("SHOW CREATE TABLE "+koaTable).Scan(&name, &create); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(create, form.column) {
				t.Fatalf("the table is not in the expected form (%s):\n%s", form.column, create)
			}
			t.Run("KoaThenGo", e.testKoaThenGo)
			t.Run("GoThenKoa", e.testGoThenKoa)
			t.Run("LogoutOnGoEndsKoaSession", e.testLogoutOnGo)
			t.Run("ExpiredRowNotServedByGo", e.testExpiredRow)
			t.Run("CaseSwappedIDNotAcceptedByGo", e.testCaseSwappedID)
		})
	}
}

// env is one pair of running servers over the table.
type env struct {
	t     *testing.T
	db    *sql.DB
	goURL string
	koa   string

	mu  sync.Mutex
	ids map[string]bool // every session id seen, for the final cleanup
}

func (e *env) track(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ids == nil {
		e.ids = map[string]bool{}
	}
	e.ids[id] = true
}

// deleteRows removes the rows of every id the test saw. Each Koa write was
// awaited before the test moved on, so none can land after this.
func (e *env) deleteRows() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.ids {
		if _, err := e.db.Exec("DELETE FROM "+koaTable+" WHERE id = ?", "SESSION_ID:"+id); err != nil {
			e.t.Errorf("delete the row of a test session: %v", err)
		}
	}
}

// browser is one cookie jar. Both servers listen on 127.0.0.1 and cookies
// ignore ports, so the jar sends one SESSION_ID cookie to both.
type browser struct {
	e   *env
	jar *cookiejar.Jar
	c   *http.Client
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &browser{e: e, jar: jar, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

// reply is one answer of either app: the session as JSON.
type reply struct {
	body      string
	values    map[string]any
	setCookie []string
}

// get requests base+path, with the jar or, when cookie is set, with that
// Cookie header and no jar.
func (b *browser) get(t *testing.T, base, path, cookie string) reply {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := b.c
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
		c = &http.Client{Timeout: 10 * time.Second}
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{body: strings.TrimSpace(string(body)), setCookie: res.Header.Values("Set-Cookie")}
	for _, ck := range res.Cookies() {
		if ck.Name == "SESSION_ID" && ck.Value != "" {
			b.e.track(ck.Value)
		}
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %s %s", base, path, res.Status, r.body)
	}
	if err := json.Unmarshal(body, &r.values); err != nil {
		t.Fatalf("GET %s%s answered %q, not a JSON object: %v", base, path, r.body, err)
	}
	return r
}

// id returns the SESSION_ID the jar holds, or "".
func (b *browser) id() string {
	for _, ck := range b.jar.Cookies(&url.URL{Scheme: "http", Host: "127.0.0.1", Path: "/"}) {
		if ck.Name == "SESSION_ID" {
			return ck.Value
		}
	}
	return ""
}

// row returns the data of id's row, and whether there is one.
func (e *env) row(t *testing.T, id string) (map[string]any, bool) {
	t.Helper()
	var data sql.NullString
	err := e.db.QueryRow("SELECT data FROM "+koaTable+" WHERE id = ?", "SESSION_ID:"+id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(data.String), &v); err != nil {
		t.Fatalf("row %s holds %q, not a JSON object", id, data.String)
	}
	return v, true
}

// waitRow waits until id's row holds want. Koa writes after it has
// answered, without waiting for the write, so every Koa step ends here
// before the browser moves on.
func (e *env) waitRow(t *testing.T, id string, want map[string]any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, ok := e.row(t, id)
		if ok && reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s the row of %s holds %v (present: %v), want %v", id, got, ok, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustMatch checks an answer: count as a JSON number (nil for null or
// absent), and user_id ("" for absent).
func mustMatch(t *testing.T, step string, r reply, count any, userID string) {
	t.Helper()
	if count != nil {
		count = float64(count.(int))
	}
	got, _ := r.values["user_id"].(string)
	if !reflect.DeepEqual(r.values["count"], count) || got != userID {
		t.Fatalf("%s answered %s; want count %v and user_id %q", step, r.body, count, userID)
	}
}

// testKoaThenGo: a session Koa starts is Go's too, and back: /set on Koa,
// / on Go, / on Koa, / on Go count 1, 2, 3 under one user_id and one id.
func (e *env) testKoaThenGo(t *testing.T) {
	b := e.browser()
	set := b.get(t, e.koa, "/set", "")
	user, _ := set.values["user_id"].(string)
	mustMatch(t, "/set on Koa", set, 0, user)
	id := b.id()
	if user == "" || !koaID.MatchString(id) {
		t.Fatalf("Koa's /set gave user_id %q and id %q", user, id)
	}
	e.waitRow(t, id, set.values)

	// Go accepts the id Koa issued: same session, no new cookie.
	g1 := b.get(t, e.goURL, "/", "")
	mustMatch(t, "/ on Go", g1, 1, user)
	if len(g1.setCookie) != 0 || b.id() != id {
		t.Fatalf("Go replaced Koa's cookie: Set-Cookie %q", g1.setCookie)
	}
	// Go wrote before it answered.
	if got, _ := e.row(t, id); !reflect.DeepEqual(got, g1.values) {
		t.Fatalf("after Go answered, the row holds %v, want %v", got, g1.values)
	}

	k2 := b.get(t, e.koa, "/", "")
	mustMatch(t, "/ on Koa", k2, 2, user)
	e.waitRow(t, id, k2.values)

	g3 := b.get(t, e.goURL, "/", "")
	mustMatch(t, "second / on Go", g3, 3, user)
	if b.id() != id {
		t.Fatalf("the id changed from %s to %s", id, b.id())
	}
}

// testGoThenKoa: the other way round, starting with /set on Go.
func (e *env) testGoThenKoa(t *testing.T) {
	b := e.browser()
	start := time.Now()
	set := b.get(t, e.goURL, "/set", "")
	user, _ := set.values["user_id"].(string)
	mustMatch(t, "/set on Go", set, 0, user)
	id := b.id()
	if user == "" || !koaID.MatchString(id) {
		t.Fatalf("Go's /set gave user_id %q and id %q, want a Koa-shaped id", user, id)
	}
	if len(set.setCookie) != 1 || !strings.Contains(set.setCookie[0], "Path=/") {
		t.Fatalf("Go's /set sent Set-Cookie %q, want one SESSION_ID cookie with Path=/", set.setCookie)
	}
	// Koa's format: the values, and expires in milliseconds a day ahead.
	var expires int64
	if err := e.db.QueryRow("SELECT expires FROM "+koaTable+" WHERE id = ?", "SESSION_ID:"+id).Scan(&expires); err != nil {
		t.Fatal(err)
	}
	if lo, hi := start.Add(24*time.Hour).UnixMilli()-1000, time.Now().Add(24*time.Hour).UnixMilli()+1000; expires < lo || expires > hi {
		t.Errorf("Go wrote expires %d, want about %d (now + 1 day in ms)", expires, lo+1000)
	}
	if got, _ := e.row(t, id); !reflect.DeepEqual(got, set.values) {
		t.Fatalf("the row holds %v, want %v", got, set.values)
	}

	// Koa accepts the id Go issued.
	k1 := b.get(t, e.koa, "/", "")
	mustMatch(t, "/ on Koa", k1, 1, user)
	if b.id() != id {
		t.Fatalf("Koa changed the id from %s to %s", id, b.id())
	}
	e.waitRow(t, id, k1.values)

	g2 := b.get(t, e.goURL, "/", "")
	mustMatch(t, "/ on Go", g2, 2, user)

	k3 := b.get(t, e.koa, "/", "")
	mustMatch(t, "second / on Koa", k3, 3, user)
	e.waitRow(t, id, k3.values)
	if b.id() != id {
		t.Fatalf("the id changed from %s to %s", id, b.id())
	}
}

// testLogoutOnGo: a logout on Go deletes the row and expires the cookie, so
// Koa no longer finds the session, not even when the old cookie is
// replayed.
func (e *env) testLogoutOnGo(t *testing.T) {
	b := e.browser()
	set := b.get(t, e.koa, "/set", "")
	user, _ := set.values["user_id"].(string)
	id := b.id()
	e.waitRow(t, id, set.values)
	mustMatch(t, "/ on Go", b.get(t, e.goURL, "/", ""), 1, user)

	out := b.get(t, e.goURL, "/logout", "")
	if len(out.values) != 0 {
		t.Fatalf("/logout on Go answered %s", out.body)
	}
	if _, ok := e.row(t, id); ok {
		t.Fatal("the row is still there after Go answered /logout")
	}
	if b.id() != "" {
		t.Fatalf("the cookie survived the logout: %q", out.setCookie)
	}

	// Koa, with the jar, sees a new visitor: NaN + 1 is null, no user_id.
	mustMatch(t, "/ on Koa after the logout", b.get(t, e.koa, "/", ""), nil, "")
	// Koa, with the old cookie replayed, finds no session either. (Koa
	// then adopts the id and writes {"count":null} under it: Koa's own
	// laxness, which Go cannot prevent.)
	replay := b.get(t, e.koa, "/", "SESSION_ID="+id)
	mustMatch(t, "/ on Koa with the old cookie", replay, nil, "")
	e.waitRow(t, id, replay.values)
	// The jar now holds the new id Koa gave the new visitor, whose row is
	// {"count":null}. On Go, JavaScript's null reads as a missing count.
	newID := b.id()
	if newID == "" || newID == id {
		t.Fatalf("Koa gave the new visitor id %q (the old one was %s)", newID, id)
	}
	e.waitRow(t, newID, map[string]any{"count": nil})
	mustMatch(t, "/ on Go after Koa stored a null count", b.get(t, e.goURL, "/", ""), 1, "")
}

// testExpiredRow: a row whose expires has passed is not served by Go (Koa
// would serve it): Go starts a fresh session under a new id and deletes the
// old row.
func (e *env) testExpiredRow(t *testing.T) {
	b := e.browser()
	set := b.get(t, e.koa, "/set", "")
	id := b.id()
	e.waitRow(t, id, set.values)
	past := time.Now().Add(-time.Second).UnixMilli()
	if _, err := e.db.Exec("UPDATE "+koaTable+" SET expires = ? WHERE id = ?", past, "SESSION_ID:"+id); err != nil {
		t.Fatal(err)
	}

	g := b.get(t, e.goURL, "/", "")
	mustMatch(t, "/ on Go with an expired row", g, 1, "")
	newID := b.id()
	if newID == id || !koaID.MatchString(newID) {
		t.Fatalf("Go kept the expired session's id (%s -> %s)", id, newID)
	}
	if _, ok := e.row(t, id); ok {
		t.Fatal("Go did not delete the expired row")
	}
	if got, _ := e.row(t, newID); !reflect.DeepEqual(got, g.values) {
		t.Fatalf("the new session's row holds %v, want %v", got, g.values)
	}
}

// testCaseSwappedID: Koa's own table ignores case in ids, but Go matches
// them exactly: a case-swapped copy of a live id gets a fresh session, and
// the session it resembles is untouched.
func (e *env) testCaseSwappedID(t *testing.T) {
	b := e.browser()
	set := b.get(t, e.koa, "/set", "")
	id := b.id()
	e.waitRow(t, id, set.values)
	swapped := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, id)
	stranger := e.browser()
	g := stranger.get(t, e.goURL, "/", "SESSION_ID="+swapped)
	mustMatch(t, "/ on Go with a case-swapped id", g, 1, "")
	if got, _ := e.row(t, id); !reflect.DeepEqual(got, set.values) {
		t.Fatalf("the original row changed to %v", got)
	}
}

// requireNode returns the node binary, after checking that the Koa app's
// packages are installed (npm ci in interop/koa). Without them the test is
// skipped, except under CI=true, where it must run.
func requireNode(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		// Said on stderr too, so that `go test ./...` without -v shows it.
		fmt.Fprintf(os.Stderr, "interop: SKIP TestKoaInterop: "+format+"\n", args...)
		t.Skipf(format, args...)
	}
	if os.Getenv("CI") == "true" {
		missing = t.Fatalf
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH: %v", err)
	}
	if _, err := os.Stat(filepath.Join("koa", "node_modules", "koa-mysql-session")); err != nil {
		missing("the Koa app is not installed (run npm ci in interop/koa): %v", err)
	}
	return node
}

// openDB opens the test database (see sqltest.Config: without it the test
// is skipped, except under CI=true), which the Koa app reaches over TCP.
func openDB(t *testing.T) (*sql.DB, *mysql.Config) {
	t.Helper()
	cfg := sqltest.Config(t)
	if cfg.Net != "tcp" {
		t.Fatalf("SESSION_TEST_MYSQL_DSN uses %s; the Koa app needs a TCP address", cfg.Net)
	}
	return sqltest.OpenDB(t, cfg), cfg
}

// buildCounter builds examples/counter into a temporary directory.
func buildCounter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "counter")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/seed013449c2/session/examples/counter")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/counter: %v\n%s", err, out)
	}
	return bin
}

func startCounter(t *testing.T, bin string, cfg *mysql.Config) string {
	t.Helper()
	return start(t, "counter", exec.Command(bin, "-store", "mysql", "-koa", "-addr", "127.0.0.1:0", "-dsn", cfg.FormatDSN()))
}

func startKoa(t *testing.T, node string, cfg *mysql.Config) string {
	t.Helper()
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "app.js")
	cmd.Dir = "koa"
	cmd.Env = append(os.Environ(),
		"KOA_PORT="+freePort(t),
		"MYSQL_HOST="+host, "MYSQL_PORT="+port,
		"MYSQL_USER="+cfg.User, "MYSQL_PASSWORD="+cfg.Passwd, "MYSQL_DATABASE="+cfg.DBName)
	return start(t, "koa", cmd)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// start runs cmd in a process group of its own, waits for the line that
// says where it listens, and kills the group when the test ends.
func start(t *testing.T, name string, cmd *exec.Cmd) string {
	t.Helper()
	out := &output{ready: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	select {
	case addr := <-out.ready:
		return addr
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("%s exited before listening: %v\n%s", name, err, out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not say where it listens within 30s:\n%s", name, out.String())
	}
	return ""
}

// output keeps what a process writes and reports its listening address.
type output struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan string
	found bool
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if !o.found {
		if m := listening.FindSubmatch(o.buf.Bytes()); m != nil {
			o.found = true
			o.ready <- string(m[1])
		}
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
