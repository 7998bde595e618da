package session_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session"
)

// The tutorial's counter: /set starts a session, / counts visits.
func ExampleMiddleware() {
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Set("user_id", "k3j2")
		s.Set("count", 0)
		json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Add("count", 1) // concurrent visits all count, with no lock
		json.NewEncoder(w).Encode(s)
	})
	srv := httptest.NewServer(session.Middleware(session.Options{})(mux))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	for _, path := range []string{"/set", "/", "/"} {
		res, err := browser.Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Printf("%s %s", path, body)
	}
	// Output:
	// /set {"count":0,"user_id":"k3j2"}
	// / {"count":1,"user_id":"k3j2"}
	// / {"count":2,"user_id":"k3j2"}
}

// A login handler: a new id at the privilege change (so an id planted
// before login is worth nothing), an owner so that every session of the
// user can be revoked, and a redirect that finds the user logged in, since
// the session is saved before the response's first byte.
func ExampleSession_Regenerate() {
	m, err := session.New(session.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		// ... check the password ...
		s := session.FromContext(r.Context())
		s.Regenerate()
		s.SetOwner("user-42")
		s.Set("user", "ann")
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /password", func(w http.ResponseWriter, r *http.Request) {
		// ... change the password, then log out every other device ...
		n, err := session.FromContext(r.Context()).RevokeOwner(true)
		if err != nil {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "ended %d other sessions", n)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", session.FromContext(r.Context()).GetString("user"))
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	res, err := (&http.Client{Jar: jar}).Post(srv.URL+"/login", "text/plain", nil)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println(string(body))
	// Output: hello ann
}

// Locked makes one route's read-modify-write exact: requests of one session
// run it one at a time, on every server that shares the store. Appending to
// a list needs it: two requests that read the same cart and each set it
// with one more item would keep only one of the two. (A counter needs no
// lock: see [session.Session.Add].)
func ExampleManager_Locked() {
	m, err := session.New(session.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	mux := http.NewServeMux()
	mux.Handle("POST /cart", m.Locked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		var cart []string
		s.Decode("cart", &cart) // none yet: an empty cart
		s.Set("cart", append(cart, r.FormValue("item")))
	})))
	http.ListenAndServe("127.0.0.1:0", m.Handler(mux))
}

// Add keeps a counter exact without a lock: the store adds to the freshest
// stored value as each request commits, so ten visits at once count ten.
func ExampleSession_Add() {
	mux := http.NewServeMux()
	mux.HandleFunc("/visit", func(w http.ResponseWriter, r *http.Request) {
		n, err := session.FromContext(r.Context()).Add("visits", 1)
		if err != nil { // the value was not an integer
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n) // the count as this request sees it
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, session.FromContext(r.Context()).GetInt("visits"))
	})
	srv := httptest.NewServer(session.Middleware(session.Options{})(mux))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	get := func(path string) string {
		res, err := browser.Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return string(body)
	}
	fmt.Println("first visit:", get("/visit"))
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			get("/visit")
		}()
	}
	wg.Wait()
	fmt.Println("after ten more at once:", get("/count"))
	// Output:
	// first visit: 1
	// after ten more at once: 11
}

// Sessions in MySQL, shared by every app server that opens the same table.
func ExampleNewMySQLStore() {
	cfg, err := mysql.ParseDSN("root@tcp(127.0.0.1:3306)/test")
	if err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := session.NewMySQLStore(db, session.MySQLOptions{}) // table "sessions", created if missing
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // stops the cleanup; db stays open
	mux := http.NewServeMux()
	http.ListenAndServe(":3000", session.Middleware(session.Options{Store: store})(mux))
}
