package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/seed013449c2/session"
)

type counterState struct {
	Count  *int   `json:"count"`
	UserID string `json:"user_id"`
}

func (s counterState) String() string {
	if s.Count == nil {
		return fmt.Sprintf("{count:null user_id:%q}", s.UserID)
	}
	return fmt.Sprintf("{count:%d user_id:%q}", *s.Count, s.UserID)
}

func get(t *testing.T, c *http.Client, url string) counterState {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, res.Status)
	}
	var st counterState
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCounterFlow(t *testing.T) {
	m, err := session.New(session.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv := httptest.NewServer(m.Handler(routes()))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}

	set := get(t, c, srv.URL+"/set")
	if set.Count == nil || *set.Count != 0 || set.UserID == "" {
		t.Fatalf("/set answered %+v", set)
	}
	for want := 1; want <= 2; want++ {
		got := get(t, c, srv.URL+"/")
		if got.Count == nil || *got.Count != want || got.UserID != set.UserID {
			t.Fatalf("/ #%d answered %+v, want count %d and user_id %q", want, got, want, set.UserID)
		}
	}
	if got := get(t, c, srv.URL+"/logout"); got.Count != nil || got.UserID != "" {
		t.Fatalf("/logout answered %+v", got)
	}
	// After logout the old session is gone: a missing count counts as 0.
	if got := get(t, c, srv.URL+"/"); got.Count == nil || *got.Count != 1 || got.UserID != "" {
		t.Fatalf("/ after logout answered %+v", got)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, c := range []config{
		{addr: "127.0.0.1:0", store: "redis"},
		{addr: "127.0.0.1:0", store: "memory", koa: true},
		{addr: "127.0.0.1:0", store: "mysql", koa: true, dsn: "not a dsn"},
	} {
		if err := run(c); err == nil {
			t.Errorf("run accepted %+v", c)
		}
	}
}

// TestUsageListsRoutes: -h lists every route the counter serves (the
// README's table is the same list), and each one answers.
func TestUsageListsRoutes(t *testing.T) {
	m, err := session.New(session.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv := httptest.NewServer(m.Handler(routes()))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	for _, path := range []string{"/set", "/", "/logout"} {
		if !strings.Contains(routeHelp, "GET "+path+" ") {
			t.Errorf("-h does not list GET %s:\n%s", path, routeHelp)
		}
		get(t, c, srv.URL+path)
	}
}
