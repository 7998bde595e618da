package session_test

import (
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
)

// tcpProxy forwards a loopback port to the database, and can be cut (every
// connection dropped, new ones refused) and restored on the same port: a
// database outage as the app server sees it.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut drops every connection and stops listening.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// restore listens again on the same port.
func (p *tcpProxy) restore() {
	var ln net.Listener
	var err error
	for range 50 { // the port was just released; retry briefly if the OS holds it
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// TestMySQLOutage: while the database is unreachable, a request with a
// valid cookie gets the ErrorHandler's 500 and its cookie is not replaced;
// once the database is back, the same cookie finds the session intact.
func TestMySQLOutage(t *testing.T) {
	cfg, table := sqltest.Table(t)
	proxy := newTCPProxy(t, cfg.Addr)
	viaProxy := cfg.Clone()
	viaProxy.Addr = proxy.addr
	viaProxy.Timeout = time.Second
	st := openMySQLTestStore(t, viaProxy, session.MySQLOptions{Table: table})

	var mu sync.Mutex
	var heard []error
	m, err := session.New(session.Options{
		Store: st,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			mu.Lock()
			heard = append(heard, err)
			mu.Unlock()
			http.Error(w, "session store unavailable", http.StatusInternalServerError)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Set("user_id", "k3j2")
		s.Set("count", 0)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Set("count", s.GetInt("count")+1)
		io.WriteString(w, s.GetString("user_id"))
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res, string(body)
	}
	cookie := func() string {
		cs := jar.Cookies(mustURL(t, srv.URL))
		if len(cs) != 1 {
			t.Fatalf("browser holds %d cookies", len(cs))
		}
		return cs[0].Value
	}

	get("/set")
	before := cookie()

	proxy.cut()
	res, _ := get("/")
	if res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("during the outage: status %d, want 500 from the ErrorHandler", res.StatusCode)
	}
	if sc := res.Header.Get("Set-Cookie"); sc != "" {
		t.Fatalf("during the outage the cookie was replaced: %q", sc)
	}
	mu.Lock()
	if len(heard) != 1 || !strings.Contains(heard[0].Error(), "load") {
		t.Fatalf("ErrorHandler heard %v", heard)
	}
	mu.Unlock()

	proxy.restore()
	res, body := get("/")
	if res.StatusCode != http.StatusOK || body != "k3j2" {
		t.Fatalf("after the outage: status %d body %q, want the session intact", res.StatusCode, body)
	}
	if cookie() != before {
		t.Fatal("the cookie changed across the outage")
	}
	var count int
	db := sqltest.OpenDB(t, cfg)
	if err := db.QueryRow("SELECT JSON_VALUE(data, '$.count') FROM `" + table + "`").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 1 {
		t.Fatalf("stored count %d, want 1: the request during the outage must not have counted", count)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
