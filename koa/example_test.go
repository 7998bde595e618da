package koa_test

import (
	"database/sql"
	"log"
	"net/http"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/koa"
)

// A Go app that shares its visitors with the Koa tutorial's app: the Koa
// app's database and table, and its cookie.
func Example() {
	db, err := sql.Open("mysql", "user:pass@tcp(db:3306)/app") // the Koa app's database
	if err != nil {
		log.Fatal(err)
	}
	store, err := koa.NewStore(db, koa.Options{}) // table _mysql_session_store, row ids SESSION_ID:<id>
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	m, err := session.New(session.Options{
		Store:       store,
		CookieName:  "SESSION_ID",   // Koa's key
		IdleTimeout: 24 * time.Hour, // Koa's cookie maxAge
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, err := s.Add("count", 1) // the count a Koa route counts too
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		log.Printf("visit %d of %s", n, s.GetString("user_id"))
	})
	log.Fatal(http.ListenAndServe(":3000", m.Handler(mux)))
}
