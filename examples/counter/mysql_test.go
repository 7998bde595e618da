package main

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
)

// TestCounterMySQL runs the tutorial's flow on the MySQL store and reads the
// row the way the tutorial's screenshot shows it: SELECT * FROM sessions.
func TestCounterMySQL(t *testing.T) {
	db := sqltest.OpenDB(t, sqltest.Config(t))
	const table = "counter_example_test"
	db.Exec("DROP TABLE IF EXISTS " + table)
	defer db.Exec("DROP TABLE IF EXISTS " + table)
	st, err := session.NewMySQLStore(db, session.MySQLOptions{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := session.New(session.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(routes()))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}

	set := get(t, c, srv.URL+"/set")
	get(t, c, srv.URL+"/")
	if got := get(t, c, srv.URL+"/"); *got.Count != 2 || got.UserID != set.UserID {
		t.Fatalf("answered %+v", got)
	}
	var data string
	if err := db.QueryRow("SELECT data FROM " + table).Scan(&data); err != nil {
		t.Fatal(err)
	}
	if want := `{"count":2,"user_id":"` + set.UserID + `"}`; data != want {
		t.Fatalf("row data %s, want %s", data, want)
	}
}
