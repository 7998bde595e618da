package main

import (
	"database/sql"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"

	_ "github.com/go-sql-driver/mysql"
)

// TestCounterLockExact: with -lock, 50 concurrent "/" requests of one
// visitor count exactly 50, on the memory store, on MySQL, and on two app
// servers sharing MySQL (requests alternate between them).
func TestCounterLockExact(t *testing.T) {
	dsn := os.Getenv("SESSION_TEST_MYSQL_DSN")
	if dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/test"
	}
	for _, tc := range []struct {
		name    string
		c       config
		servers int
	}{
		{"memory", config{store: "memory", lock: true}, 1},
		{"mysql", config{store: "mysql", dsn: dsn, lock: true}, 1},
		{"mysql, two servers", config{store: "mysql", dsn: dsn, lock: true}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.c.store == "mysql" {
				requireMySQL(t, dsn)
			}
			var urls []string
			for range tc.servers {
				h, _, closeAll, err := newServer(tc.c)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(closeAll)
				srv := httptest.NewServer(h)
				t.Cleanup(srv.Close)
				urls = append(urls, srv.URL)
			}
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar}
			get(t, c, urls[0]+"/set")
			counts := make([]int, 50)
			var wg sync.WaitGroup
			for i := range counts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if got := get(t, c, urls[i%len(urls)]+"/"); got.Count != nil {
						counts[i] = *got.Count
					}
				}()
			}
			wg.Wait()
			slices.Sort(counts)
			for i, n := range counts {
				if n != i+1 {
					t.Fatalf("the 50 answers counted %v, want each of 1 to 50 once", counts)
				}
			}
		})
	}
}

// requireMySQL skips without a database, except under CI=true, where a
// skipped database test would hide a broken setup.
func requireMySQL(t *testing.T, dsn string) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err == nil {
		defer db.Close()
		err = db.Ping()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MySQL unreachable under CI: %v", err)
		}
		t.Skipf("MySQL unreachable: %v", err)
	}
}
