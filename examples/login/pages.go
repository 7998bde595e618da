//go:build go1.25

package main

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"time"

	"github.com/seed013449c2/session"
)

//go:embed pages.html style.css
var files embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ago": ago,
}).ParseFS(files, "pages.html"))

// app holds what the pages show besides the session.
type app struct {
	mode string // "memory store" or "mysql store", for the footer
}

// handler is the whole app: cross-origin protection around the session
// middleware around the routes.
func (a *app) handler(m *session.Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.counter)
	mux.HandleFunc("POST /count", a.count)
	mux.HandleFunc("GET /login", a.loginForm)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /devices", a.devices)
	mux.HandleFunc("POST /devices/end", a.endDevice)
	mux.HandleFunc("POST /devices/end-others", a.endOthers)
	mux.HandleFunc("GET /style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		http.ServeFileFS(w, r, files, "style.css")
	})

	// CrossOriginProtection refuses a POST (any non-safe method) that the
	// browser says came from another origin (Sec-Fetch-Site, or Origin
	// against Host for older browsers). It runs before the session
	// middleware, so a refused request costs no store call. SameSite=Lax
	// already keeps the cookie off a cross-site POST; this also covers a
	// same-site attacker (another port or subdomain), which Lax lets in.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.render(w, http.StatusForbidden, "refused", pageData{Title: "Request refused"})
	}))
	return headers(cop.Handler(m.Handler(mux)))
}

// headers sets what every response of the app carries: no caching of
// pages that show a user's data (the back button after logout must not
// show them), and a policy that allows no script, no framing
// (clickjacking) and forms to this origin only.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if r.URL.Path != "/style.css" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// pageData is what the templates read.
type pageData struct {
	Title   string
	User    *user // nil when logged out
	Flash   string
	Error   string
	Notice  string
	Name    string // the login form's user name, kept after a failed try
	Count   int64
	Devices []session.Device
	Users   []user // the demo users, on the login page
	Mode    string
}

// render executes the page template into a buffer first, so a template
// error becomes a 500 instead of half a page.
func (a *app) render(w http.ResponseWriter, code int, page string, d pageData) {
	d.Mode = a.mode
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, page, d); err != nil {
		log.Printf("render %s: %v", page, err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// current returns the logged-in user of the request's session, or nil.
func current(s *session.Session) *user {
	u, ok := userByID(s.GetString("user"))
	if !ok {
		return nil
	}
	return &u
}

// seeOther answers a form POST with a redirect (Post/Redirect/Get), so a
// reload never submits the form again.
func seeOther(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, path, http.StatusSeeOther)
}

func (a *app) counter(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	u := current(s)
	if u == nil {
		seeOther(w, r, "/login")
		return
	}
	flash, _ := s.Pop("flash").(string) // shown once: gone from the session now
	a.render(w, http.StatusOK, "counter", pageData{
		Title: "Counter", User: u, Flash: flash, Count: s.GetInt64("count"),
	})
}

func (a *app) count(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	if current(s) == nil {
		seeOther(w, r, "/login")
		return
	}
	// Add, not Set(GetInt64+1): the store adds to the freshest count, so
	// clicks from two tabs at once all count, without a lock.
	if _, err := s.Add("count", 1); err != nil {
		log.Print(err)
		http.Error(w, "the count is not a number", http.StatusInternalServerError)
		return
	}
	seeOther(w, r, "/")
}

func (a *app) loginForm(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	if current(s) != nil {
		seeOther(w, r, "/")
		return
	}
	d := pageData{Title: "Log in", Users: demoUsers()}
	if r.URL.Query().Has("out") {
		d.Notice = "You are logged out."
	}
	a.render(w, http.StatusOK, "login", d)
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	name, password := r.PostFormValue("name"), r.PostFormValue("password")
	u, ok := checkPassword(name, password)
	if !ok {
		// No session is touched: a failed login creates nothing.
		a.render(w, http.StatusUnauthorized, "login", pageData{
			Title: "Log in", Users: demoUsers(), Name: name,
			Error: "Unknown user name or wrong password.",
		})
		return
	}
	s := session.FromContext(r.Context())
	if current(s) != nil {
		// A login over another one (another user, say): start afresh, so
		// that nothing of the earlier login carries over.
		s.Destroy()
	}
	s.Regenerate()   // a new id at login: an id planted before it is worth nothing
	s.SetOwner(u.ID) // the index behind "your devices" and RevokeOwner
	s.Set("user", u.ID)
	s.SetLabel(deviceLabel(r.UserAgent()))
	flash := fmt.Sprintf("Welcome, %s! ", u.Name)
	if r.PostFormValue("remember") != "" {
		s.Remember(rememberFor, rememberFor)
		flash += "This browser remembers you for 30 days."
	} else {
		s.ForgetOnClose()
		flash += "You stay logged in until you close the browser."
	}
	s.Set("flash", flash)
	seeOther(w, r, "/")
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	session.FromContext(r.Context()).Destroy()
	seeOther(w, r, "/login?out")
}

func (a *app) devices(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	u := current(s)
	if u == nil {
		seeOther(w, r, "/login")
		return
	}
	devices, err := s.Devices()
	if err != nil {
		log.Print(err)
		http.Error(w, "cannot list your devices", http.StatusInternalServerError)
		return
	}
	flash, _ := s.Pop("flash").(string)
	a.render(w, http.StatusOK, "devices", pageData{
		Title: "Your devices", User: u, Flash: flash, Devices: devices,
	})
}

func (a *app) endDevice(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	if current(s) == nil {
		seeOther(w, r, "/login")
		return
	}
	// The handle names a session of this user only: EndDevice looks it up
	// among the sessions of this session's owner, and a handle is no id,
	// so it cannot be used to log in.
	switch err := s.EndDevice(r.PostFormValue("handle")); {
	case errors.Is(err, session.ErrNotFound):
		s.Set("flash", "That device was already logged out.")
	case err != nil:
		log.Print(err)
		http.Error(w, "cannot end that device", http.StatusInternalServerError)
		return
	default:
		if current(s) == nil { // it was this one
			seeOther(w, r, "/login?out")
			return
		}
		s.Set("flash", "The device is logged out.")
	}
	seeOther(w, r, "/devices")
}

func (a *app) endOthers(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	if current(s) == nil {
		seeOther(w, r, "/login")
		return
	}
	n, err := s.RevokeOwner(true)
	if err != nil {
		log.Print(err)
		http.Error(w, "cannot log out the other devices", http.StatusInternalServerError)
		return
	}
	s.Set("flash", fmt.Sprintf("Logged out %d other %s.", n, plural(n, "device", "devices")))
	seeOther(w, r, "/devices")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ago says how long ago t was, as a person would.
func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		n := int(d / time.Minute)
		return fmt.Sprintf("%d %s ago", n, plural(n, "minute", "minutes"))
	case d < 48*time.Hour:
		n := int(d / time.Hour)
		return fmt.Sprintf("%d %s ago", n, plural(n, "hour", "hours"))
	default:
		return t.UTC().Format("2 Jan 2006")
	}
}
