package session_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
)

// Per-session lifetimes and devices on a real MySQL or MariaDB: the
// columns that keep them, the upgrade of an older table, and the HTTP
// flow (see store_mysql_db_test.go for the database).

// mysqlTableBeforeDevices is the CREATE TABLE of the versions before
// per-session lifetimes and devices, verbatim.
func mysqlTableBeforeDevices(table string) string {
	return "CREATE TABLE IF NOT EXISTS `" + table + "` (\n" +
		"  id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n" +
		"  data MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n" +
		"  owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',\n" +
		"  created_at DATETIME(6) NOT NULL,\n" +
		"  expires_at DATETIME(6) NOT NULL,\n" +
		"  deadline_at DATETIME(6) NULL,\n" +
		"  version BIGINT NOT NULL,\n" +
		"  PRIMARY KEY (id),\n" +
		"  KEY owner_idx (owner),\n" +
		"  KEY expires_at_idx (expires_at)\n" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
}

// tableShape describes a table's columns and indexes as the server sees
// them, in order.
func tableShape(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	var b strings.Builder
	rows, err := db.Query(`SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COALESCE(COLUMN_DEFAULT, 'NULL'), COALESCE(COLLATION_NAME, '')
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, typ, null, def, coll string
		if err := rows.Scan(&name, &typ, &null, &def, &coll); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s %s %s\n", name, typ, null, def, coll)
	}
	rows, err = db.Query(`SELECT INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var index, column string
		var seq int
		if err := rows.Scan(&index, &seq, &column); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "index %s %d %s\n", index, seq, column)
	}
	return b.String()
}

// TestMySQLUpgradeTable: a table of an earlier version, under
// NoCreateTable, fails loudly, with the fix in the error, until
// UpgradeTableSQL runs; then it has exactly the shape of a new table, its
// sessions live on (listed, without a handle), and new ones keep
// everything. Without NoCreateTable the constructor upgrades it.
func TestMySQLUpgradeTable(t *testing.T) {
	cfg, old := sqltest.Table(t)
	_, fresh := sqltest.Table(t)
	db := sqltest.OpenDB(t, cfg)
	ctx := context.Background()
	if _, err := db.Exec(mysqlTableBeforeDevices(old)); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if _, err := db.Exec("INSERT INTO `"+old+"` (id, data, owner, created_at, expires_at, deadline_at, version) VALUES ('k1', '{\"n\":1}', 'ann', ?, ?, NULL, 1)",
		now.Format("2006-01-02 15:04:05.000000"), now.Add(time.Hour).Format("2006-01-02 15:04:05.000000")); err != nil {
		t.Fatal(err)
	}
	s, err := session.NewMySQLStore(db, session.MySQLOptions{Table: old, NoCreateTable: true, CleanupInterval: -1})
	s = sqltest.Opened(t, s, err)
	if _, err := s.Load(ctx, "k1"); err == nil || !strings.Contains(err.Error(), "MySQLStore.UpgradeTableSQL") || !errors.Is(err, &mysql.MySQLError{Number: 1054}) {
		t.Fatalf("Load before the upgrade = %v; want the unknown column and the fix", err)
	}
	if _, err := db.Exec(s.UpgradeTableSQL()); err != nil {
		t.Fatalf("UpgradeTableSQL: %v", err)
	}
	newMySQLTestStore(t, db, fresh) // creates the table as a new deployment would
	if got, want := tableShape(t, db, old), tableShape(t, db, fresh); got != want {
		t.Fatalf("upgraded table:\n%s\nnew table:\n%s", got, want)
	}
	// Without NoCreateTable, the constructor upgrades the table itself,
	// and a second server finds nothing to do.
	_, auto := sqltest.Table(t)
	if _, err := db.Exec(mysqlTableBeforeDevices(auto)); err != nil {
		t.Fatal(err)
	}
	newMySQLTestStore(t, db, auto)
	newMySQLTestStore(t, db, auto)
	if got, want := tableShape(t, db, auto), tableShape(t, db, fresh); got != want {
		t.Fatalf("table upgraded by the constructor:\n%s\nnew table:\n%s", got, want)
	}
	rec, err := s.Load(ctx, "k1")
	if err != nil || string(rec.Values["n"]) != "1" || rec.Handle != "" || rec.Label != "" || rec.IdleTimeout != 0 || rec.Persist != session.CookieDefault {
		t.Fatalf("a session stored before the upgrade = %+v, %v", rec, err)
	}
	if list, err := s.Devices(ctx, "ann", 10); err != nil || len(list) != 1 || list[0].Handle != "" {
		t.Fatalf("Devices after the upgrade = %+v, %v; want the old session, without a handle", list, err)
	}
	if ok, err := s.DeleteDevice(ctx, "ann", ""); ok || err != nil {
		t.Fatalf("DeleteDevice with an empty handle = %v, %v; want nothing matched", ok, err)
	}
}

// TestMySQLRememberAndDevicesHTTP: through HTTP on MySQL, what Remember,
// SetLabel and ForgetOnClose chose is in the row's columns, a Regenerate
// (a Rename on MySQL) carries it and the handle to the new row, and a
// locked request lists and ends devices on its one connection.
func TestMySQLRememberAndDevicesHTTP(t *testing.T) {
	cfg, table := sqltest.Table(t)
	db := sqltest.OpenDB(t, cfg)
	st := newMySQLTestStore(t, db, table)
	srv := newServer(t, session.Options{Store: st}, accountRoutes())
	type row struct {
		owner, label, handle string
		idleMS               int64
		persist              int
	}
	rowOf := func(id string) (r row) {
		t.Helper()
		err := db.QueryRow("SELECT owner, label, handle, idle_ms, persist FROM `"+table+"` WHERE id = ?", hashedKey(id)).
			Scan(&r.owner, &r.label, &r.handle, &r.idleMS, &r.persist)
		if err != nil {
			t.Fatalf("row of the session: %v", err)
		}
		return r
	}
	res, _ := srv.send("/login?remember=48h,240h&label=Laptop")
	first, age := maxAge(t, res)
	got := rowOf(first.Value)
	if age != 48*time.Hour || got.owner != "ann" || got.label != "Laptop" || len(got.handle) != 22 || got.idleMS != 48*3600*1000 || got.persist != 1 {
		t.Fatalf("after a remembered login: Max-Age %v, row %+v", age, got)
	}
	res, _ = srv.sendID("/regen", first.Value)
	second, age := maxAge(t, res)
	if again := rowOf(second.Value); age != 48*time.Hour || again != got {
		t.Fatalf("after Regenerate: Max-Age %v, row %+v; want %+v", age, again, got)
	}
	if n := sqltest.CountRows(t, db, table, "id = '"+hashedKey(first.Value)+"'"); n != 0 {
		t.Fatalf("the old row is still there")
	}
	res, _ = srv.sendID("/forget", second.Value)
	if _, age := maxAge(t, res); age != 0 {
		t.Fatalf("ForgetOnClose: Max-Age %v", age)
	}
	if r := rowOf(second.Value); r.idleMS != 0 || r.persist != 2 || r.label != "Laptop" || r.handle != got.handle {
		t.Fatalf("after ForgetOnClose: row %+v", r)
	}

	// Locked, on a pool of one connection: the lock's connection serves
	// the list and the end of a device.
	one := sqltest.OpenDB(t, cfg)
	one.SetMaxOpenConns(1)
	locked := newServer(t, session.Options{Store: newMySQLTestStore(t, one, table), Lock: true, LockTimeout: 5 * time.Second}, accountRoutes())
	res, _ = locked.send("/login?label=Phone")
	phone, _ := maxAge(t, res)
	list := devicesOf(t, locked, phone.Value)
	if len(list) != 2 {
		t.Fatalf("ann's devices = %+v, want the laptop and the phone", list)
	}
	res, body := locked.sendID("/end?h="+byLabel(t, list, "Laptop").Handle, phone.Value)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/end under a lock: %d %s", res.StatusCode, body)
	}
	if _, body := srv.sendID("/who", second.Value); body != "" {
		t.Fatalf("the laptop after the phone ended it: %q", body)
	}
	var names []string
	for _, d := range devicesOf(t, locked, phone.Value) {
		names = append(names, d.Label)
	}
	if b, _ := json.Marshal(names); string(b) != `["Phone"]` {
		t.Fatalf("devices after ending the laptop: %s", b)
	}
}
