package prometheus_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/seed013449c2/session"
	sessionmetrics "github.com/seed013449c2/session/metrics/prometheus"
)

// flakyStore is a memory store whose Load fails while down is set.
type flakyStore struct {
	*session.MemoryStore
	down atomic.Bool
}

var errDown = errors.New("store down")

func (f *flakyStore) Load(ctx context.Context, key string) (*session.Record, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.MemoryStore.Load(ctx, key)
}

// app is a server with sessions and metrics: the app's routes under the
// session middleware, and the registry's text exposition at /metrics.
type app struct {
	t       *testing.T
	m       *session.Manager
	store   *flakyStore
	url     string
	metrics string
	tr      *http.Transport
	holding chan struct{} // the Locked route's handler is running
	hold    chan struct{} // closed to let it return
}

const lockTimeout = 50 * time.Millisecond

func newApp(t *testing.T) *app {
	reg := prometheus.NewRegistry()
	events, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &flakyStore{MemoryStore: session.NewMemoryStore(session.MemoryOptions{})}
	t.Cleanup(func() { store.Close() })
	m, err := session.New(session.Options{
		Store:       store,
		Events:      events,
		LockTimeout: lockTimeout,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	holding := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("n", 1)
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Regenerate()
		s.SetOwner("ann")
		s.Set("user", "ann")
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Destroy()
	})
	mux.HandleFunc("/revoke-others", func(w http.ResponseWriter, r *http.Request) {
		n, err := session.FromContext(r.Context()).RevokeOwner(true)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		io.WriteString(w, strconv.Itoa(n))
	})
	mux.Handle("/hold", m.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		holding <- struct{}{}
		<-hold
	})))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, session.FromContext(r.Context()).GetString("user"))
	})
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(metrics.Close)
	a := &app{t: t, m: m, store: store, url: srv.URL, metrics: metrics.URL, tr: &http.Transport{}, holding: holding, hold: hold}
	t.Cleanup(a.tr.CloseIdleConnections)
	return a
}

// waitHolding waits until a request holds the lock in the Locked route.
func (a *app) waitHolding(t *testing.T) {
	t.Helper()
	select {
	case <-a.holding:
	case <-time.After(5 * time.Second):
		t.Fatal("no request got the lock")
	}
}

// release lets the Locked route's handler return.
func (a *app) release() { close(a.hold) }

// get requests path with exactly the given cookie value ("" for none) and
// returns the status and the session cookie the response sets.
func (a *app) get(path, cookie string) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest("GET", a.url+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", "SESSION_ID="+cookie)
	}
	res, err := a.tr.RoundTrip(req)
	if err != nil {
		a.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == "SESSION_ID" {
			return res.StatusCode, c.Value
		}
	}
	return res.StatusCode, ""
}

// scrape reads the metrics through the exposition handler, as Prometheus
// does, and returns each sample by its series (name and labels as
// exposed), with the raw text.
func (a *app) scrape() (map[string]float64, string) {
	a.t.Helper()
	res, err := a.tr.RoundTrip(must(http.NewRequest("GET", a.metrics, nil)))
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		a.t.Fatalf("exposition Content-Type %q, want text/plain", ct)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			a.t.Fatalf("exposition line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples, string(body)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestMetricsThroughHTTP runs real traffic through a Manager whose events
// feed the metrics, then scrapes the registry through promhttp's handler
// and checks every number against the traffic, and that no id or store
// key appears in the exposition.
func TestMetricsThroughHTTP(t *testing.T) {
	a := newApp(t)

	code, v1 := a.get("/set", "") // Create
	for range 3 {
		a.get("/", v1) // Load ×3
	}
	_, v2 := a.get("/login", v1) // Load, Rename: regenerated
	_, v3 := a.get("/login", "") // Create: a new session
	if code != 200 || v1 == "" || v2 == "" || v3 == "" {
		t.Fatalf("sessions not set up: %d %q %q %q", code, v1, v2, v3)
	}
	a.get("/revoke-others", v3) // Load, DeleteOwner: revokes v2
	a.get("/", v2)              // Load not found: expired
	a.get("/logout", v3)        // Load, Delete: destroyed
	unknown := strings.Repeat("A", 43)
	a.get("/", unknown)  // Load not found: expired
	a.get("/", "short!") // malformed: no store call, no event
	if n, err := a.m.Revoke(context.Background(), "nobody"); n != 0 || err != nil {
		t.Fatalf("Revoke(nobody) = %d, %v", n, err) // DeleteOwner
	}

	_, v4 := a.get("/set", "") // Create
	done := make(chan int)
	go func() { c, _ := a.get("/hold", v4); done <- c }() // Load, lock acquired, Load
	a.waitHolding(t)
	if code, _ := a.get("/hold", v4); code != http.StatusServiceUnavailable { // Load, lock timeout
		t.Fatalf("a request behind the lock's holder: %d, want 503", code)
	}
	a.release()
	if c := <-done; c != http.StatusOK {
		t.Fatalf("the lock's holder: %d", c)
	}

	a.store.down.Store(true)
	if code, _ := a.get("/", v4); code != http.StatusServiceUnavailable { // Load error
		t.Fatalf("a request while the store is down: %d", code)
	}
	a.store.down.Store(false)

	got, text := a.scrape()
	for series, want := range map[string]float64{
		"session_created_total":     3,
		"session_regenerated_total": 1,
		"session_destroyed_total":   1,
		"session_expired_total":     2,
		"session_revoked_total":     1,

		`session_lock_wait_duration_seconds_count{result="acquired"}`: 1,
		`session_lock_wait_duration_seconds_count{result="timeout"}`:  1,

		`session_store_call_duration_seconds_count{op="Create",result="ok"}`:            3,
		`session_store_call_duration_seconds_count{op="Load",result="ok"}`:              3 + 1 + 1 + 1 + 2 + 1,
		`session_store_call_duration_seconds_count{op="Load",result="not_found"}`:       2,
		`session_store_call_duration_seconds_count{op="Load",result="error"}`:           1,
		`session_store_call_duration_seconds_count{op="Rename",result="ok"}`:            1,
		`session_store_call_duration_seconds_count{op="Delete",result="ok"}`:            1,
		`session_store_call_duration_seconds_count{op="DeleteOwner",result="ok"}`:       2,
		`session_store_call_duration_seconds_bucket{op="Rename",result="ok",le="+Inf"}`: 1,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	var calls float64
	for series, n := range got {
		if strings.HasPrefix(series, "session_store_call_duration_seconds_count{") {
			calls += n
		}
	}
	if calls != 3+9+2+1+1+1+2 {
		t.Errorf("%v store calls in all, want 19: an unexpected series in\n%s", calls, text)
	}
	if s := got[`session_lock_wait_duration_seconds_sum{result="timeout"}`]; s < lockTimeout.Seconds()*0.9 || s > 5 {
		t.Errorf("the lock timeout's wait is %vs, want about %v", s, lockTimeout)
	}
	for _, v := range []string{v1, v2, v3, v4, unknown} {
		sum := sha256.Sum256([]byte(v))
		for _, secret := range []string{v, hex.EncodeToString(sum[:])} {
			if strings.Contains(text, secret) {
				t.Errorf("the exposition contains %q", secret)
			}
		}
	}
	if strings.Contains(text, `"ann"`) {
		t.Error("the exposition contains an owner")
	}
}

// TestNewRefusesADuplicate: a second set of metrics under the same names
// on one registry is an error, with nothing of it left registered; another
// namespace, or const labels with other values, tell the two apart.
func TestNewRefusesADuplicate(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := sessionmetrics.New(reg, sessionmetrics.Options{}); err != nil {
		t.Fatal(err)
	}
	var already prometheus.AlreadyRegisteredError
	if _, err := sessionmetrics.New(reg, sessionmetrics.Options{}); !errors.As(err, &already) {
		t.Fatalf("a second New on one registry: %v, want prometheus.AlreadyRegisteredError", err)
	}
	if _, err := sessionmetrics.New(reg, sessionmetrics.Options{Namespace: "admin_session"}); err != nil {
		t.Fatalf("another namespace: %v", err)
	}
	labelled := prometheus.NewRegistry()
	for _, area := range []string{"api", "admin"} {
		if _, err := sessionmetrics.New(labelled, sessionmetrics.Options{ConstLabels: prometheus.Labels{"area": area}}); err != nil {
			t.Fatalf("const labels area=%s: %v", area, err)
		}
	}
	// A registry where only the last metric clashes: the others are
	// unregistered again.
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "session_store_call_duration_seconds", Help: "clash"}))
	if _, err := sessionmetrics.New(reg2, sessionmetrics.Options{}); err == nil {
		t.Fatal("New succeeded over a clashing metric")
	}
	families, err := reg2.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 1 {
		t.Errorf("%d metric families left registered after a failed New, want only the clashing one", len(families))
	}
}
