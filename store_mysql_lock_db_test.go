package session_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/apptest"
	"github.com/seed013449c2/session/internal/sqltest"
)

// These tests drive the MySQL store through real HTTP against a real MySQL
// or MariaDB (see store_mysql_db_test.go), where what they prove lives: how
// many connections a lock needs, what happens when the server drops the
// lock's connection, and row locks that make a commit wait.

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
				cfg, table := sqltest.Table(t)
				db := sqltest.OpenDB(t, cfg)
				db.SetMaxOpenConns(conns)
				st := newMySQLTestStore(t, db, table)
				app := apptest.New(t, st, apptest.Options{Lock: true, LockTimeout: lockTimeout})
				ids := make([]string, sessions)
				for i := range ids {
					ids[i] = app.NewSession(t, "/set")
				}
				answers := app.Parallel(t, requests, func(i int) string { return ids[i%sessions] }, func(i int) string {
					return fmt.Sprintf("/inc?hold=%d", 50+150*i/(requests-1))
				})
				ok := map[string]int{}
				var unavailable int
				var slowest time.Duration
				for i, a := range answers {
					switch a.Code {
					case http.StatusOK:
						ok[ids[i%sessions]]++
					case http.StatusServiceUnavailable:
						unavailable++
					default:
						t.Errorf("request %d: %d %q, want 200 or 503", i, a.Code, a.Body)
					}
					if a.Took > lockTimeout+time.Second {
						t.Errorf("request %d took %v, longer than LockTimeout and a second", i, a.Took)
					}
					slowest = max(slowest, a.Took)
				}
				total := 0
				for _, id := range ids {
					if got := sqltest.StoredCount(t, db, table, apptest.StoreKey(st, id)); got != ok[id] {
						t.Errorf("stored count %d, but %d requests of that session answered 200", got, ok[id])
					}
					total += ok[id]
				}
				if total == 0 {
					t.Error("no request got the lock")
				}
				errs := app.Errors()
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
			cfg, table := sqltest.Table(t)
			connector, err := mysql.NewConnector(cfg)
			if err != nil {
				t.Fatal(err)
			}
			conns := &idConnector{Connector: connector}
			db := sql.OpenDB(conns)
			t.Cleanup(func() { db.Close() })
			db.SetMaxIdleConns(0)
			st := newMySQLTestStore(t, db, table)
			app := apptest.New(t, st, apptest.Options{Lock: route.lock, LockTimeout: time.Minute})
			id := app.NewSession(t, "/set")
			admin := sqltest.OpenDB(t, cfg)

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
			answers := app.Parallel(t, requests, func(int) string { return id }, func(int) string { return route.path })
			close(stop)
			<-stopped
			for i, a := range answers {
				if a.Code != http.StatusOK {
					t.Errorf("request %d: %d %q", i, a.Code, a.Body)
				}
			}
			if got := sqltest.StoredCount(t, admin, table, apptest.StoreKey(st, id)); got != requests {
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
			cfg, table := sqltest.Table(t)
			admin := sqltest.OpenDB(t, cfg)
			holderCfg := cfg.Clone()
			for k, v := range tt.params {
				if holderCfg.Params == nil {
					holderCfg.Params = map[string]string{}
				}
				holderCfg.Params[k] = v
			}
			holderCfg.Logger = mysql.Logger(log.New(io.Discard, "", 0)) // the driver would log the dropped connections
			entered, release := make(chan struct{}, 1), make(chan struct{})
			st := newMySQLTestStore(t, sqltest.OpenDB(t, holderCfg), table)
			holder := apptest.New(t, st, apptest.Options{Lock: true, LockTimeout: 10 * time.Second, Entered: entered, Release: release})
			other := apptest.New(t, newMySQLTestStore(t, sqltest.OpenDB(t, cfg), table), apptest.Options{Lock: true, LockTimeout: 10 * time.Second})
			id := holder.NewSession(t, "/set")
			name := sqltest.LockName(table, apptest.StoreKey(st, id))

			held := make(chan apptest.Answer, 1)
			go func() {
				code, body := holder.Get(t, id, "/hold")
				held <- apptest.Answer{Code: code, Body: body}
			}()
			sqltest.Receive(t, "/hold to hold the lock", entered)
			var conn sql.NullInt64
			if err := admin.QueryRow("SELECT IS_USED_LOCK(?)", name).Scan(&conn); err != nil || !conn.Valid {
				t.Fatalf("IS_USED_LOCK = %v, %v; want the holder's connection", conn, err)
			}
			if tt.kill {
				if _, err := admin.Exec(fmt.Sprintf("KILL CONNECTION %d", conn.Int64)); err != nil {
					t.Fatal(err)
				}
			} else {
				sqltest.WaitFor(t, "wait_timeout to drop the idle lock connection", func() bool {
					var c sql.NullInt64
					if err := admin.QueryRow("SELECT IS_USED_LOCK(?)", name).Scan(&c); err != nil {
						t.Fatal(err)
					}
					return !c.Valid
				})
			}

			if code, body := other.Get(t, id, "/inc"); code != http.StatusOK || body != "1" {
				t.Fatalf("/inc on the other server while the holder runs = %d %q, want 200 1", code, body)
			}
			close(release)
			if a := sqltest.Receive(t, "the holder's answer", held); a.Code != http.StatusInternalServerError {
				t.Errorf("the holder whose lock was lost answered %d %q, want 500", a.Code, a.Body)
			}
			errs := holder.Errors()
			if len(errs) != 1 || !errors.Is(errs[0], session.ErrLockLost) {
				t.Errorf("the holder's ErrorHandler heard %v, want one error wrapping ErrLockLost", errs)
			}
			if code, body := holder.Get(t, id, "/inc"); code != http.StatusOK || body != "2" {
				t.Errorf("/inc on the holder's server afterwards = %d %q, want 200 2", code, body)
			}
			if got := sqltest.StoredCount(t, admin, table, apptest.StoreKey(st, id)); got != 2 {
				t.Errorf("stored count %d, want the 2 increments answered 200", got)
			}
			if errs := other.Errors(); len(errs) != 0 {
				t.Errorf("the other server's ErrorHandler heard %v", errs)
			}
		})
	}
}

// TestMySQLLockedRevokeOneConnection: a locked request that revokes its
// owner's other sessions runs on the lock's connection, so it works on a
// pool of one.
func TestMySQLLockedRevokeOneConnection(t *testing.T) {
	cfg, table := sqltest.Table(t)
	db := sqltest.OpenDB(t, cfg)
	db.SetMaxOpenConns(1)
	st := newMySQLTestStore(t, db, table)
	app := apptest.New(t, st, apptest.Options{Lock: true, LockTimeout: 2 * time.Second, StoreTimeout: 2 * time.Second})
	phone := app.NewSession(t, "/login?owner=ann")
	laptop := app.NewSession(t, "/login?owner=ann")
	if code, body := app.Get(t, laptop, "/revoke"); code != http.StatusOK || body != "1" {
		t.Fatalf("/revoke = %d %q, want 200 and 1 other session ended", code, body)
	}
	if _, found := sqltest.StoredValues(t, db, table, apptest.StoreKey(st, phone)); found {
		t.Error("the other session survived the revoke")
	}
	if _, found := sqltest.StoredValues(t, db, table, apptest.StoreKey(st, laptop)); !found {
		t.Error("the revoking session was ended too")
	}
}

// TestMySQLCommitAfterClientLeft: a commit whose client left while it
// waited for a row lock still lands (see apptest.CommitAfterClientLeft).
func TestMySQLCommitAfterClientLeft(t *testing.T) {
	apptest.CommitAfterClientLeft(t, func(t *testing.T, db *sql.DB, table string) session.Store {
		return newMySQLTestStore(t, db, table)
	})
}
