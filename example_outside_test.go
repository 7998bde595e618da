package session_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"

	"github.com/seed013449c2/session"
)

// A background job saves its result in the visitor's session after the
// request that started it has ended: the request hands it the session's
// id once the session is saved, and the job loads the session by that id
// and commits its change.
func ExampleManager_LoadID() {
	m, err := session.New(session.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	jobs := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Set("report", "pending")
		fmt.Fprint(w, "started") // the session is saved before this first byte
		jobs <- s.ID()           // so the job finds it; the id, never a cookie value
	})
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, session.FromContext(r.Context()).GetString("report"))
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()

	done := make(chan struct{})
	go func() { // the worker
		defer close(done)
		id := <-jobs
		// ... build the report ...
		ctx := context.Background()
		s, err := m.LoadID(ctx, id)
		if errors.Is(err, session.ErrNotFound) {
			return // the visitor logged out meanwhile: nobody to tell
		} else if err != nil {
			log.Print(err)
			return
		}
		s.Set("report", "ready")
		if err := s.Commit(ctx); err != nil {
			log.Print(err)
		}
	}()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	fmt.Println(exampleBody(browser.Post(srv.URL+"/report", "text/plain", nil)))
	<-done
	fmt.Println("report:", exampleBody(browser.Get(srv.URL+"/report")))
	// Output:
	// started
	// report: ready
}

// A server-sent events stream, outside the middleware, keeps the visitor's
// session for as long as it runs: it loads the session from its request
// once, then for each event loads it again by id (so that it sees a logout
// at once), changes it and commits.
func ExampleManager_Load() {
	m, err := session.New(session.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	app := http.NewServeMux()
	app.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Regenerate()
		s.Set("user", "ann")
	})
	app.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		fmt.Fprintf(w, "%s saw %d events", s.GetString("user"), s.GetInt("events"))
	})
	mux := http.NewServeMux()
	mux.Handle("/", m.Handler(app))
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		s, err := m.Load(r)
		if err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		if s.IsNew() {
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		id := s.ID()
		w.Header().Set("Content-Type", "text/event-stream")
		for range 3 { // for each event
			s, err := m.LoadID(r.Context(), id)
			if err != nil {
				return // ErrNotFound: logged out
			}
			n, _ := s.Add("events", 1)
			if err := s.Commit(r.Context()); err != nil {
				return
			}
			fmt.Fprintf(w, "data: %d\n\n", n)
			http.NewResponseController(w).Flush()
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	exampleBody(browser.Get(srv.URL + "/login"))
	res, err := browser.Get(srv.URL + "/events")
	if err != nil {
		log.Fatal(err)
	}
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() {
		if lines.Text() != "" {
			fmt.Println(lines.Text())
		}
	}
	res.Body.Close()
	fmt.Println(exampleBody(browser.Get(srv.URL + "/")))
	// Output:
	// data: 1
	// data: 2
	// data: 3
	// ann saw 3 events
}

// An admin area with its own cookie and store, inside the app: its
// handlers reach both sessions, each through its Manager's FromContext.
// The package's FromContext gives the innermost, the admin one.
func ExampleManager_FromContext() {
	app, err := session.New(session.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	admin, err := session.New(session.Options{CookieName: "ADMIN"}) // and a memory store of its own
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	adminArea := http.NewServeMux()
	adminArea.HandleFunc("/admin/login", func(w http.ResponseWriter, r *http.Request) {
		a := admin.FromContext(r.Context())
		a.Regenerate()
		a.Set("admin", "root")
		app.FromContext(r.Context()).Set("audit", "admin login")
	})
	adminArea.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user %s, admin %s, innermost %s",
			app.FromContext(r.Context()).GetString("user"),
			admin.FromContext(r.Context()).GetString("admin"),
			session.FromContext(r.Context()).GetString("admin"))
	})
	mux := http.NewServeMux()
	mux.Handle("/admin/", admin.Handler(adminArea))
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("user", "ann")
	})
	srv := httptest.NewServer(app.Handler(mux))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	exampleBody(browser.Get(srv.URL + "/login"))
	exampleBody(browser.Get(srv.URL + "/admin/login"))
	fmt.Println(exampleBody(browser.Get(srv.URL + "/admin/")))
	// Output: user ann, admin root, innermost root
}

// An API client without cookies carries its session in the Authorization
// header. It starts with "Bearer" alone, and sends back whatever value the
// server last answered in that header: a token after login, a new one
// after Regenerate, "Bearer" alone once the session ended. It never gets a
// cookie. Browsers on the same server keep their cookies.
func ExampleOptions_header() {
	m, err := session.New(session.Options{
		Header:      "Authorization",
		SigningKeys: [][]byte{[]byte("a random key of at least 32 bytes, from a secret store")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		// ... check the credentials ...
		s := session.FromContext(r.Context())
		s.Regenerate()
		s.Set("user", "ann")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Destroy()
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user %q", session.FromContext(r.Context()).GetString("user"))
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()

	token := "Bearer" // no session yet
	call := func(method, path string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if v, ok := res.Header["Authorization"]; ok {
			token = v[0] // what the server answers, as it is
		}
		fmt.Printf("%s %s: %s (token: %s, cookies: %d)\n", method, path, b, tokenShape(token), len(res.Cookies()))
	}
	call("POST", "/login")
	call("GET", "/me")
	call("POST", "/logout")
	call("GET", "/me")
	// Output:
	// POST /login:  (token: Bearer id.signature, cookies: 0)
	// GET /me: user "ann" (token: Bearer id.signature, cookies: 0)
	// POST /logout:  (token: Bearer, cookies: 0)
	// GET /me: user "" (token: Bearer, cookies: 0)
}

// tokenShape hides the random parts of a token for the example's output.
func tokenShape(token string) string {
	tok, ok := strings.CutPrefix(token, "Bearer ")
	if !ok {
		return token
	}
	if id, sig, ok := strings.Cut(tok, "."); ok && len(id) == 43 && len(sig) == 43 {
		return "Bearer id.signature"
	}
	return token
}

// exampleBody returns a response's body, for the examples.
func exampleBody(res *http.Response, err error) string {
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		log.Fatal(err)
	}
	return string(b)
}
