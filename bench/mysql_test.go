package bench

import (
	"context"
	"database/sql"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/alexedwards/scs/mysqlstore"
	"github.com/alexedwards/scs/v2"
	"github.com/go-sql-driver/mysql"
	"github.com/seed013449c2/session"
)

const (
	// benchTable is our store's table. It is made anew for each benchmark.
	benchTable = "sessions_bench"
	// scsDatabase holds scs's table: its mysqlstore hard-codes the table
	// name "sessions", which in the test database is our store's default
	// table (with our schema), so scs gets a database of its own on the same
	// server.
	scsDatabase = "session_bench_scs"
	// scsSchema is the table of scs's mysqlstore README, with its index.
	scsSchema = `CREATE TABLE IF NOT EXISTS sessions (
	token CHAR(43) PRIMARY KEY,
	data BLOB NOT NULL,
	expiry TIMESTAMP(6) NOT NULL,
	INDEX sessions_expiry_idx (expiry)
)`
)

// openMySQL opens a pool on the test server, on database dbName ("" for the
// DSN's). An unreachable server skips the benchmark, except with CI=true,
// where it fails it. Both libraries get the same pool settings, sized so
// that no request waits for, or has to open, a connection.
func openMySQL(tb testing.TB, dbName string) *sql.DB {
	tb.Helper()
	db, addr, err := dialMySQL(tb, dbName)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("MySQL at %s unreachable (CI=true): %v", addr, err)
		}
		tb.Skipf("MySQL at %s unreachable: %v", addr, err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	return db
}

// mysqlUp reports whether the test server answers. When it does not, it
// logs why, except with CI=true, where it fails tb.
func mysqlUp(tb testing.TB) bool {
	tb.Helper()
	_, addr, err := dialMySQL(tb, "")
	if err == nil {
		return true
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("MySQL at %s unreachable (CI=true): %v", addr, err)
	}
	tb.Logf("MySQL at %s unreachable, its targets left out: %v", addr, err)
	return false
}

// dialMySQL opens a pool on the server of SESSION_TEST_MYSQL_DSN (default
// root@tcp(127.0.0.1:3306)/test), on database dbName ("" for the DSN's),
// closed when tb ends, and pings it. It returns the server's address for
// messages.
func dialMySQL(tb testing.TB, dbName string) (*sql.DB, string, error) {
	tb.Helper()
	dsn := os.Getenv("SESSION_TEST_MYSQL_DSN")
	if dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/test"
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		tb.Fatalf("SESSION_TEST_MYSQL_DSN: %v", err)
	}
	if dbName != "" {
		cfg.DBName = dbName
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return db, cfg.Addr, db.PingContext(ctx)
}

func mustExec(tb testing.TB, db *sql.DB, query string) {
	tb.Helper()
	if _, err := db.Exec(query); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
}

// newOurMySQL returns our MySQL store on a new benchTable.
func newOurMySQL(tb testing.TB) session.Store {
	tb.Helper()
	return newOurMySQLTable(tb, benchTable)
}

// newOurMySQLTable returns our MySQL store on table, dropped first so that
// the store creates it with the schema of the library under test: the
// table holds nothing but benchmark sessions.
func newOurMySQLTable(tb testing.TB, table string) session.Store {
	tb.Helper()
	db := openMySQL(tb, "")
	mustExec(tb, db, "DROP TABLE IF EXISTS "+table)
	st, err := session.NewMySQLStore(db, session.MySQLOptions{Table: table})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// newSCSMySQL returns scs with its mysqlstore on an emptied table. Its
// cleanup goroutine is off (interval 0): it would only delete expired rows
// every five minutes, and it cannot be stopped without a data race.
func newSCSMySQL(tb testing.TB) *scs.SessionManager {
	tb.Helper()
	mustExec(tb, openMySQL(tb, ""), "CREATE DATABASE IF NOT EXISTS "+scsDatabase)
	db := openMySQL(tb, scsDatabase)
	mustExec(tb, db, scsSchema)
	mustExec(tb, db, "DELETE FROM sessions")
	sm := newSCS()
	sm.Store = mysqlstore.NewWithCleanupInterval(db, 0)
	return sm
}

func newMySQLContender(tb testing.TB, name string) contender {
	tb.Helper()
	body := newBodies()
	switch name {
	case ours:
		m := newManager(tb, session.Options{Store: newOurMySQL(tb)})
		return contender{name: name, read: m.Handler(oursRead(body)), write: m.Handler(oursWrite(body))}
	case scsLib:
		return scsContender(newSCSMySQL(tb), body)
	}
	tb.Fatalf("no MySQL contender %q", name)
	return contender{}
}

// statusCounters are the server's global counters that stmts/op is made of.
// Measured on MariaDB 10.11 with go-sql-driver/mysql, which prepares every
// statement that has arguments (unless interpolateParams=true): a statement
// with arguments is COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_CLOSE;
// Questions counts the EXECUTE (and each plain-text query) once and
// ignores PREPARE and CLOSE; Com_select, Com_insert, Com_update and
// Com_delete count executions of prepared and plain statements alike
// (INSERT ... ON DUPLICATE KEY UPDATE is a Com_insert, SELECT GET_LOCK a
// Com_select); Com_stmt_prepare counts the extra round trips. Reading the
// counters is itself one plain query, counted by Questions once per
// reading.
func statusCounters() []string {
	return []string{"Questions", "Com_select", "Com_insert", "Com_update", "Com_delete", "Com_stmt_prepare"}
}

const statusQuery = "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_select', 'Com_insert', 'Com_update', 'Com_delete', 'Com_stmt_prepare')"

func readStatus(tb testing.TB, db *sql.DB) map[string]int64 {
	tb.Helper()
	rows, err := db.Query(statusQuery)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	got := make(map[string]int64, 6)
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			tb.Fatal(err)
		}
		got[name] = v
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	for _, name := range statusCounters() {
		if _, ok := got[name]; !ok {
			tb.Fatalf("SHOW GLOBAL STATUS has no %s", name)
		}
	}
	return got
}

// countStatements reads the server's counters now and returns the function
// that, called after the timed loop, reports per request: stmts/op (every
// statement executed: Questions less the counter reading itself),
// selects/op, writes/op (INSERT, UPDATE and DELETE) and prepares/op. The
// counters are the server's, so other clients of the same server during
// the run would show up in them: run on an otherwise idle server.
func countStatements(b *testing.B) func() {
	db := openMySQL(b, "")
	db.SetMaxOpenConns(1)
	before := readStatus(b, db)
	return func() {
		after := readStatus(b, db)
		d := func(name string) float64 { return float64(after[name]-before[name]) / float64(b.N) }
		b.ReportMetric(float64(after["Questions"]-before["Questions"]-1)/float64(b.N), "stmts/op")
		b.ReportMetric(d("Com_select"), "selects/op")
		b.ReportMetric(d("Com_insert")+d("Com_update")+d("Com_delete"), "writes/op")
		b.ReportMetric(d("Com_stmt_prepare"), "prepares/op")
	}
}

// BenchmarkMySQLReadOnly: BenchmarkReadOnly on MySQL, ours and scs's
// mysqlstore on the same server.
func BenchmarkMySQLReadOnly(b *testing.B) {
	benchMySQL(b, func(ct contender) http.Handler { return ct.read }, "1")
}

// BenchmarkMySQLWrite: BenchmarkWrite on MySQL, ours and scs's mysqlstore
// on the same server.
func BenchmarkMySQLWrite(b *testing.B) {
	benchMySQL(b, func(ct contender) http.Handler { return ct.write }, "2")
}

func benchMySQL(b *testing.B, handler func(contender) http.Handler, want string) {
	for _, name := range []string{ours, scsLib} {
		b.Run(name, func(b *testing.B) {
			ct := newMySQLContender(b, name)
			c := newClient("/", newSession(b, name, ct.write, "/"))
			h := handler(ct)
			c.expect(b, h, want)
			done := countStatements(b)
			runSerial(b, h, c)
			done()
		})
	}
}

// BenchmarkMySQLLockCost is BenchmarkLockCost on our MySQL store: the lock
// is GET_LOCK on a connection of its own, released with RELEASE_LOCK.
func BenchmarkMySQLLockCost(b *testing.B) {
	benchLockCost(b, newOurMySQL, countStatements)
}

// BenchmarkMySQLConcurrentWrite is BenchmarkConcurrentWrite on our MySQL
// store.
func BenchmarkMySQLConcurrentWrite(b *testing.B) {
	benchConcurrentWrite(b, newOurMySQL, countStatements)
}
