package koa_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
	"github.com/seed013449c2/session/koa"
)

// TestKoaRefusesRememberAndDevices: Koa's table has no column for a
// session's own lifetime, label or handle, so through the middleware
// Remember, ForgetOnClose and SetLabel fail the commit loudly with
// errors.ErrUnsupported (no cookie, the row as it was), Devices says the
// store cannot list devices, and a plain session still works: it gets no
// handle, which the table could not keep.
func TestKoaRefusesRememberAndDevices(t *testing.T) {
	cfg, db, table := koaTestTable(t, false)
	st := openKoaTestStore(t, cfg, koa.Options{Table: table})
	var mu sync.Mutex
	var errs []error
	m, err := session.New(session.Options{Store: st, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		http.Error(w, "refused", http.StatusInternalServerError)
	}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Set("n", 1)
		switch r.URL.Query().Get("with") {
		case "remember":
			s.Remember(48*time.Hour, 240*time.Hour)
		case "forget":
			s.ForgetOnClose()
		case "label":
			s.SetLabel("Firefox")
		}
	})
	mux.HandleFunc("/devices", func(w http.ResponseWriter, r *http.Request) {
		if _, err := session.FromContext(r.Context()).Devices(); err != nil {
			io.WriteString(w, err.Error())
		}
	})
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	get := func(path string, cookie *http.Cookie) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}

	res, _ := get("/set", nil)
	var ck *http.Cookie
	for _, c := range res.Cookies() {
		ck = c
	}
	if res.StatusCode != http.StatusOK || ck == nil {
		t.Fatalf("a plain session on Koa's table: %d, cookie %v", res.StatusCode, ck)
	}
	for _, with := range []string{"remember", "forget", "label"} {
		for _, cookie := range []*http.Cookie{nil, ck} { // a new session and a stored one
			res, _ := get("/set?with="+with, cookie)
			if res.StatusCode != http.StatusInternalServerError || len(res.Cookies()) != 0 {
				t.Errorf("%s on Koa's table: %d, cookies %v; want the ErrorHandler and no cookie", with, res.StatusCode, res.Cookies())
			}
		}
	}
	mu.Lock()
	for _, err := range errs {
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "Koa mode") {
			t.Errorf("error %v, want errors.ErrUnsupported saying what does not work in Koa mode", err)
		}
	}
	if len(errs) != 6 {
		t.Errorf("%d errors, want 6", len(errs))
	}
	mu.Unlock()
	if n := sqltest.CountRows(t, db, table, "1=1"); n != 1 {
		t.Errorf("%d rows, want the plain session's one", n)
	}
	if _, body := get("/devices", ck); !strings.Contains(body, "session.DeviceStore") {
		t.Errorf("Devices on Koa's table: %q, want it to say the store lists no devices", body)
	}
}
