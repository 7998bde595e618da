package koa_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/apptest"
	"github.com/seed013449c2/session/internal/sqltest"
	"github.com/seed013449c2/session/koa"
	"github.com/seed013449c2/session/sessiontest"
)

// These tests run against a real MySQL or MariaDB (see sqltest.Config),
// each in a table of its own (never the Koa app's _mysql_session_store,
// which the interop test uses).

// koaTableSQL is koa-mysql-session 0.0.2's CREATE TABLE, verbatim but for
// the table name: the form a table has when the Koa app created it first.
func koaTableSQL(table string) string {
	return "CREATE  TABLE IF NOT EXISTS `" + table + "` (`id` VARCHAR(255) NOT NULL, `expires` BIGINT NULL, `data` TEXT NULL, PRIMARY KEY (`id`));"
}

// koaTestTable returns a pool and a fresh table name, creating the table in
// Koa's own form when koaForm is set; otherwise the store creates it.
func koaTestTable(t *testing.T, koaForm bool) (*mysql.Config, *sql.DB, string) {
	t.Helper()
	cfg, table := sqltest.Table(t)
	db := sqltest.OpenDB(t, cfg)
	if koaForm {
		if _, err := db.Exec(koaTableSQL(table)); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, db, table
}

// openKoaTestStore opens a store on a pool of its own, both closed when the
// test ends.
func openKoaTestStore(t *testing.T, cfg *mysql.Config, opts koa.Options) *koa.Store {
	t.Helper()
	return newKoaTestStore(t, sqltest.OpenDB(t, cfg), opts)
}

// newKoaTestStore opens a store on the caller's pool, closed when the test
// ends.
func newKoaTestStore(t *testing.T, db *sql.DB, opts koa.Options) *koa.Store {
	t.Helper()
	s, err := koa.NewStore(db, opts)
	return sqltest.Opened(t, s, err)
}

var koaTableForms = []struct {
	name    string
	koaForm bool
}{
	{"table created by Go", false},
	{"table created by Koa", true},
}

func TestKoaConformance(t *testing.T) {
	for _, form := range koaTableForms {
		t.Run(form.name, func(t *testing.T) {
			cfg, _, table := koaTestTable(t, form.koaForm)
			opts := koa.Options{Table: table, CleanupInterval: 20 * time.Millisecond}
			sessiontest.RunWith(t, sessiontest.RunOptions{NoCreatedDeadline: true, Precision: time.Millisecond, NoLifetimeLabel: true},
				func(t *testing.T) session.Store { return openKoaTestStore(t, cfg, opts) })
		})
	}
}

// TestKoaHTTP runs the middleware's HTTP suite with every app server on a
// pool of its own over one Koa table. The pools hold at most 32
// connections, which its 128 concurrent writers of one session share.
func TestKoaHTTP(t *testing.T) {
	sessiontest.RunHTTP(t, func(t *testing.T) func() session.Store {
		cfg, _, table := koaTestTable(t, false)
		return func() session.Store {
			db := sqltest.OpenDB(t, cfg)
			db.SetMaxOpenConns(32) // leave room in max_connections for the tests beside
			return newKoaTestStore(t, db, koa.Options{Table: table})
		}
	})
}

// TestKoaCommitAfterClientLeft: a commit whose client left while it waited
// for a row lock still lands (see apptest.CommitAfterClientLeft).
func TestKoaCommitAfterClientLeft(t *testing.T) {
	apptest.CommitAfterClientLeft(t, func(t *testing.T, db *sql.DB, table string) session.Store {
		return newKoaTestStore(t, db, koa.Options{Table: table})
	})
}

// TestKoaTableForm: the store creates the strict form, and keeps a table
// Koa created first as it is.
func TestKoaTableForm(t *testing.T) {
	for _, form := range koaTableForms {
		t.Run(form.name, func(t *testing.T) {
			cfg, db, table := koaTestTable(t, form.koaForm)
			openKoaTestStore(t, cfg, koa.Options{Table: table})
			var name, create string
			if err := db.QueryRow("SHOW CREATE TABLE `"+table+"`").Scan(&name, &create); err != nil {
				t.Fatal(err)
			}
			want := []string{"`id` varbinary(255) NOT NULL", "`expires` bigint(20) NOT NULL", "`data` mediumtext", "KEY `expires_idx` (`expires`)"}
			if form.koaForm {
				want = []string{"`id` varchar(255)", "`expires` bigint(20) DEFAULT NULL", "`data` text"}
			}
			for _, w := range want {
				if !strings.Contains(create, w) {
					t.Errorf("SHOW CREATE TABLE lacks %q:\n%s", w, create)
				}
			}
		})
	}
}

// TestKoaRowFormat: the row is Koa's: the prefixed id, expires in
// milliseconds, and the values as one compact JSON object with raw UTF-8.
func TestKoaRowFormat(t *testing.T) {
	cfg, db, table := koaTestTable(t, false)
	s := openKoaTestStore(t, cfg, koa.Options{Table: table, Prefix: "koa_sess:"})
	const id = "bhV_RvxF2MFC6s7TD2hnkBJdv-2vtYaM"
	key := s.Key(id)
	expires := time.Now().Add(24 * time.Hour)
	rec := &session.Record{
		Values:  map[string]json.RawMessage{"user_id": json.RawMessage(`"q55o2ydaoce"`), "count": json.RawMessage(`2`), "emoji": json.RawMessage(`"é😀"`)},
		Created: time.Now(), Expires: expires,
	}
	if err := s.Create(t.Context(), key, rec); err != nil {
		t.Fatal(err)
	}
	var gotID, data string
	var gotExpires int64
	if err := db.QueryRow("SELECT id, expires, data FROM `"+table+"`").Scan(&gotID, &gotExpires, &data); err != nil {
		t.Fatal(err)
	}
	if gotID != "koa_sess:"+id || gotExpires != expires.UnixMilli() || data != `{"count":2,"emoji":"é😀","user_id":"q55o2ydaoce"}` {
		t.Errorf("row = %q, %d, %s; want the prefixed id, %d and the compact object", gotID, gotExpires, data, expires.UnixMilli())
	}
}

// TestKoaVersionMatchesServer: the version Create and Update compute in Go
// is the one the server's MD5 gives (Load reads LEFT(MD5(data), 16)), for
// text well outside ASCII too.
func TestKoaVersionMatchesServer(t *testing.T) {
	for _, form := range koaTableForms {
		t.Run(form.name, func(t *testing.T) {
			cfg, _, table := koaTestTable(t, form.koaForm)
			s := openKoaTestStore(t, cfg, koa.Options{Table: table})
			ctx := t.Context()
			key := s.Key("df447QCiOpkU_VDcze_jd6vh0PGImIUB")
			rec := &session.Record{Values: map[string]json.RawMessage{"count": json.RawMessage(`1`), "text": json.RawMessage(`"é € \u2028 😀"`)}, Expires: time.Now().Add(time.Hour)}
			if err := s.Create(ctx, key, rec); err != nil {
				t.Fatal(err)
			}
			check := func(what string, version int64) {
				t.Helper()
				loaded, err := s.Load(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if loaded.Version != version {
					t.Fatalf("version after %s = %x, the server's MD5 gives %x", what, version, loaded.Version)
				}
			}
			check("Create", rec.Version)
			for i := 2; i <= 3; i++ {
				got, err := s.Update(ctx, key, &session.Change{Add: map[string]int64{"count": 1}, Values: map[string]json.RawMessage{"more": json.RawMessage(`"ü 😀"`)}})
				if err != nil {
					t.Fatal(err)
				}
				if string(got.Values["count"]) != fmt.Sprint(i) {
					t.Fatalf("count %s after Update #%d", got.Values["count"], i)
				}
				check(fmt.Sprintf("Update #%d", i), got.Version)
			}
		})
	}
}

// TestKoaUpdateKeepsKoaWrite: Koa writes with a blind upsert and no row
// lock; a Go Update that comes after applies its change to the row as Koa
// left it, so a value only Koa set is kept.
func TestKoaUpdateKeepsKoaWrite(t *testing.T) {
	for _, form := range koaTableForms {
		t.Run(form.name, func(t *testing.T) {
			cfg, db, table := koaTestTable(t, form.koaForm)
			s := openKoaTestStore(t, cfg, koa.Options{Table: table})
			ctx := t.Context()
			key := s.Key("df447QCiOpkU_VDcze_jd6vh0PGImIUB")
			if err := s.Create(ctx, key, &session.Record{Values: map[string]json.RawMessage{"count": json.RawMessage(`1`)}, Expires: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			// Koa's write lands between Go's load and Go's commit.
			koaUpsert := "INSERT INTO `" + table + "`(id, expires, data) VALUES(?, ?, ?) ON DUPLICATE KEY UPDATE expires=?, data =?"
			exp := time.Now().Add(24 * time.Hour).UnixMilli()
			koaData := `{"count":4,"from":"koa"}`
			if _, err := db.Exec(koaUpsert, key, exp, koaData, exp, koaData); err != nil {
				t.Fatal(err)
			}
			got, err := s.Update(ctx, key, &session.Change{Add: map[string]int64{"count": 1}, Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}})
			if err != nil {
				t.Fatal(err)
			}
			again, err := s.Load(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range []*session.Record{got, again} {
				if string(rec.Values["from"]) != `"koa"` || string(rec.Values["count"]) != "5" || string(rec.Values["theme"]) != `"dark"` {
					t.Fatalf("after Koa's write and Go's Update: %s; want Koa's value kept, its count added to, Go's value set", rec.Values)
				}
			}
			if again.Version != got.Version || !again.Expires.Equal(time.UnixMilli(exp)) {
				t.Errorf("Load = version %x expiry %v, Update returned %x; want the same version and Koa's expiry", again.Version, again.Expires, got.Version)
			}
		})
	}
}

// TestKoaStrictIDs: on Koa's own table, whose collation ignores case and
// trailing spaces, an id matches only its own row: a case-swapped id finds
// nothing, nor does an id whose row Koa stored with a trailing space (Koa
// keeps the spaces of a cookie such as "SESSION_ID=abc ;"), and the rows
// they resemble are left alone.
func TestKoaStrictIDs(t *testing.T) {
	swapCase := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return r - 'a' + 'A'
			case r >= 'A' && r <= 'Z':
				return r - 'A' + 'a'
			}
			return r
		}, s)
	}
	const victim, padded = "bhV_RvxF2MFC6s7TD2hnkBJdv-2vtYaM", "mR5Lp12DRzmSxFlLLcvmWDoHqypjpiM5"
	for _, form := range koaTableForms {
		t.Run(form.name, func(t *testing.T) {
			cfg, db, table := koaTestTable(t, form.koaForm)
			s := openKoaTestStore(t, cfg, koa.Options{Table: table})
			ctx := t.Context()
			exp := time.Now().Add(time.Hour).UnixMilli()
			for _, id := range []string{s.Key(victim), s.Key(padded) + " "} {
				if _, err := db.Exec("INSERT INTO `"+table+"` (id, expires, data) VALUES (?, ?, ?)", id, exp, `{"user_id":"victim"}`); err != nil {
					t.Fatal(err)
				}
			}
			for _, key := range []string{s.Key(swapCase(victim)), s.Key(padded)} {
				if rec, err := s.Load(ctx, key); !errors.Is(err, session.ErrNotFound) {
					t.Errorf("Load(%q) = %+v, %v; want ErrNotFound", key, rec, err)
				}
			}
			rec, err := s.Load(ctx, s.Key(victim))
			if err != nil || string(rec.Values["user_id"]) != `"victim"` {
				t.Fatalf("Load of the exact id = %+v, %v", rec, err)
			}
			if n := sqltest.CountRows(t, db, table, "1=1"); n != 2 {
				t.Fatalf("%d rows after the loads, want the 2 untouched", n)
			}
		})
	}
}

// TestKoaExpiredRowDeleted: a row Koa left past its expires reads as
// missing, and Load deletes it.
func TestKoaExpiredRowDeleted(t *testing.T) {
	for _, form := range koaTableForms {
		t.Run(form.name, func(t *testing.T) {
			cfg, db, table := koaTestTable(t, form.koaForm)
			s := openKoaTestStore(t, cfg, koa.Options{Table: table, CleanupInterval: -1})
			key := s.Key("J9vntfG6Y_CN0EwOkycxZey95Wv0NTOD")
			if _, err := db.Exec("INSERT INTO `"+table+"` (id, expires, data) VALUES (?, 1000, ?)", key, `{"count":2}`); err != nil {
				t.Fatal(err)
			}
			if rec, err := s.Load(t.Context(), key); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("Load of an expired row = %+v, %v; want ErrNotFound", rec, err)
			}
			if n := sqltest.CountRows(t, db, table, "1=1"); n != 0 {
				t.Fatalf("%d rows left after Load of the expired one", n)
			}
		})
	}
}

// TestKoaCorruptRows: what Koa or a hand edit can leave in Koa's table
// reads as corrupt, never as a session, and never panics.
func TestKoaCorruptRows(t *testing.T) {
	cfg, db, table := koaTestTable(t, true)
	s := openKoaTestStore(t, cfg, koa.Options{Table: table})
	exp := time.Now().Add(time.Hour).UnixMilli()
	rows := []struct {
		id      string
		expires any
		data    any
	}{
		{"null-data", exp, nil},
		{"empty-data", exp, ""},
		{"json-null", exp, "null"},
		{"array", exp, "[1,2]"},
		{"not-json", exp, "{not json"},
		{"null-expires", nil, `{"count":1}`},
	}
	for _, r := range rows {
		if _, err := db.Exec("INSERT INTO `"+table+"` (id, expires, data) VALUES (?, ?, ?)", r.id, r.expires, r.data); err != nil {
			t.Fatal(err)
		}
		if rec, err := s.Load(t.Context(), r.id); !errors.Is(err, session.ErrCorrupt) {
			t.Errorf("Load(%s) = %+v, %v; want ErrCorrupt", r.id, rec, err)
		}
	}
}

func TestKoaDeleteExpired(t *testing.T) {
	cfg, db, table := koaTestTable(t, true)
	s := openKoaTestStore(t, cfg, koa.Options{Table: table, CleanupInterval: -1, CleanupBatch: 2})
	now := time.Now().UnixMilli()
	for i, exp := range []int64{1000, now - 1, now - 60_000, now + 60_000, now + 3_600_000} {
		if _, err := db.Exec("INSERT INTO `"+table+"` (id, expires, data) VALUES (?, ?, '{\"n\":1}')", "k"+string(rune('0'+i)), exp); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpired(t.Context())
	if err != nil || n != 3 {
		t.Fatalf("DeleteExpired = %d, %v; want 3", n, err)
	}
	if left := sqltest.CountRows(t, db, table, "1=1"); left != 2 {
		t.Errorf("%d rows left, want the 2 live ones", left)
	}
}

func TestKoaMissingTable(t *testing.T) {
	cfg, table := sqltest.Table(t)
	s := openKoaTestStore(t, cfg, koa.Options{Table: table, NoCreateTable: true})
	_, err := s.Load(t.Context(), "SESSION_ID:k")
	if !errors.Is(err, &mysql.MySQLError{Number: 1146}) || !strings.Contains(err.Error(), "table `"+table+"` does not exist") {
		t.Fatalf("Load without the table = %v, want the 1146 with the table named", err)
	}
}
