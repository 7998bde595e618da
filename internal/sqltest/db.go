// Package sqltest is what the tests of the SQL stores share (the MySQL
// store of package session, the Koa bridge of package koa, the examples
// and the interop test): the test database and its tables, and the sqlmock
// checks every SQL store passes (the error matrix, Update's transaction
// step by step, Create over a taken key, the cleanup's logs).
//
// Tests only import it. It does not import package session, so that the
// root package's own tests can use it; the sentinels it checks come in as
// [Errors].
package sqltest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Config returns the configuration of the test database:
// SESSION_TEST_MYSQL_DSN, by default root@tcp(127.0.0.1:3306)/test.
// Without a reachable database the test is skipped, except under CI=true,
// where a skipped database test would hide a broken setup, so it fails.
func Config(t testing.TB) *mysql.Config {
	t.Helper()
	cfg, _ := open(t)
	return cfg
}

// open is Config, with the pool it pinged.
func open(t testing.TB) (*mysql.Config, *sql.DB) {
	t.Helper()
	dsn := os.Getenv("SESSION_TEST_MYSQL_DSN")
	if dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/test"
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("SESSION_TEST_MYSQL_DSN: %v", err)
	}
	db := OpenDB(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MySQL at %s unreachable: %v", cfg.Addr, err)
		}
		t.Skipf("MySQL at %s unreachable: %v", cfg.Addr, err)
	}
	return cfg, db
}

// Table returns the configuration of the test database (see [Config]) and
// a table name unique to this test, which is dropped when the test ends.
func Table(t testing.TB) (*mysql.Config, string) {
	t.Helper()
	cfg, db := open(t)
	b := make([]byte, 6)
	rand.Read(b)
	table := "sessiontest_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if _, err := db.Exec("DROP TABLE IF EXISTS `" + table + "`"); err != nil {
			t.Errorf("drop test table %s: %v", table, err)
		}
	})
	return cfg, table
}

// OpenDB opens a pool of its own, closed when the test ends.
func OpenDB(t testing.TB, cfg *mysql.Config) *sql.DB {
	t.Helper()
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

// Opened fails the test on err, and otherwise closes s when the test ends,
// reporting a failed Close: opening a store is
//
//	s, err := session.NewMySQLStore(db, opts)
//	return sqltest.Opened(t, s, err)
func Opened[S interface{ Close() error }](t testing.TB, s S, err error) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// CountRows counts the rows of table that match where.
func CountRows(t testing.TB, db *sql.DB, table, where string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM `" + table + "` WHERE " + where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// StoredValues reads key's row as the database holds it, every SQL store's
// table having id and data columns; found is false when there is none.
func StoredValues(t testing.TB, db *sql.DB, table, key string) (values map[string]json.RawMessage, found bool) {
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

// StoredCount is the count the database holds for key, -1 for no row.
func StoredCount(t testing.TB, db *sql.DB, table, key string) int {
	t.Helper()
	values, found := StoredValues(t, db, table, key)
	if !found {
		return -1
	}
	n, err := strconv.Atoi(string(values["count"]))
	if err != nil {
		t.Fatalf("stored count %s: %v", values["count"], err)
	}
	return n
}

// WaitRowLockWait waits until a statement like pattern (a LIKE pattern in
// which TABLE stands for the quoted table) runs on another connection:
// while the test holds the row's lock, one that needs it waits.
func WaitRowLockWait(t testing.TB, admin *sql.DB, table, pattern string) {
	t.Helper()
	pattern = strings.ReplaceAll(pattern, "TABLE", "`"+table+"`")
	WaitFor(t, "a statement like "+pattern+" to wait for the row lock", func() bool {
		var n int
		err := admin.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND IN ('Query', 'Execute') AND INFO LIKE ? AND ID <> CONNECTION_ID()",
			pattern).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
}

// LockName is the GET_LOCK name the SQL stores use for key in table,
// written out here so that a change to the formula fails a test.
func LockName(table, key string) string {
	sum := sha256.Sum256([]byte(table + "\x00" + key))
	return "session:" + hex.EncodeToString(sum[:])[:56]
}

// WaitFor polls cond until it holds, failing the test after 10 seconds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Receive waits for one value from c, failing the test after 10 seconds.
func Receive[T any](t testing.TB, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("waited 10s for %s", what)
		panic("unreachable")
	}
}
