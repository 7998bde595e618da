package session_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
)

// hostileStores are the stores whose records keep their values in a tree:
// the memory store, and the MySQL store when the test database is there.
func hostileStores(t *testing.T) map[string]func(t *testing.T) session.Store {
	return map[string]func(t *testing.T) session.Store{
		"memory": func(t *testing.T) session.Store { return newMemory(t) },
		"mysql": func(t *testing.T) session.Store {
			cfg, table := sqltest.Table(t)
			return openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table})
		},
	}
}

// hostileRoutes serve what the tests below need.
func hostileRoutes() routes {
	return routes{
		// /fill?n=&p=: n values named p0, p1, ...
		"/fill": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			p := r.URL.Query().Get("p")
			for i := range n {
				if err := s.Set(p+strconv.Itoa(i), fmt.Sprintf("value %d of %s", i, p)); err != nil {
					http.Error(w, err.Error(), 400)
					return
				}
			}
			io.WriteString(w, strconv.Itoa(s.Len()))
		},
		// /set?k=&v=: v as a string (JSON when j=1)
		"/set": func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			var v any = q.Get("v")
			if q.Get("j") == "1" {
				v = json.RawMessage(q.Get("v"))
			}
			if err := session.FromContext(r.Context()).Set(q.Get("k"), v); err != nil {
				http.Error(w, err.Error(), 400)
			}
		},
		"/del": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Delete(r.URL.Query().Get("k"))
		},
		"/add": func(w http.ResponseWriter, r *http.Request) {
			n, err := session.FromContext(r.Context()).Add(r.URL.Query().Get("k"), 1)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			io.WriteString(w, strconv.FormatInt(n, 10))
		},
		"/len": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strconv.Itoa(session.FromContext(r.Context()).Len()))
		},
		"/get": func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(session.FromContext(r.Context()).Get(r.URL.Query().Get("k")))
			w.Write(b)
		},
		"/regen": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Regenerate()
			s.Set("regenerated", true)
			io.WriteString(w, strconv.Itoa(s.Len()))
		},
		"/clearset": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Clear()
			s.Set("after", 1)
			fmt.Fprintf(w, "%d %v %v", s.Len(), s.Get("after"), s.Has("p0"))
		},
		"/show": showRoute,
	}
}

// hostileShow returns the session's values as the app sees them.
func hostileShow(t *testing.T, srv *server, cookie string) map[string]any {
	t.Helper()
	res, body := srv.sendID("/show", cookie)
	if res.StatusCode != 200 {
		t.Fatalf("/show: %d %s", res.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("/show: %v: %s", err, body)
	}
	return m
}

// TestBigSessionConcurrentHTTP: many clients of one session of hundreds
// of values write different keys and one counter at once while others
// read; every write is kept, the counter counts every Add, readers always
// see at least the values the session started with, and a regenerate and
// a Clear-then-set of the big session behave. Run it with -race.
func TestBigSessionConcurrentHTTP(t *testing.T) {
	for name, mk := range hostileStores(t) {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, session.Options{Store: mk(t), MaxSize: 1 << 20}, hostileRoutes())
			cookie := srv.issue("/fill?n=300&p=p")
			const writers, each = 8, 15
			var wg sync.WaitGroup
			errs := make(chan string, writers*each*3)
			stop := make(chan struct{})
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						if res, body := srv.sendID(fmt.Sprintf("/set?k=w%d_%d&v=x", w, i), cookie); res.StatusCode != 200 {
							errs <- fmt.Sprintf("set: %d %s", res.StatusCode, body)
						}
						if res, body := srv.sendID("/add?k=count", cookie); res.StatusCode != 200 {
							errs <- fmt.Sprintf("add: %d %s", res.StatusCode, body)
						}
						if i%3 == 0 {
							if res, body := srv.sendID(fmt.Sprintf("/del?k=p%d", w*30+i), cookie); res.StatusCode != 200 {
								errs <- fmt.Sprintf("del: %d %s", res.StatusCode, body)
							}
						}
					}
				}()
			}
			var readers sync.WaitGroup
			for range 4 {
				readers.Add(1)
				go func() {
					defer readers.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						res, body := srv.sendID("/len", cookie)
						if n, _ := strconv.Atoi(body); res.StatusCode != 200 || n < 300-writers*5 {
							errs <- fmt.Sprintf("len: %d %s", res.StatusCode, body)
						}
					}
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(stop); readers.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("writers and readers still running after 60s")
			}
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			m := hostileShow(t, srv, cookie)
			if got := m["count"]; got != float64(writers*each) {
				t.Errorf("count %v, want %d", got, writers*each)
			}
			for w := range writers {
				for i := range each {
					if m[fmt.Sprintf("w%d_%d", w, i)] != "x" {
						t.Errorf("w%d_%d lost", w, i)
					}
					if _, ok := m[fmt.Sprintf("p%d", w*30+i)]; ok == (i%3 == 0) {
						t.Errorf("p%d: present %v", w*30+i, ok)
					}
				}
			}
			if want := 300 + writers*each + 1 - writers*5; len(m) != want {
				t.Errorf("%d values, want %d", len(m), want)
			}

			// Regenerate: the values move to the new id, the old id is
			// gone.
			res, body := srv.sendID("/regen", cookie)
			c := cookieIn(res, cookieName)
			if res.StatusCode != 200 || c == nil || c.Value == cookie {
				t.Fatalf("/regen: %d %s, cookie %v", res.StatusCode, body, c)
			}
			if n, _ := strconv.Atoi(body); n != len(m)+1 {
				t.Errorf("/regen saw %s values, want %d", body, len(m)+1)
			}
			if old := hostileShow(t, srv, cookie); len(old) != 0 {
				t.Errorf("the old id still holds %d values", len(old))
			}
			moved := hostileShow(t, srv, c.Value)
			if len(moved) != len(m)+1 || moved["regenerated"] != true || moved["count"] != float64(writers*each) {
				t.Errorf("after Regenerate: %d values, count %v", len(moved), moved["count"])
			}
			cookie = c.Value
			// Later changes of the renamed session keep the rest.
			srv.sendID("/set?k=later&v=y", cookie)
			if got := hostileShow(t, srv, cookie); len(got) != len(m)+2 || got["later"] != "y" || got["p299"] == nil {
				t.Errorf("after a change of the renamed session: %d values", len(got))
			}

			// Clear then set in one request.
			res, body = srv.sendID("/clearset", cookie)
			if res.StatusCode != 200 || body != "1 1 false" {
				t.Fatalf("/clearset: %d %q", res.StatusCode, body)
			}
			if got := hostileShow(t, srv, cookie); len(got) != 1 || got["after"] != float64(1) {
				t.Errorf("after Clear and a set: %v", got)
			}
			srv.noErr()
		})
	}
}

// TestMaxSizeExactHTTP: after hundreds of changes of a big session,
// MaxSize still holds to the byte: a change that makes the values exactly
// MaxSize bytes is saved, one a byte larger is refused and leaves the
// session as it was.
func TestMaxSizeExactHTTP(t *testing.T) {
	for name, mk := range hostileStores(t) {
		t.Run(name, func(t *testing.T) {
			const limit = 20000
			srv := newServer(t, session.Options{Store: mk(t), MaxSize: limit}, hostileRoutes())
			cookie := srv.issue("/fill?n=100&p=p")
			for i := range 150 {
				k := []string{"p" + strconv.Itoa(i%100), "é" + strconv.Itoa(i%7), "<" + strconv.Itoa(i%5), ""}[i%4]
				if i%5 == 4 {
					srv.sendID("/del?k="+urlq(k), cookie)
					continue
				}
				srv.sendID(fmt.Sprintf("/set?k=%s&v=%s", urlq(k), strings.Repeat("y", i%13)), cookie)
			}
			srv.noErr()
			res, body := srv.sendID("/show", cookie)
			if res.StatusCode != 200 {
				t.Fatal(body)
			}
			size := len(strings.TrimSpace(body)) // MarshalJSON: the values as one encoded object
			// "pad":"<n x's>" adds 1+3+1+1+2+n+1 (comma, quoted key, colon, quoted value)
			room := limit - size - len(`,"pad":""`)
			if room < 0 {
				t.Fatalf("session already %d bytes", size)
			}
			res, body = srv.sendID("/set?k=pad&v="+strings.Repeat("z", room+1), cookie)
			if res.StatusCode != 500 {
				t.Fatalf("one byte over MaxSize: %d %s", res.StatusCode, body)
			}
			if err := srv.err(); !errors.Is(err, session.ErrTooLarge) {
				t.Fatalf("one byte over: %v", err)
			}
			res, body = srv.sendID("/set?k=pad&v="+strings.Repeat("z", room), cookie)
			if res.StatusCode != 200 {
				t.Fatalf("exactly MaxSize: %d %s", res.StatusCode, body)
			}
			srv.noErr()
			_, body = srv.sendID("/show", cookie)
			if got := len(strings.TrimSpace(body)); got != limit {
				t.Fatalf("stored %d bytes, want exactly %d", got, limit)
			}
			// One more byte anywhere is refused; deleting makes room.
			srv.sendID("/set?k=another&v=", cookie)
			if err := srv.err(); !errors.Is(err, session.ErrTooLarge) {
				t.Fatalf("past the limit: %v", err)
			}
			srv.sendID("/del?k=pad", cookie)
			srv.sendID("/set?k=another&v=", cookie)
			srv.noErr()
		})
	}
}

func urlq(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "<", "%3C", "+", "%2B", " ", "%20", "#", "%23", "?", "%3F", "=", "%3D")
	return r.Replace(s)
}
