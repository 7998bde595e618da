package redisstore

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/redisstore/internal/redistest"
)

// counterServer is the tutorial counter over st: "/" adds one to count
// and answers it. errs hears the ErrorHandler.
func counterServer(t *testing.T, st session.Store, storeTimeout time.Duration) (*httptest.Server, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	m, err := session.New(session.Options{Store: st, StoreTimeout: storeTimeout,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			select {
			case errs <- err:
			default:
			}
			http.Error(w, "store unavailable", http.StatusInternalServerError)
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := session.FromContext(r.Context()).Add("count", 1)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprint(w, n)
	})))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { m.Close() })
	return srv, errs
}

// visit is one browser request: status, body, and the Set-Cookie header.
func visit(t *testing.T, c *http.Client, url string) (int, string, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body), res.Header.Get("Set-Cookie")
}

// TestRedisDown: while Redis is stopped or hung, requests get a 500 with
// the cookie left alone; once Redis is back the session is intact and
// counting resumes where it was.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		down func(*redistest.Server) error
		up   func(*redistest.Server) error
	}{
		// Stopped: connections are refused. The server keeps its data in
		// an append-only file, as a production Redis would, so the
		// session is there after the restart.
		{"Stopped", func(s *redistest.Server) error { s.Stop(); return nil }, (*redistest.Server).Start},
		// Hung (SIGSTOP): calls wait for their StoreTimeout.
		{"Hung", (*redistest.Server).Pause, (*redistest.Server).Resume},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := ownServer(t, "--appendonly", "yes", "--appendfsync", "always")
			c := rs.Client()
			t.Cleanup(func() { c.Close() })
			st := newStore(t, c, Options{})
			srv, errs := counterServer(t, st, 300*time.Millisecond)
			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
			for i := 1; i <= 2; i++ {
				if code, body, _ := visit(t, browser, srv.URL); code != 200 || body != fmt.Sprint(i) {
					t.Fatalf("visit %d: %d %s", i, code, body)
				}
			}
			if err := tc.down(rs); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			code, _, setCookie := visit(t, browser, srv.URL)
			took := time.Since(start)
			if code != http.StatusInternalServerError || setCookie != "" {
				t.Fatalf("with Redis down: %d, Set-Cookie %q; want 500 and no cookie", code, setCookie)
			}
			if took > 3*time.Second {
				t.Fatalf("the failing request took %v; StoreTimeout is 300ms", took)
			}
			select {
			case err := <-errs:
				t.Logf("ErrorHandler heard (after %v): %v", took, err)
			default:
				t.Fatal("ErrorHandler heard nothing")
			}
			if err := tc.up(rs); err != nil {
				t.Fatal(err)
			}
			// go-redis reconnects on the next call; give it a few tries.
			deadline := time.Now().Add(5 * time.Second)
			for {
				code, body, _ := visit(t, browser, srv.URL)
				if code == 200 {
					if body != "3" {
						t.Fatalf("first count after Redis came back = %s, want 3", body)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("still %d %s 5s after Redis came back", code, body)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestClusterNodeRestarted kills a master of a three-master cluster
// (SIGKILL, as a crash would) and starts it again on its port with its
// nodes.conf and append-only file. While it is down, the requests of the
// sessions in its slots get a 500 with the cookie untouched, and the
// other sessions keep working; once it is back every session counts on
// from where it was: no acknowledged write is lost, none is doubled.
func TestClusterNodeRestarted(t *testing.T) {
	t.Parallel()
	redistest.Require(t)
	// A node timeout longer than the test, so that the other masters never
	// mark the cluster failed: only the killed node's slots are down.
	cl, err := redistest.StartCluster(t.TempDir(), 3, "--appendonly", "yes", "--appendfsync", "always",
		"--cluster-node-timeout", "60000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	st := newStore(t, c, Options{})
	srv, _ := counterServer(t, st, time.Second)
	ctx := t.Context()

	// Browser i counts to i+1, so that its session's count tells which
	// node holds it.
	const browsers = 12
	clients := make([]*http.Client, browsers)
	for i := range clients {
		jar, _ := cookiejar.New(nil)
		clients[i] = &http.Client{Jar: jar, Timeout: 10 * time.Second}
		for v := 1; v <= i+1; v++ {
			if code, body, _ := visit(t, clients[i], srv.URL); code != 200 || body != fmt.Sprint(v) {
				t.Fatalf("browser %d visit %d: %d %s", i, v, code, body)
			}
		}
	}
	u, _ := url.Parse(srv.URL)
	cookies := func(i int) string { return fmt.Sprint(clients[i].Jar.Cookies(u)) }
	before := make([]string, browsers)
	for i := range before {
		before[i] = cookies(i)
	}
	// Which node holds which browser's session.
	nodeOf := make([]int, browsers)
	perNode := make([]int, len(cl.Nodes))
	for n, node := range cl.Nodes {
		nc := nodeClient(node.Addr)
		keys, err := nc.Keys(ctx, st.prefix+"{*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			count, err := nc.HGet(ctx, k, valuePrefix+"count").Int()
			if err != nil || count < 1 || count > browsers {
				t.Fatalf("session %s on node %d: count %d, %v", k, n, count, err)
			}
			nodeOf[count-1] = n
			perNode[n]++
		}
		nc.Close()
	}
	victim := 0
	for n := range perNode {
		if perNode[n] > perNode[victim] {
			victim = n
		}
	}
	node := cl.Nodes[victim]
	nc := nodeClient(node.Addr)
	defer nc.Close()
	id, err := nc.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sessions per node %v; killing node %d (%s), which holds %d", perNode, victim, node.Addr, perNode[victim])

	// One browser of the killed node keeps writing throughout.
	busy := -1
	for i := range nodeOf {
		if nodeOf[i] == victim {
			busy = i
			break
		}
	}
	var acked, tried int
	stopBusy := make(chan struct{})
	busyDone := make(chan struct{})
	go func() {
		defer close(busyDone)
		for {
			select {
			case <-stopBusy:
				return
			default:
			}
			tried++
			res, err := clients[busy].Get(srv.URL)
			if err != nil {
				continue
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				acked++
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)

	killed := time.Now()
	node.Kill()
	var wg sync.WaitGroup
	codes := make([]int, browsers)
	bodies := make([]string, browsers)
	setCookies := make([]string, browsers)
	for i := range clients {
		if i == busy {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := clients[i].Get(srv.URL)
			if err != nil {
				bodies[i] = err.Error()
				return
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			codes[i], bodies[i], setCookies[i] = res.StatusCode, string(body), res.Header.Get("Set-Cookie")
		}()
	}
	wg.Wait()
	for i := range clients {
		switch {
		case i == busy:
		case nodeOf[i] == victim:
			if codes[i] != http.StatusInternalServerError || setCookies[i] != "" {
				t.Errorf("browser %d, on the killed node: %d %s, Set-Cookie %q; want 500 and no cookie", i, codes[i], bodies[i], setCookies[i])
			}
		case codes[i] != 200 || bodies[i] != fmt.Sprint(i+2):
			t.Errorf("browser %d, on a live node: %d %s; want 200 and %d", i, codes[i], bodies[i], i+2)
		}
	}

	down := time.Since(killed)
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitOK(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("node down for %v, cluster ok %v after the restart", down, time.Since(killed)-down)
	restarted := time.Now()
	if got, err := nc.ClusterMyID(ctx).Result(); err != nil || got != id {
		t.Fatalf("the restarted node is %q (%v), was %q: it did not come back with its nodes.conf", got, err, id)
	}
	// go-redis reconnects on the next calls; give each browser a few tries.
	for i := range clients {
		if i == busy {
			continue
		}
		want := i + 3
		if nodeOf[i] == victim {
			want = i + 2 // its request during the outage changed nothing
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body, _ := visit(t, clients[i], srv.URL)
			if code == 200 {
				if body != fmt.Sprint(want) {
					t.Errorf("browser %d after the restart: count %s, want %d", i, body, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("browser %d: still %d %s 10s after the node came back", i, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if now := cookies(i); now != before[i] {
			t.Errorf("browser %d: cookie %s, was %s", i, now, before[i])
		}
	}
	// The busy browser's writes: every one acknowledged is there.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, _ := visit(t, clients[busy], srv.URL)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the busy browser still gets %d 10s after the node came back", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("every browser works again %v after the restart", time.Since(restarted))
	close(stopBusy)
	<-busyDone
	code, body, _ := visit(t, clients[busy], srv.URL)
	n, _ := strconv.Atoi(body)
	// Before: busy+1 visits; then tried (acked among them), one to wait
	// for the node, and this one.
	base := busy + 1
	t.Logf("busy browser: %d writes from before the kill to after the restart, %d acknowledged; count %d", tried, acked, n)
	if code != 200 || n < base+acked+2 || n > base+tried+2 {
		t.Errorf("busy browser: %d, count %s; want between %d (every acknowledged write) and %d (every write tried)", code, body, base+acked+2, base+tried+2)
	}
	if cookies(busy) != before[busy] {
		t.Errorf("busy browser: cookie %s, was %s", cookies(busy), before[busy])
	}
}
