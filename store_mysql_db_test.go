package session_test

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
	"github.com/seed013449c2/session/sessiontest"
)

// These tests run against a real MySQL or MariaDB: SESSION_TEST_MYSQL_DSN,
// by default root@tcp(127.0.0.1:3306)/test (see sqltest.Config). Each test
// works in a table of its own, dropped when it ends.

// openMySQLTestStore opens a store with a pool of its own, closed when the
// test ends.
func openMySQLTestStore(t *testing.T, cfg *mysql.Config, opts session.MySQLOptions) *session.MySQLStore {
	t.Helper()
	s, err := session.OpenMySQLStore(cfg, opts)
	return sqltest.Opened(t, s, err)
}

// newMySQLTestStore opens a store on the caller's pool, closed when the test
// ends.
func newMySQLTestStore(t *testing.T, db *sql.DB, table string) *session.MySQLStore {
	t.Helper()
	s, err := session.NewMySQLStore(db, session.MySQLOptions{Table: table})
	return sqltest.Opened(t, s, err)
}

// insertMySQLRows writes n rows straight into table, 1000 per INSERT,
// expired an hour ago or live for an hour.
func insertMySQLRows(t *testing.T, db *sql.DB, table, prefix string, n int, expired bool) {
	t.Helper()
	now := time.Now().UTC()
	expires := now.Add(time.Hour)
	if expired {
		expires = now.Add(-time.Hour)
	}
	row := fmt.Sprintf(`, '{"n":1}', '', '%s', '%s', NULL, 1)`,
		now.Add(-2*time.Hour).Format("2006-01-02 15:04:05.000000"), expires.Format("2006-01-02 15:04:05.000000"))
	var q strings.Builder
	for start := 0; start < n; start += 1000 {
		q.Reset()
		q.WriteString("INSERT INTO `" + table + "` (id, data, owner, created_at, expires_at, deadline_at, version) VALUES ")
		for i := start; i < min(start+1000, n); i++ {
			if i > start {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "('%s%08d'%s", prefix, i, row)
		}
		if _, err := db.Exec(q.String()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMySQLConformance(t *testing.T) {
	plus5 := time.FixedZone("+05:00", 5*3600)
	variants := []struct {
		name  string
		apply func(*mysql.Config)
		opts  session.MySQLOptions
	}{
		{"parseTime=false, cleanup racing the suite", func(c *mysql.Config) { c.ParseTime = false },
			session.MySQLOptions{CleanupInterval: 20 * time.Millisecond}},
		{"parseTime=true loc=UTC", func(c *mysql.Config) { c.ParseTime, c.Loc = true, time.UTC },
			session.MySQLOptions{}},
		{"parseTime=true loc=+05:00 interpolateParams", func(c *mysql.Config) { c.ParseTime, c.Loc, c.InterpolateParams = true, plus5, true },
			session.MySQLOptions{}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			cfg, table := sqltest.Table(t)
			cfg = cfg.Clone()
			v.apply(cfg)
			opts := v.opts
			opts.Table = table
			sessiontest.Run(t, func(t *testing.T) session.Store { return openMySQLTestStore(t, cfg, opts) })
		})
	}
}

// TestMySQLHTTP runs the middleware's HTTP suite with every app server on
// a pool of its own over one table, as separate processes would be. The
// pools hold at most 32 connections, which its 128 concurrent writers of
// one session share.
func TestMySQLHTTP(t *testing.T) {
	sessiontest.RunHTTP(t, func(t *testing.T) func() session.Store {
		cfg, table := sqltest.Table(t)
		return func() session.Store {
			db := sqltest.OpenDB(t, cfg)
			db.SetMaxOpenConns(32) // leave room in max_connections for the tests beside
			return newMySQLTestStore(t, db, table)
		}
	})
}

// TestMySQLRowIsReadable: a row holds the values as one JSON object and
// UTC times, whatever the writer's DSN says about time.
func TestMySQLRowIsReadable(t *testing.T) {
	cfg, table := sqltest.Table(t)
	writer := cfg.Clone()
	writer.ParseTime, writer.Loc = true, time.FixedZone("-07:00", -7*3600)
	s := openMySQLTestStore(t, writer, session.MySQLOptions{Table: table})
	created := time.Date(2025, 6, 1, 23, 30, 0, 123456000, time.FixedZone("+02:00", 2*3600))
	rec := &session.Record{
		Values:  map[string]json.RawMessage{"user_id": json.RawMessage(`"k3j2"`), "count": json.RawMessage(`1`)},
		Owner:   "k3j2",
		Created: created,
		Expires: time.Now().Add(time.Hour),
	}
	if err := s.Create(t.Context(), "k1", rec); err != nil {
		t.Fatal(err)
	}
	reader := cfg.Clone()
	reader.ParseTime = false
	db := sqltest.OpenDB(t, reader)
	var data, owner, createdAt string
	var deadline sql.NullString
	err := db.QueryRow("SELECT data, owner, created_at, deadline_at FROM `"+table+"` WHERE id = 'k1'").Scan(&data, &owner, &createdAt, &deadline)
	if err != nil {
		t.Fatal(err)
	}
	if data != `{"count":1,"user_id":"k3j2"}` || owner != "k3j2" || createdAt != "2025-06-01 21:30:00.123456" || deadline.Valid {
		t.Errorf("row = %s, %q, %s, %v; want the JSON object, the owner, the UTC time and no deadline", data, owner, createdAt, deadline)
	}
}

// stmtLog records the DELETE statements a pool sends and what each did.
type stmtLog struct {
	mu      sync.Mutex
	deletes []loggedDelete
}

type loggedDelete struct {
	query string
	args  []driver.NamedValue
	rows  int64
}

// loggingConnector wraps the driver's connector to see every DELETE,
// whether the store sends it as it is (interpolateParams makes the driver
// run ExecContext itself) or as a prepared statement, which the store
// uses for the statements it repeats.
type loggingConnector struct {
	driver.Connector
	log *stmtLog
}

func (c loggingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &loggingConn{Conn: conn, log: c.log}, nil
}

type loggingConn struct {
	driver.Conn
	log *stmtLog
}

func (c *loggingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	res, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
	c.log.add(query, args, res, err)
	return res, err
}

// add logs one statement when it is a DELETE that succeeded.
func (l *stmtLog) add(query string, args []driver.NamedValue, res driver.Result, err error) {
	if err == nil && strings.HasPrefix(query, "DELETE") {
		n, _ := res.RowsAffected()
		l.mu.Lock()
		l.deletes = append(l.deletes, loggedDelete{query, args, n})
		l.mu.Unlock()
	}
}

func (c *loggingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *loggingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &loggingStmt{Stmt: st, query: query, log: c.log}, nil
}

// loggingStmt is a prepared statement whose executions are logged.
type loggingStmt struct {
	driver.Stmt
	query string
	log   *stmtLog
}

func (s *loggingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	res, err := s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
	s.log.add(s.query, args, res, err)
	return res, err
}

func (s *loggingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (c *loggingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *loggingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *loggingConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

func (c *loggingConn) CheckNamedValue(v *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(v)
}

// TestMySQLCleanup100k: a backlog of 100,000 expired rows is deleted in
// statements that each carry a LIMIT of CleanupBatch and delete no more,
// and live rows are left alone.
func TestMySQLCleanup100k(t *testing.T) {
	const expired, live, batch = 100_000, 10, 1000
	cfg, table := sqltest.Table(t)
	cfg = cfg.Clone()
	cfg.InterpolateParams = true
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := &stmtLog{}
	db := sql.OpenDB(loggingConnector{connector, log})
	t.Cleanup(func() { db.Close() })
	s, err := session.NewMySQLStore(db, session.MySQLOptions{Table: table, CleanupInterval: -1, CleanupBatch: batch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	start := time.Now()
	insertMySQLRows(t, db, table, "expired", expired, true)
	insertMySQLRows(t, db, table, "live", live, false)
	t.Logf("inserted %d rows in %v", expired+live, time.Since(start))

	start = time.Now()
	n, err := s.DeleteExpired(t.Context())
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if n != expired {
		t.Errorf("DeleteExpired = %d, want %d", n, expired)
	}
	if got := sqltest.CountRows(t, db, table, "1=1"); got != live {
		t.Errorf("%d rows left, want the %d live ones", got, live)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	want := fmt.Sprintf("DELETE FROM `%s` WHERE expires_at <= ? LIMIT ?", table)
	var total int64
	for i, d := range log.deletes {
		if d.query != want || len(d.args) != 2 || d.args[1].Value != int64(batch) {
			t.Fatalf("statement %d = %s %v, want %s with LIMIT %d", i, d.query, d.args, want, batch)
		}
		if d.rows > batch {
			t.Fatalf("statement %d deleted %d rows, more than its batch", i, d.rows)
		}
		total += d.rows
	}
	if len(log.deletes) != expired/batch+1 || total != expired {
		t.Errorf("%d DELETE statements removed %d rows, want %d statements", len(log.deletes), total, expired/batch+1)
	}
	t.Logf("deleted %d expired rows in %d statements of at most %d in %v", total, len(log.deletes), batch, took)
	// Bounded latency (R20): a generous bound, far above what any machine
	// that runs the suite needs (under a second here), that a cleanup
	// holding one huge statement, or looping, would not meet.
	if took > 30*time.Second {
		t.Errorf("cleaning %d expired rows took %v, want under 30 s", total, took)
	}
}

func TestMySQLCloseStopsCleanup(t *testing.T) {
	cfg, table := sqltest.Table(t)
	db := sqltest.OpenDB(t, cfg)
	before := session.CleanupGoroutines("newMySQLStore")
	s, err := session.NewMySQLStore(db, session.MySQLOptions{Table: table, CleanupInterval: 10 * time.Millisecond, CleanupBatch: 7})
	if err != nil {
		t.Fatal(err)
	}
	if got := session.CleanupGoroutines("newMySQLStore"); got != before+1 {
		t.Fatalf("%d cleanup goroutines running, want %d", got, before+1)
	}
	insertMySQLRows(t, db, table, "old", 50, true)
	deadline := time.Now().Add(10 * time.Second)
	for sqltest.CountRows(t, db, table, "1=1") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the cleanup did not delete the expired rows within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := session.CleanupGoroutines("newMySQLStore"); got != before {
		t.Fatalf("%d cleanup goroutines after Close, want %d", got, before)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The pool was the caller's: it stays open. Rows expired after Close
	// stay, since nothing cleans any more.
	insertMySQLRows(t, db, table, "after", 5, true)
	time.Sleep(100 * time.Millisecond)
	if got := sqltest.CountRows(t, db, table, "1=1"); got != 5 {
		t.Errorf("%d rows after Close, want the 5 inserted after it", got)
	}

	// A store that opened its own pool closes it.
	own := openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table})
	if err := own.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := own.Load(t.Context(), "k"); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Errorf("Load after Close of an own pool = %v, want a closed-pool error", err)
	}
}

func TestMySQLBigValue(t *testing.T) {
	cfg, table := sqltest.Table(t)
	s := openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table})
	ctx := t.Context()
	// 2 MB of JSON string with multi-byte characters and escapes, well past
	// TEXT's 64 KB.
	const unit = "session é ✓ \\\" 𝄞 "
	text := strings.Repeat(unit, 2<<20/len(unit)+1)
	big, err := json.Marshal(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(big) < 2<<20 {
		t.Fatalf("test value is only %d bytes", len(big))
	}
	rec := &session.Record{Values: map[string]json.RawMessage{"big": big}, Created: time.Now(), Expires: time.Now().Add(time.Hour)}
	if err := s.Create(ctx, "big", rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Values["big"], big) {
		t.Fatalf("the %d-byte value came back as %d bytes, changed", len(big), len(got.Values["big"]))
	}
	// Update reads the 2 MB row back under its lock and writes 3 MB.
	more := json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`)
	if _, err := s.Update(ctx, "big", &session.Change{Values: map[string]json.RawMessage{"more": more}}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Load(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Values["big"], big) || !bytes.Equal(got.Values["more"], more) {
		t.Fatal("the updated 3 MB record did not round-trip")
	}
}

func TestMySQLMissingTable(t *testing.T) {
	cfg, table := sqltest.Table(t)
	s := openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table, NoCreateTable: true})
	_, err := s.Load(t.Context(), "k")
	if !errors.Is(err, &mysql.MySQLError{Number: 1146}) || !strings.Contains(err.Error(), "table `"+table+"` does not exist") {
		t.Fatalf("Load without the table = %v, want the 1146 with the table named", err)
	}
}

// TestMySQLOwnerExact: owners compare byte for byte, though VARCHAR
// comparisons ignore trailing spaces.
func TestMySQLOwnerExact(t *testing.T) {
	cfg, table := sqltest.Table(t)
	s := openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table})
	ctx := t.Context()
	owners := []string{"alice", "alice ", "Alice", "alicé"}
	for i, owner := range owners {
		rec := &session.Record{Values: map[string]json.RawMessage{"n": json.RawMessage(`1`)}, Owner: owner,
			Created: time.Now(), Expires: time.Now().Add(time.Hour)}
		if err := s.Create(ctx, fmt.Sprintf("k%d", i), rec); err != nil {
			t.Fatal(err)
		}
	}
	for i, owner := range owners {
		n, err := s.DeleteOwner(ctx, owner, "")
		if err != nil || n != 1 {
			t.Errorf("DeleteOwner(%q) = %d, %v, want 1", owner, n, err)
		}
		for j := i + 1; j < len(owners); j++ {
			if _, err := s.Load(ctx, fmt.Sprintf("k%d", j)); err != nil {
				t.Errorf("the session of %q is gone after DeleteOwner(%q): %v", owners[j], owner, err)
			}
		}
	}
}

// TestMySQLTouchSameExpiry: MySQL reports a row set to the value it had as
// unchanged; Touch must still succeed on a live row.
func TestMySQLTouchSameExpiry(t *testing.T) {
	cfg, table := sqltest.Table(t)
	s := openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	rec := &session.Record{Values: map[string]json.RawMessage{"n": json.RawMessage(`1`)}, Created: time.Now(), Expires: exp}
	if err := s.Create(ctx, "k", rec); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Touch(ctx, "k", exp); err != nil {
			t.Fatalf("Touch #%d to the stored expiry: %v", i+1, err)
		}
	}
	past := time.Now().Add(-time.Minute)
	if err := s.Touch(ctx, "k", past); err != nil {
		t.Fatalf("Touch into the past of a live row: %v", err)
	}
	if err := s.Touch(ctx, "k", past); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch of the row it expired = %v, want ErrNotFound", err)
	}
}

// TestMySQLLockAcrossPools: two stores on two pools stand for two app
// servers; the lock excludes across them, so read-modify-write under it
// never conflicts and loses nothing.
func TestMySQLLockAcrossPools(t *testing.T) {
	cfg, table := sqltest.Table(t)
	servers := []*session.MySQLStore{
		openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table}),
		openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table}),
	}
	ctx := t.Context()
	const key, workers, rounds = "shared", 8, 5
	rec := &session.Record{Values: map[string]json.RawMessage{"count": json.RawMessage(`0`)}, Created: time.Now(), Expires: time.Now().Add(time.Hour)}
	if err := servers[0].Create(ctx, key, rec); err != nil {
		t.Fatal(err)
	}

	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := servers[w%2]
			for range rounds {
				lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				lease, err := s.Lock(lctx, key)
				cancel()
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				err = increment(ctx, lease.Store(), key)
				inside.Add(-1)
				if uerr := lease.Unlock(); uerr != nil {
					t.Errorf("Unlock: %v", uerr)
				}
				if err != nil {
					t.Errorf("increment under the lock: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d times two servers held the lock at once", n)
	}
	got, err := servers[1].Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Values["count"]) != fmt.Sprint(workers*rounds) {
		t.Errorf("count = %s, want %d", got.Values["count"], workers*rounds)
	}

	// While one server holds the lock, the other times out.
	lease, err := servers[0].Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if l, err := servers[1].Lock(wctx, key); !errors.Is(err, session.ErrLockTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			l.Unlock()
		}
		t.Fatalf("Lock held by the other server = %v, want ErrLockTimeout and DeadlineExceeded", err)
	}
}

// increment reads the count and writes it back plus one, as a handler's
// read-modify-write does: exact only while nobody else writes in between,
// which the lock must ensure.
func increment(ctx context.Context, s session.Store, key string) error {
	rec, err := s.Load(ctx, key)
	if err != nil {
		return err
	}
	var n int
	if err := json.Unmarshal(rec.Values["count"], &n); err != nil {
		return err
	}
	_, err = s.Update(ctx, key, &session.Change{Values: map[string]json.RawMessage{"count": json.RawMessage(fmt.Sprint(n + 1))}})
	return err
}

// connRecorder keeps every connection a pool dials, so a test can cut
// them as a crash would.
type connRecorder struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (r *connRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
	}
	return c, err
}

func (r *connRecorder) cutAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

// TestMySQLLockHolderDies: when the holder's connections die, as when its
// server crashes, the database frees the lock at once; nobody waits for a
// timeout. The dead holder's store refuses to write (ErrLockLost), and its
// Unlock reports the loss.
func TestMySQLLockHolderDies(t *testing.T) {
	cfg, table := sqltest.Table(t)
	ctx := t.Context()
	rec := &connRecorder{}
	crashing := cfg.Clone()
	crashing.DialFunc = rec.dial
	crashing.Logger = mysql.Logger(log.New(io.Discard, "", 0)) // the driver would log the cut
	var logs bytes.Buffer
	holder := openMySQLTestStore(t, crashing, session.MySQLOptions{Table: table, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	other := openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table})

	if err := holder.Create(ctx, "k", &session.Record{Values: map[string]json.RawMessage{"n": json.RawMessage(`1`)}, Created: time.Now(), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	lease, err := holder.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	if _, err := other.Lock(wctx, "k"); !errors.Is(err, session.ErrLockTimeout) {
		t.Fatalf("Lock while held = %v, want ErrLockTimeout", err)
	}
	cancel()

	rec.cutAll()
	start := time.Now()
	// The wait allowed is far longer than the server needs to see the
	// connection close, and far shorter than any lock timeout.
	wctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l, err := other.Lock(wctx, "k")
	if err != nil {
		t.Fatalf("Lock after the holder's connection died: %v", err)
	}
	t.Logf("lock free %v after the holder's connections were cut", time.Since(start))

	// While the other server holds the lock, the dead holder's writes
	// fail: they would overwrite the new holder's work.
	_, err = lease.Store().Update(ctx, "k", &session.Change{Values: map[string]json.RawMessage{"n": json.RawMessage(`2`)}})
	if !errors.Is(err, session.ErrLockLost) {
		t.Errorf("Update by the holder whose connection died = %v, want ErrLockLost", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	// The dead holder's unlock cannot reach the server: it must neither
	// hang nor panic, and it reports the loss.
	if err := lease.Unlock(); !errors.Is(err, session.ErrLockLost) {
		t.Errorf("Unlock of the dead holder = %v, want ErrLockLost", err)
	}
	row, err := other.Load(ctx, "k")
	if err != nil || string(row.Values["n"]) != "1" {
		t.Errorf("Load = %+v, %v; want the row as it was, n = 1", row, err)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the holder's store logged an error:\n%s", logs.String())
	}
}
