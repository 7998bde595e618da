package session_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"time"

	"github.com/seed013449c2/session"
)

// Hooks for metrics: here they print what happens as a visitor starts a
// session, logs in and logs out. An application would count the events
// and observe the store's latency instead (package
// github.com/seed013449c2/session/metrics/prometheus does that for
// Prometheus). No event carries the session's id.
func ExampleEvents() {
	events := &session.Events{
		Created:     func(_ context.Context, e session.SessionEvent) { fmt.Println("created") },
		Regenerated: func(_ context.Context, e session.SessionEvent) { fmt.Println("regenerated") },
		Destroyed:   func(_ context.Context, e session.SessionEvent) { fmt.Println("destroyed") },
		StoreCall: func(_ context.Context, op string, d time.Duration, err error) {
			fmt.Println("  store:", op, err)
		},
	}
	m, err := session.New(session.Options{Events: events})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/cart", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("cart", []string{"book"})
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Regenerate()
		s.Set("user", "ann")
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Destroy()
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	for _, path := range []string{"/cart", "/login", "/logout"} {
		fmt.Println(path)
		res, err := browser.Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		res.Body.Close()
	}
	// Output:
	// /cart
	//   store: Create <nil>
	// created
	// /login
	//   store: Load <nil>
	//   store: Rename <nil>
	// regenerated
	// /logout
	//   store: Load <nil>
	//   store: Delete <nil>
	// destroyed
}
