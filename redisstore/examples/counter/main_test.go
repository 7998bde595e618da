package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/seed013449c2/session/redisstore/internal/redistest"
)

// TestCounter runs the counter on a standalone Redis and on a cluster:
// 50 concurrent visits of one session all count, on two servers sharing
// Redis, and /logout ends the session.
func TestCounter(t *testing.T) {
	redistest.Require(t)
	dir := t.TempDir()
	single, err := redistest.StartServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(single.Stop)
	cl, err := redistest.StartCluster(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	for _, tc := range []struct {
		name string
		c    config
	}{
		{"Standalone", config{addr: single.Addr}},
		{"Cluster", config{addr: strings.Join(cl.Addrs(), ","), cluster: true}},
		{"ClusterLocked", config{addr: cl.Addrs()[0], cluster: true, lock: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var servers []*httptest.Server
			for range 2 {
				h, closeAll, err := newServer(tc.c)
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewServer(h)
				t.Cleanup(closeAll)
				t.Cleanup(srv.Close)
				servers = append(servers, srv)
			}
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar}
			get := func(url string) map[string]any {
				res, err := c.Get(url)
				if err != nil {
					t.Error(err)
					return nil
				}
				defer res.Body.Close()
				body, _ := io.ReadAll(res.Body)
				var v map[string]any
				if res.StatusCode != 200 || json.Unmarshal(body, &v) != nil {
					t.Errorf("GET %s: %d %s", url, res.StatusCode, body)
				}
				return v
			}
			if v := get(servers[0].URL + "/set"); v["count"] != 0.0 {
				t.Fatalf("/set: %v", v)
			}
			var wg sync.WaitGroup
			for i := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					get(servers[i%2].URL + "/")
				}()
			}
			wg.Wait()
			if v := get(servers[1].URL + "/"); v["count"] != 51.0 {
				t.Fatalf("count after 51 visits = %v, want 51", v["count"])
			}
			get(servers[0].URL + "/logout")
			if v := get(servers[1].URL + "/"); v["count"] != 1.0 || v["user_id"] != nil {
				t.Fatalf("after /logout, / answered %v; want a fresh session", v)
			}
		})
	}
}
