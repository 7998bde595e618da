package session_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
)

// hostileMySQL starts an app server on a MySQL store of a table of its
// own, and returns it with an admin pool and the table.
func hostileMySQL(t *testing.T, opts session.Options) (*server, *session.MySQLStore, *sql.DB, string) {
	t.Helper()
	cfg, table := sqltest.Table(t)
	st := openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table})
	opts.Store = st
	srv := newServer(t, opts, hostileRoutes())
	return srv, st, sqltest.OpenDB(t, cfg), table
}

// hostileRawData reads a row's data column as stored.
func hostileRawData(t *testing.T, db *sql.DB, table, key string) (string, bool) {
	t.Helper()
	var data string
	err := db.QueryRow("SELECT data FROM `"+table+"` WHERE id = ?", key).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return data, true
}

// TestMySQLForeignRows: rows another program wrote (keys out of
// order, repeated, escaped, non-ASCII, empty; nulls; whitespace) read as
// encoding/json reads them, and a change of one value writes the row back
// in Encode's form with every other value kept; rows that are not a JSON
// object give the visitor a fresh session and are left as they were.
func TestMySQLForeignRows(t *testing.T) {
	srv, st, db, table := hostileMySQL(t, session.Options{MaxSize: 4 << 20})
	good := []string{
		`{"b":1,"a":2}`,
		`{"a":1,"a":2}`,
		`{"a":1,"b":2,"a":3}`,
		`{"a":null,"b":"x"}`,
		`{"\u00e9":1,"z":2}`,
		`{"é":1,"\u00e9":2}`,
		`{"":"empty key","\u003c":"lt"}`,
		"\n{ \"a\" : [ 1 , { \"x\" : \"}\" } ] ,\t\"b\":\"\\\"\" }\n",
		`{"k":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`,
		`{"big":"` + strings.Repeat("x", 1<<20) + `"}`,
		`{"n":1e300,"m":-0}`,
		`{"emoji😀":"😀","\ud83d\ude00":"pair"}`,
	}
	for i := range 80 {
		// 80 keys in an order no sort gives.
		var b strings.Builder
		b.WriteString("{")
		for j := range 80 {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%02d":%d`, (j*37+i)%80, j)
		}
		b.WriteString("}")
		if i%20 == 0 {
			good = append(good, b.String())
		}
	}
	for i, doc := range good {
		cookie := srv.issue("/set?k=seed&v=1")
		key := hashedKey(cookie)
		if _, err := db.Exec("UPDATE `"+table+"` SET data = ? WHERE id = ?", doc, key); err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatal(err)
		}
		maps.DeleteFunc(want, func(_ string, v any) bool { return v == nil })
		if got := hostileShow(t, srv, cookie); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("doc %d: the app sees %.200v, encoding/json reads %.200v", i, got, want)
			continue
		}
		res, body := srv.sendID("/set?k=new&v=v", cookie)
		if res.StatusCode != 200 {
			t.Errorf("doc %d: a change: %d %s", i, res.StatusCode, body)
			continue
		}
		want["new"] = "v"
		stored, ok := hostileRawData(t, db, table, key)
		if !ok {
			t.Fatalf("doc %d: row gone", i)
		}
		var back map[string]any
		if err := json.Unmarshal([]byte(stored), &back); err != nil || fmt.Sprint(back) != fmt.Sprint(want) {
			t.Errorf("doc %d: written back %.200s (%v), want %.200v", i, stored, err, want)
		}
		var raw map[string]json.RawMessage
		json.Unmarshal([]byte(stored), &raw)
		if enc, _ := json.Marshal(raw); string(enc) != stored && !strings.Contains(doc, "1e300") && !strings.Contains(doc, "[[") && !strings.Contains(doc, " [ ") {
			t.Errorf("doc %d: written back not in Encode's form:\n%.300s\nwant\n%.300s", i, stored, enc)
		}
		if n := strings.Count(stored, `"a":`); n > 1 {
			t.Errorf("doc %d: a key written %d times: %.200s", i, n, stored)
		}
		// The public Load gives the same values (nulls included as
		// stored, there are none left).
		rec, err := st.Load(t.Context(), key)
		if err != nil || len(rec.Values) != len(want) {
			t.Errorf("doc %d: Load: %v, %d values, want %d", i, err, len(rec.Values), len(want))
		}
	}

	bad := []string{`[1]`, `"x"`, `1`, ``, `{`, `{"a":1,}`, `{"a":1}{"b":2}`, `{'a':1}`,
		`{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`}
	for i, doc := range bad {
		cookie := srv.issue("/set?k=seed&v=1")
		key := hashedKey(cookie)
		if _, err := db.Exec("UPDATE `"+table+"` SET data = ? WHERE id = ?", doc, key); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Load(t.Context(), key); !errors.Is(err, session.ErrCorrupt) {
			t.Errorf("bad doc %d: Load: %v, want ErrCorrupt", i, err)
		}
		if got := hostileShow(t, srv, cookie); len(got) != 0 {
			t.Errorf("bad doc %d: the app sees %v", i, got)
		}
		res, body := srv.sendID("/set?k=new&v=v", cookie)
		c := cookieIn(res, cookieName)
		if res.StatusCode != 200 || c == nil || c.Value == cookie {
			t.Errorf("bad doc %d: a change: %d %s, cookie %v: want a fresh session", i, res.StatusCode, body, c)
		}
		if stored, ok := hostileRawData(t, db, table, key); !ok || stored != doc {
			t.Errorf("bad doc %d: the unreadable row was changed: %v %.100q", i, ok, stored)
		}
	}
	// A row of JSON null is a session with no values, as encoding/json
	// reads it, and a change gives it some.
	cookie := srv.issue("/set?k=seed&v=1")
	db.Exec("UPDATE `"+table+"` SET data = 'null' WHERE id = ?", hashedKey(cookie))
	if got := hostileShow(t, srv, cookie); len(got) != 0 {
		t.Errorf("null row: %v", got)
	}
	srv.sendID("/set?k=new&v=v", cookie)
	srv.noErr()
}

// TestMySQLKilledConnectionsPrepared: the pool's connections are killed by
// the server (KILL from another connection) while their prepared
// statements are cached; the next requests work on fresh connections,
// without an error reaching the visitor, and nothing is lost.
func TestMySQLKilledConnectionsPrepared(t *testing.T) {
	cfg, table := sqltest.Table(t)
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := &idConnector{Connector: connector}
	db := sql.OpenDB(ids)
	t.Cleanup(func() { db.Close() })
	st := newMySQLTestStore(t, db, table)
	admin := sqltest.OpenDB(t, cfg)
	srv := newServer(t, session.Options{Store: st}, hostileRoutes())
	cookie := srv.issue("/fill?n=50&p=p")
	for round := range 4 {
		// Warm several connections' statement caches.
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() { defer wg.Done(); srv.sendID("/add?k=count", cookie) }()
		}
		wg.Wait()
		ids.mu.Lock()
		killed := append([]string(nil), ids.ids...)
		ids.mu.Unlock()
		for _, id := range killed {
			admin.Exec("KILL " + id) // some are gone already
		}
		for i := range 5 {
			res, body := srv.sendID("/add?k=count", cookie)
			if res.StatusCode != 200 {
				t.Errorf("round %d, request %d after KILL: %d %s", round, i, res.StatusCode, body)
			}
		}
	}
	srv.noErr()
	m := hostileShow(t, srv, cookie)
	if m["count"] != float64(4*11) || len(m) != 51 {
		t.Errorf("count %v, %d values, want 44 and 51", m["count"], len(m))
	}
}

// TestMySQLTableChangesPrepared: the table is dropped, recreated, altered
// under the store while its statements are prepared: while it is missing
// requests fail loudly (never a panic, never a silent fresh session that
// loses the cookie's), and once it is back they work again without a
// restart.
func TestMySQLTableChangesPrepared(t *testing.T) {
	srv, st, db, table := hostileMySQL(t, session.Options{})
	cookie := srv.issue("/fill?n=40&p=p")
	srv.sendID("/add?k=count", cookie)
	srv.noErr()
	// ALTER TABLE: a column added and an index; the prepared statements
	// are re-prepared by the server.
	if _, err := db.Exec("ALTER TABLE `" + table + "` ADD COLUMN extra INT NULL, ADD KEY v (version)"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if res, body := srv.sendID("/add?k=count", cookie); res.StatusCode != 200 {
			t.Fatalf("after ALTER, request %d: %d %s", i, res.StatusCode, body)
		}
	}
	srv.noErr()
	// The data column shrunk to TEXT by a careless migration: a session
	// bigger than it holds is refused with an error, not truncated.
	if _, err := db.Exec("ALTER TABLE `" + table + "` MODIFY data TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"); err != nil {
		t.Fatal(err)
	}
	res, _ := srv.sendID("/set?k=huge&v="+strings.Repeat("h", 70000), cookie)
	if res.StatusCode == 200 {
		stored, _ := hostileRawData(t, db, table, hashedKey(cookie))
		if !json.Valid([]byte(stored)) {
			t.Fatalf("the row holds %d bytes of invalid JSON after a too-big write", len(stored))
		}
	} else {
		srv.err()
	}
	// DROP: requests fail with an error the ErrorHandler sees.
	create := st.CreateTableSQL()
	if _, err := db.Exec("DROP TABLE `" + table + "`"); err != nil {
		t.Fatal(err)
	}
	res, body := srv.sendID("/add?k=count", cookie)
	if res.StatusCode != 500 {
		t.Fatalf("table dropped: %d %s", res.StatusCode, body)
	}
	if err := srv.err(); !strings.Contains(err.Error(), "CreateTableSQL") && !strings.Contains(err.Error(), "exist") {
		t.Errorf("table dropped: %v", err)
	}
	// Recreated: the same store works again, with a new session.
	if _, err := db.Exec(create); err != nil {
		t.Fatal(err)
	}
	c2 := srv.issue("/fill?n=40&p=q")
	for i := range 3 {
		if res, body := srv.sendID("/add?k=count", c2); res.StatusCode != 200 {
			t.Fatalf("recreated, request %d: %d %s", i, res.StatusCode, body)
		}
	}
	if m := hostileShow(t, srv, c2); m["count"] != float64(3) || len(m) != 41 {
		t.Errorf("recreated: count %v, %d values", m["count"], len(m))
	}
	srv.sendID("/regen", c2)
	srv.noErr()
}

// TestMySQLLeasePoolOfOneHTTP: with Options.Lock and a pool of one
// connection, locked requests of a big session load, change, regenerate
// and clear it on the lock's connection, never waiting for a second one:
// with the pool's statements prepared by earlier unlocked requests
// (warm), and with a store that has prepared nothing yet (cold), while
// unlocked requests of another manager change the same session, so that
// the locked requests' compare-and-swap misses and their transactions
// run.
func TestMySQLLeasePoolOfOneHTTP(t *testing.T) {
	for _, cold := range []bool{false, true} {
		t.Run(map[bool]string{false: "warm", true: "cold"}[cold], func(t *testing.T) {
			cfg, table := sqltest.Table(t)
			db := sqltest.OpenDB(t, cfg)
			st := newMySQLTestStore(t, db, table)
			// The unlocked writers are another server, with a pool of its
			// own.
			other := newMySQLTestStore(t, sqltest.OpenDB(t, cfg), table)
			plain := newServer(t, session.Options{Store: other, StoreTimeout: 5 * time.Second}, hostileRoutes())
			cookie := plain.issue("/fill?n=100&p=p")
			warm := newServer(t, session.Options{Store: st}, hostileRoutes())
			for range 3 {
				warm.sendID("/add?k=count", cookie)
			}
			lockedStore := st
			if cold {
				lockedStore = newMySQLTestStore(t, db, table)
			}
			db.SetMaxOpenConns(1)
			locked := newServer(t, session.Options{Store: lockedStore, Lock: true, StoreTimeout: 5 * time.Second}, hostileRoutes())
			var wg sync.WaitGroup
			for range 6 {
				wg.Add(2)
				go func() {
					defer wg.Done()
					for range 3 {
						if res, body := locked.sendID("/add?k=count", cookie); res.StatusCode != 200 {
							t.Errorf("locked add: %d %s", res.StatusCode, body)
						}
					}
				}()
				go func() {
					defer wg.Done()
					for range 10 {
						if res, body := plain.sendID("/add?k=count", cookie); res.StatusCode != 200 {
							t.Errorf("plain add: %d %s", res.StatusCode, body)
						}
					}
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("requests on one connection still running after 60s")
			}
			if m := hostileShow(t, locked, cookie); m["count"] != float64(3+18+60) || len(m) != 101 {
				t.Errorf("count %v, %d values, want 81 and 101", m["count"], len(m))
			}
			res, _ := locked.sendID("/regen", cookie)
			c := cookieIn(res, cookieName)
			if res.StatusCode != 200 || c == nil {
				t.Fatalf("locked regenerate: %d", res.StatusCode)
			}
			if m := hostileShow(t, locked, c.Value); len(m) != 102 {
				t.Errorf("after a locked regenerate: %d values", len(m))
			}
			if res, body := locked.sendID("/clearset", c.Value); res.StatusCode != 200 || body != "1 1 false" {
				t.Errorf("locked clearset: %d %q", res.StatusCode, body)
			}
			locked.noErr()
			plain.noErr()
		})
	}
}
