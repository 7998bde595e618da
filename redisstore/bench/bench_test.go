// Package bench compares the session middleware on redisstore with
// github.com/alexedwards/scs/v2 on its Redis store (redigo), through real
// HTTP on one Redis server: a request that reads the session, one that
// writes it, and 32 concurrent writers of one session. Besides time and
// allocations (server and client together), each benchmark reports the
// Redis round trips per request and, for the concurrent writers, the
// share of increments lost.
//
//	go test -run '^$' -bench . -benchmem
package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	scsredis "github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/redisstore"
	"github.com/seed013449c2/session/redisstore/internal/redistest"
)

var shared struct {
	once sync.Once
	srv  *redistest.Server
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// redisAddr starts the shared server on first use.
func redisAddr(tb testing.TB) string {
	tb.Helper()
	redistest.Require(tb)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "redisstore-bench-")
		if shared.err == nil {
			shared.srv, shared.err = redistest.StartServer(shared.dir)
		}
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.srv.Addr
}

// countingConn counts the writes on a connection to Redis: each is one
// request (a command, or a pipeline) and so one round trip.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// SyscallConn exposes the socket, as a bare connection does: go-redis
// checks a pooled connection's socket (a non-blocking peek) before each
// use, and skips that for a connection it cannot see through.
func (c countingConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// hookCounter counts what go-redis sends, as a cross-check of the socket
// count.
type hookCounter struct{ n atomic.Int64 }

func (h *hookCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h *hookCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *hookCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// app is one implementation under test: an HTTP server whose routes are
// /set (count = 0), /read (answers count) and /write (count + 1).
type app struct {
	url    string
	writes atomic.Int64 // requests written to Redis
	hook   *hookCounter // go-redis's own count, for ours
}

// newSession builds the middleware on redisstore. lock selects the
// read-modify-write handler under Options.Lock instead of Add.
func newSession(b *testing.B, lock bool) *app {
	a := &app{hook: &hookCounter{}}
	client := goredis.NewClient(&goredis.Options{
		Addr: redisAddr(b), ContextTimeoutEnabled: true, PoolSize: 64,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{c, &a.writes}, nil
		},
	})
	client.AddHook(a.hook)
	b.Cleanup(func() { client.Close() })
	st, err := redisstore.New(client, redisstore.Options{Prefix: fmt.Sprintf("bench%d:", time.Now().UnixNano())})
	if err != nil {
		b.Fatal(err)
	}
	m, err := session.New(session.Options{Store: st, Lock: lock})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(); st.Close() })
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("count", 0)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, session.FromContext(r.Context()).GetInt("count"))
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if lock {
			s.Set("count", s.GetInt("count")+1) // exact only under the lock
			return
		}
		if _, err := s.Add("count", 1); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	a.serve(b, m.Handler(mux))
	return a
}

// newSCS builds scs on its Redis store, the way its documentation shows.
func newSCS(b *testing.B) *app {
	a := &app{}
	addr := redisAddr(b)
	pool := &redis.Pool{
		MaxIdle: 64,
		Dial: func() (redis.Conn, error) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return nil, err
			}
			return redis.NewConn(countingConn{c, &a.writes}, 5*time.Second, 5*time.Second), nil
		},
	}
	b.Cleanup(func() { pool.Close() })
	sm := scs.New()
	sm.Store = scsredis.NewWithPrefix(pool, fmt.Sprintf("scsbench%d:", time.Now().UnixNano()))
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "count", 0)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, sm.GetInt(r.Context(), "count"))
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "count", sm.GetInt(r.Context(), "count")+1)
	})
	a.serve(b, sm.LoadAndSave(mux))
	return a
}

func (a *app) serve(b *testing.B, h http.Handler) {
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	a.url = srv.URL
}

// visitor is one browser: a keep-alive client that sends the cookie of
// the session /set started.
type visitor struct {
	c      *http.Client
	cookie string
}

func newVisitor(b *testing.B, a *app) *visitor {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	v := &visitor{c: &http.Client{Transport: tr}}
	res, err := v.c.Get(a.url + "/set")
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	for _, c := range res.Cookies() {
		v.cookie = c.Name + "=" + c.Value
	}
	if v.cookie == "" {
		b.Fatal("/set set no cookie")
	}
	return v
}

func (v *visitor) get(b *testing.B, url string) string {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Cookie", v.cookie)
	res, err := v.c.Do(req)
	if err != nil {
		b.Error(err)
		return ""
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		b.Errorf("GET %s: %d %s", url, res.StatusCode, body)
	}
	return string(body)
}

type impl struct {
	name string
	new  func(*testing.B) *app
}

var impls = []impl{
	{"session", func(b *testing.B) *app { return newSession(b, false) }},
	{"scs", newSCS},
}

// report adds the round trips per request to the benchmark's line.
func (a *app) report(b *testing.B, writes0, hook0 int64) {
	b.ReportMetric(float64(a.writes.Load()-writes0)/float64(b.N), "trips/req")
	if a.hook != nil {
		b.ReportMetric(float64(a.hook.n.Load()-hook0)/float64(b.N), "hook-trips/req")
	}
}

func (a *app) counters() (int64, int64) {
	if a.hook == nil {
		return a.writes.Load(), 0
	}
	return a.writes.Load(), a.hook.n.Load()
}

// BenchmarkRead: a request that reads the session and changes nothing.
func BenchmarkRead(b *testing.B) {
	for _, im := range impls {
		b.Run(im.name, func(b *testing.B) {
			sequential(b, im.new(b), "/read")
		})
	}
}

// BenchmarkWrite: a request that adds one to a counter.
func BenchmarkWrite(b *testing.B) {
	for _, im := range impls {
		b.Run(im.name, func(b *testing.B) {
			a := im.new(b)
			v := sequential(b, a, "/write")
			if got := v.get(b, a.url+"/read"); got != strconv.Itoa(b.N+1) {
				b.Errorf("count %s after %d sequential writes", got, b.N+1)
			}
		})
	}
}

// sequential times b.N requests of path by one visitor, one after the
// other, after one that starts the session, and reports their cost. It
// returns the visitor.
func sequential(b *testing.B, a *app, path string) *visitor {
	v := newVisitor(b, a)
	v.get(b, a.url+path)
	w0, h0 := a.counters()
	b.ResetTimer()
	for range b.N {
		v.get(b, a.url+path)
	}
	b.StopTimer()
	a.report(b, w0, h0)
	return v
}

// BenchmarkWrite32: 32 concurrent writers of one session (one browser,
// many tabs) add one each per request; "lost%" is the share of the
// increments that the session does not hold at the end.
func BenchmarkWrite32(b *testing.B) {
	all := append(impls[:1:1],
		impl{"session-lock", func(b *testing.B) *app { return newSession(b, true) }},
		impls[1])
	for _, im := range all {
		b.Run(im.name, func(b *testing.B) {
			a := im.new(b)
			v := newVisitor(b, a)
			w0, h0 := a.counters()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						v.get(b, a.url+"/write")
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			a.report(b, w0, h0)
			got, _ := strconv.Atoi(v.get(b, a.url+"/read"))
			b.ReportMetric(100*float64(b.N-got)/float64(b.N), "lost%")
			if im.name != "scs" && got != b.N {
				b.Errorf("count %d after %d concurrent writes: the store lost some", got, b.N)
			}
		})
	}
}
