package main

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/seed013449c2/session/internal/sqltest"
)

// TestCounterConcurrentExact: 50 concurrent "/" requests of one visitor
// all count, on the memory store, on MySQL, and on two app servers sharing
// MySQL (requests alternate between them). Without -lock, Add keeps every
// increment: the next visit counts 51, though answers given at once may
// repeat a count. With -lock the requests also run one at a time: the 50
// answers are each of 1 to 50 once.
func TestCounterConcurrentExact(t *testing.T) {
	const n = 50
	for _, lock := range []bool{false, true} {
		for _, tc := range []struct {
			name    string
			c       config
			servers int
		}{
			{"memory", config{store: "memory"}, 1},
			{"mysql", config{store: "mysql"}, 1},
			{"mysql, two servers", config{store: "mysql"}, 2},
		} {
			name := tc.name + ", no lock"
			if lock {
				name = tc.name + ", -lock"
			}
			t.Run(name, func(t *testing.T) {
				if tc.c.store == "mysql" {
					tc.c.dsn = sqltest.Config(t).FormatDSN()
				}
				tc.c.lock = lock
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
				set := get(t, c, urls[0]+"/set")
				counts := make([]int, n)
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
				for i, got := range counts {
					if got < 1 || got > n || lock && got != i+1 {
						t.Fatalf("the %d answers counted %v, want counts from 1 to %d (with -lock each once)", n, counts, n)
					}
				}
				if got := get(t, c, urls[len(urls)-1]+"/"); got.Count == nil || *got.Count != n+1 || got.UserID != set.UserID {
					t.Fatalf("the visit after %d concurrent ones answered %+v, want count %d: increments were lost", n, got, n+1)
				}
			})
		}
	}
}
