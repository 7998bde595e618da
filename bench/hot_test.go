package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// The targets of BenchmarkHotSession, in the order they run. bare is the
// same routes with no session middleware, which the client sends no
// cookie: the floor for the memory targets. bare-cookie is bare sent the
// same requests as the session targets, a session cookie included, and
// answering with the one header that security requirement R14 asks of
// every response that reads a session (Vary: Cookie), with no session
// behind them: the floor of any session middleware that meets R14. toy is
// the least a cookie session can do on top of that: hash the cookie's id,
// find it in a map, add one to a counter; no values, no context for the
// handler, no expiry, nothing written back.
const (
	hotOursMemory = "ours-memory"
	hotOursMySQL  = "ours-mysql"
	hotSCSMemory  = "scs-memstore"
	hotSCSMySQL   = "scs-mysql"
	hotBare       = "bare"
	hotBareCookie = "bare-cookie"
	hotToy        = "toy"
)

func hotTargets() []string {
	return []string{hotOursMemory, hotOursMySQL, hotSCSMemory, hotSCSMySQL, hotBare, hotBareCookie, hotToy}
}

// hotConns are the numbers of concurrent keep-alive connections, each
// sending its next request as soon as the previous one is answered.
var hotConns = []int{1, 4, 32, 128}

const (
	// hotBatch is how many requests one session receives. Request j of a
	// run goes to session j/hotBatch and sets the key "k"+(j%hotBatch), so
	// every key of a session names exactly one request (a lost write cannot
	// be hidden by a later one) and a session never holds more than
	// hotBatch keys (no library is timed encoding an ever-growing map, nor
	// runs into its size limit).
	hotBatch = 512
	// hotTable is our MySQL store's table for these runs.
	hotTable = "sessions_hot"
	// hotRunLimit bounds one timed run: a request still unanswered then
	// fails with the context's error.
	hotRunLimit = 2 * time.Minute
	// hotWarmLimit bounds the wait for every connection to be open.
	hotWarmLimit = 10 * time.Second
)

// hotApp is one target's server side. Its routes: POST /start stores
// "start" (so the session exists and the cookie is set), POST /w/{i} adds
// one to "count" and sets "k"+i, GET /get answers "<count> <number of k
// keys>". Every /w request writes.
type hotApp struct {
	name string
	h    http.Handler
	// cookie is false for bare, which sets no cookie.
	cookie bool
	// session is false for bare and bare-cookie, which keep nothing.
	session bool
	// ours marks our middleware, whose results TestHotSessionKept asserts.
	ours bool
	// mysql marks the targets on the MySQL server, whose statements per
	// request the benchmark reports.
	mysql bool
}

// okBody is every /w answer.
var okBody = []byte("ok")

func newHotApp(tb testing.TB, name string) hotApp {
	tb.Helper()
	mux := http.NewServeMux()
	switch name {
	case hotOursMemory, hotOursMySQL:
		var opts session.Options
		if name == hotOursMySQL {
			opts.Store = newOurMySQLTable(tb, hotTable)
		}
		m := newManager(tb, opts)
		mux.HandleFunc("POST /start", func(_ http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("start", 1)
		})
		mux.HandleFunc("POST /w/{i}", func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			if _, err := s.Add("count", 1); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			s.Set("k"+r.PathValue("i"), 1)
			_, _ = w.Write(okBody)
		})
		mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			fmt.Fprintf(w, "%d %d", s.GetInt64("count"), hotKeys(s.Keys()))
		})
		return hotApp{name: name, h: m.Handler(mux), cookie: true, session: true, ours: true, mysql: name == hotOursMySQL}
	case hotSCSMemory, hotSCSMySQL:
		sm := newSCS()
		if name == hotSCSMySQL {
			sm = newSCSMySQL(tb)
		}
		mux.HandleFunc("POST /start", func(_ http.ResponseWriter, r *http.Request) {
			sm.Put(r.Context(), "start", 1)
		})
		mux.HandleFunc("POST /w/{i}", func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			sm.Put(ctx, "count", sm.GetInt(ctx, "count")+1)
			sm.Put(ctx, "k"+r.PathValue("i"), 1)
			_, _ = w.Write(okBody)
		})
		mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%d %d", sm.GetInt(r.Context(), "count"), hotKeys(sm.Keys(r.Context())))
		})
		return hotApp{name: name, h: sm.LoadAndSave(mux), cookie: true, session: true, mysql: name == hotSCSMySQL}
	case hotBare:
		mux.HandleFunc("POST /start", func(http.ResponseWriter, *http.Request) {})
		mux.HandleFunc("POST /w/{i}", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write(okBody)
		})
		return hotApp{name: name, h: mux}
	case hotToy:
		var mu sync.RWMutex
		counts := map[string]*atomic.Int64{}
		mux.HandleFunc("POST /start", func(w http.ResponseWriter, _ *http.Request) {
			id := rand.Text() + "abcdefghijklmnopq"
			h := sha256.Sum256([]byte(id))
			mu.Lock()
			counts[string(h[:])] = new(atomic.Int64)
			mu.Unlock()
			http.SetCookie(w, &http.Cookie{Name: "SESSION_ID", Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		})
		mux.HandleFunc("POST /w/{i}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "Cookie")
			c, err := r.Cookie("SESSION_ID")
			if err != nil {
				http.Error(w, "no cookie", http.StatusBadRequest)
				return
			}
			var buf [64]byte
			h := sha256.Sum256(append(buf[:0], c.Value...))
			mu.RLock()
			n := counts[string(h[:])]
			mu.RUnlock()
			if n == nil {
				http.Error(w, "unknown session", http.StatusBadRequest)
				return
			}
			n.Add(1)
			_, _ = w.Write(okBody)
		})
		return hotApp{name: name, h: mux, cookie: true}
	case hotBareCookie:
		mux.HandleFunc("POST /start", func(w http.ResponseWriter, _ *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "SESSION_ID", Value: rand.Text() + "abcdefghijklmnopq", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		})
		mux.HandleFunc("POST /w/{i}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Add("Vary", "Cookie")
			_, _ = w.Write(okBody)
		})
		return hotApp{name: name, h: mux, cookie: true}
	}
	tb.Fatalf("unknown target %q", name)
	return hotApp{}
}

// hotKeys counts the keys that a /w request set.
func hotKeys(keys []string) int {
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(k, "k") {
			n++
		}
	}
	return n
}

// hotRig is one target served through a real HTTP server on loopback, and
// a client whose fresh transport holds exactly conns keep-alive
// connections to it, all opened before anything is timed.
type hotRig struct {
	app   hotApp
	conns int
	srv   *httptest.Server
	tr    *http.Transport
	hc    *http.Client
	// urls[i] is the URL of /w/i.
	urls []string
	// opened counts the connections the server accepted.
	opened atomic.Int64
}

func newHotRig(tb testing.TB, app hotApp, conns int) *hotRig {
	tb.Helper()
	rg := &hotRig{app: app, conns: conns}
	warm := &barrier{open: make(chan struct{})}
	warm.left.Store(int64(conns))
	mux := http.NewServeMux()
	mux.Handle("GET /warm", warm)
	mux.Handle("/", app.h)
	rg.srv = httptest.NewUnstartedServer(mux)
	rg.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			rg.opened.Add(1)
		}
	}
	rg.srv.Start()
	rg.tr = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxConnsPerHost:     conns,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	rg.hc = &http.Client{Transport: rg.tr}
	rg.urls = make([]string, hotBatch)
	for i := range rg.urls {
		rg.urls[i] = rg.srv.URL + "/w/" + strconv.Itoa(i)
	}
	// Every connection is opened now: /warm answers only once conns
	// requests are in it at the same time, so each holds its own.
	errs := make(chan error, conns)
	for range conns {
		go func() { errs <- rg.expect(context.Background(), http.MethodGet, rg.srv.URL+"/warm", "", "ok") }()
	}
	for range conns {
		if err := <-errs; err != nil {
			rg.close()
			tb.Fatalf("opening %d connections: %v", conns, err)
		}
	}
	if got := rg.opened.Load(); got != int64(conns) {
		rg.close()
		tb.Fatalf("warm-up opened %d connections, want %d", got, conns)
	}
	return rg
}

func (rg *hotRig) close() {
	rg.tr.CloseIdleConnections()
	rg.srv.Close()
}

// barrier answers once every one of left requests has arrived.
type barrier struct {
	left atomic.Int64
	open chan struct{}
}

func (br *barrier) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if br.left.Add(-1) == 0 {
		close(br.open)
	}
	t := time.NewTimer(hotWarmLimit)
	defer t.Stop()
	select {
	case <-br.open:
		_, _ = w.Write(okBody)
	case <-t.C:
		http.Error(w, "not every connection arrived", http.StatusServiceUnavailable)
	}
}

// expect sends one request and returns an error unless it is answered 200,
// with the body want when want is not empty.
func (rg *hotRig) expect(ctx context.Context, method, url, cookie, want string) error {
	_, body, err := rg.do(ctx, method, url, cookie, want == "")
	if err == nil && want != "" && body != want {
		err = fmt.Errorf("%s %s: answered %q, want %q", method, url, body, want)
	}
	return err
}

// do sends one request and reads the whole answer, which it returns
// unless discard is set; an answer other than 200 is an error.
func (rg *hotRig) do(ctx context.Context, method, url, cookie string, discard bool) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, "", err
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := rg.hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if discard && resp.StatusCode == http.StatusOK {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp, "", err
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: answered %d %q", method, url, resp.StatusCode, body)
	}
	return resp, string(body), err
}

// newSessions starts the sessions that n requests need, one per hotBatch,
// each with a real first request, and returns the Cookie header that
// brings each back: the cookie the server set. bare has none.
func (rg *hotRig) newSessions(tb testing.TB, n int) []string {
	tb.Helper()
	if !rg.app.cookie {
		return nil
	}
	cookies := make([]string, (n+hotBatch-1)/hotBatch)
	for i := range cookies {
		resp, _, err := rg.do(context.Background(), http.MethodPost, rg.srv.URL+"/start", "", true)
		if err != nil {
			tb.Fatalf("%s: starting a session: %v", rg.app.name, err)
		}
		set := resp.Cookies()
		if len(set) != 1 {
			tb.Fatalf("%s: /start set %d cookies (%q), want one", rg.app.name, len(set), resp.Header.Values("Set-Cookie"))
		}
		cookies[i] = set[0].Name + "=" + set[0].Value
	}
	return cookies
}

// hotResult is what one run measured.
type hotResult struct {
	n        int
	elapsed  time.Duration
	p50, p99 time.Duration
	// failed counts the requests that were not answered 200; firstErr is
	// the first of them.
	failed   int
	firstErr error
	// count and keys are the sums over the run's sessions of the stored
	// count and of the number of keys the /w requests set (each is n when
	// nothing was lost); tally fills them in.
	count, keys int
}

// fire sends n /w requests over the rig's connections, as fast as they are
// answered: request j to session cookies[j/hotBatch] (none for bare),
// setting key "k"+(j%hotBatch). A benchmark's clock runs only while the
// requests do.
func (rg *hotRig) fire(tb testing.TB, cookies []string, n int) hotResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hotRunLimit)
	defer cancel()
	lat := make([]time.Duration, n)
	var next, failed atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	begin := make(chan struct{})
	workers := min(rg.conns, n)
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			<-begin
			for {
				j := int(next.Add(1) - 1)
				if j >= n {
					return
				}
				cookie := ""
				if cookies != nil {
					cookie = cookies[j/hotBatch]
				}
				t0 := time.Now()
				_, _, err := rg.do(ctx, http.MethodPost, rg.urls[j%hotBatch], cookie, true)
				lat[j] = time.Since(t0)
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	opened := rg.opened.Load()
	b, isBench := tb.(*testing.B)
	if isBench {
		b.ReportAllocs()
		b.ResetTimer()
	}
	start := time.Now()
	close(begin)
	wg.Wait()
	elapsed := time.Since(start)
	if isBench {
		b.StopTimer()
	}
	// MaxConnsPerHost keeps the connections open at once at conns; a
	// connection is replaced only when the transport gives one up, which
	// it does (and retries nothing) when its write goroutine has not
	// confirmed the request 50 ms after the answer came: a starved CPU.
	if extra := rg.opened.Load() - opened; extra != 0 {
		tb.Logf("%s: %d of the %d connections were replaced during the run", rg.app.name, extra, rg.conns)
	}
	slices.Sort(lat)
	return hotResult{
		n:        n,
		elapsed:  elapsed,
		p50:      percentile(lat, 50),
		p99:      percentile(lat, 99),
		failed:   int(failed.Load()),
		firstErr: firstErr,
	}
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (len(sorted)*p + 99) / 100
	return sorted[max(rank, 1)-1]
}

// tally reads back every session of a run and fills in res.count and
// res.keys.
func (rg *hotRig) tally(tb testing.TB, cookies []string, res *hotResult) {
	tb.Helper()
	res.count, res.keys = 0, 0
	for _, c := range cookies {
		_, body, err := rg.do(context.Background(), http.MethodGet, rg.srv.URL+"/get", c, false)
		if err != nil {
			tb.Fatalf("%s: reading a session back: %v", rg.app.name, err)
		}
		var count, keys int
		if _, err := fmt.Sscanf(body, "%d %d", &count, &keys); err != nil {
			tb.Fatalf("%s: /get answered %q: %v", rg.app.name, body, err)
		}
		res.count += count
		res.keys += keys
	}
}

// report gives a benchmark its metrics: req/s, p50-ms, p99-ms, failed-%
// (requests not answered 200), and for the session targets incs-kept-%
// (the stored counts against the requests sent: 100 when no increment was
// lost, more if one was applied twice) and keys-kept-% (the keys present
// against the keys set).
func (res hotResult) report(b *testing.B, session bool) {
	n := float64(res.n)
	b.ReportMetric(n/res.elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(res.p50)/float64(time.Millisecond), "p50-ms")
	b.ReportMetric(float64(res.p99)/float64(time.Millisecond), "p99-ms")
	b.ReportMetric(100*float64(res.failed)/n, "failed-%")
	if session {
		b.ReportMetric(100*float64(res.count)/n, "incs-kept-%")
		b.ReportMetric(100*float64(res.keys)/n, "keys-kept-%")
	}
}

// BenchmarkHotSession: one hot session, written by every request, through
// a real HTTP server on loopback with 1, 4, 32 and 128 keep-alive
// connections. Each request adds one to the counter "count" (ours with
// Session.Add, scs with GetInt and Put) and sets a key of its own; b.N is
// the number of requests, hotBatch of them per session. Besides the time
// per request it reports req/s, the p50 and p99 latency seen by the client,
// the requests not answered 200, and how many increments and keys the
// store kept; on MySQL, the statements per request too (see
// countStatements).
//
// The connection count is the outer level, so that the targets compared
// at one count run one after the other: on a shared machine the load of
// other programs moves more slowly than that.
func BenchmarkHotSession(b *testing.B) {
	up := mysqlUp(b)
	apps := make([]hotApp, 0, len(hotTargets()))
	for _, name := range hotTargets() {
		if (name == hotOursMySQL || name == hotSCSMySQL) && !up {
			continue
		}
		apps = append(apps, newHotApp(b, name))
	}
	for _, conns := range hotConns {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			for _, app := range apps {
				rg := newHotRig(b, app, conns)
				b.Run(app.name, func(b *testing.B) {
					cookies := rg.newSessions(b, b.N)
					var statements func()
					if app.mysql {
						statements = countStatements(b)
					}
					res := rg.fire(b, cookies, b.N)
					if statements != nil {
						statements()
					}
					if res.failed > 0 {
						b.Logf("%d of %d requests failed, the first with: %v", res.failed, res.n, res.firstErr)
					}
					if app.session {
						rg.tally(b, cookies, &res)
					}
					res.report(b, app.session)
				})
				rg.close()
			}
		})
	}
}

// TestHotSessionKept is BenchmarkHotSession's correctness half: hotBatch
// requests of one session at 32 and at 128 connections, each adding one to
// the counter and setting its own key. Ours must answer every request 200
// and keep every increment and every key, on both stores; scs's results
// (which whole-session write-back makes lose updates) are logged. Without
// a MySQL server the MySQL targets are skipped, except with CI=true, where
// they fail.
func TestHotSessionKept(t *testing.T) {
	for _, name := range hotTargets() {
		if name == hotBare || name == hotBareCookie || name == hotToy {
			continue // they keep nothing to check
		}
		t.Run(name, func(t *testing.T) {
			app := newHotApp(t, name)
			for _, conns := range []int{32, 128} {
				t.Run("conns="+strconv.Itoa(conns), func(t *testing.T) {
					rg := newHotRig(t, app, conns)
					defer rg.close()
					cookies := rg.newSessions(t, hotBatch)
					res := rg.fire(t, cookies, hotBatch)
					rg.tally(t, cookies, &res)
					t.Logf("%-12s %3d conns: %d requests of one session, %d not 200; count %d, keys kept %d; %.0f req/s, p99 %v",
						name, conns, res.n, res.failed, res.count, res.keys, float64(res.n)/res.elapsed.Seconds(), res.p99.Round(time.Microsecond))
					if !app.ours {
						return
					}
					if res.failed != 0 {
						t.Errorf("%d requests not answered 200; the first: %v", res.failed, res.firstErr)
					}
					if res.count != res.n {
						t.Errorf("count = %d, want %d: increments lost", res.count, res.n)
					}
					if res.keys != res.n {
						t.Errorf("keys kept = %d, want %d", res.keys, res.n)
					}
				})
			}
		})
	}
}
