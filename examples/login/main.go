//go:build go1.25

// Command login is a small server-rendered web app built on the session
// package and the standard library alone (html/template, no JavaScript):
//
//   - a login form with "remember me": a remembered login gets a persistent
//     cookie and a 30-day session ([session.Session.Remember]), any other
//     login a browser-session cookie that goes when the browser closes
//     ([session.Session.ForgetOnClose]);
//   - a welcome message shown once after login ([session.Session.Pop]);
//   - a counter button that keeps every click, also from several tabs at
//     once ([session.Session.Add]);
//   - a "your devices" page listing this user's sessions, labelled with a
//     short browser name, where one can be ended ([session.Session.Devices],
//     [session.Session.EndDevice]) or all the others at once
//     ([session.Session.RevokeOwner]);
//   - logout by POST.
//
// Every POST goes through [http.CrossOriginProtection] (Go 1.25), which
// refuses a form that another origin makes the browser submit; the session
// cookie is HttpOnly and SameSite=Lax, as the session package makes it.
//
//	go run ./examples/login                                  # http://127.0.0.1:8080, sessions in memory
//	go run ./examples/login -mysql 'root@tcp(127.0.0.1:3306)/test'
//	go run ./examples/login -tls-cert cert.pem -tls-key key.pem   # HTTPS, cookie __Host-SESSION_ID
//
// The users are a fixed demo list (users.go), shown on the login page.
// The server logs the address it listens on, so -addr 127.0.0.1:0 picks a
// free port. The browser tests in e2e/ drive this program in Chromium.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session"
)

// config is what the flags say.
type config struct {
	addr            string
	mysqlDSN        string // "" for the memory store
	table           string // the MySQL table
	tlsCert, tlsKey string // both or neither: HTTPS
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen address (port 0 picks a free one)")
	flag.StringVar(&c.mysqlDSN, "mysql", "", "keep sessions in MySQL at this DSN (e.g. 'root@tcp(127.0.0.1:3306)/test') instead of in memory")
	flag.StringVar(&c.table, "table", "sessions", "the MySQL table, with -mysql (created if missing)")
	flag.StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS with this certificate file (PEM), with -tls-key")
	flag.StringVar(&c.tlsKey, "tls-key", "", "the private key file (PEM) of -tls-cert")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "login: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "login:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, c config) error {
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	h, mode, closeAll, err := newServer(c)
	if err != nil {
		return err
	}
	defer closeAll()
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	scheme := "http"
	if c.tlsCert != "" {
		scheme = "https"
	}
	log.Printf("login (%s) listening on %s://%s", mode, scheme, ln.Addr())
	done := make(chan error, 1)
	go func() {
		if c.tlsCert != "" {
			done <- srv.ServeTLS(ln, c.tlsCert, c.tlsKey)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Session lifetimes. A login without "remember me" keeps the Options: it
// ends when the browser closes, after two hours without a request, or
// twelve hours after the login. A remembered one lasts 30 days, however
// the browser is closed in between (the session package caps it at
// Options.MaxRememberLifetime, 30 days by default).
const (
	idleTimeout = 2 * time.Hour
	lifetime    = 12 * time.Hour
	rememberFor = 30 * 24 * time.Hour
)

// newServer builds the app's handler for c, and a function that closes
// what it opened.
func newServer(c config) (h http.Handler, mode string, closeAll func(), err error) {
	opts := session.Options{
		IdleTimeout: idleTimeout,
		Lifetime:    lifetime,
	}
	mode = "memory store"
	closeStore := func() error { return nil }
	if c.mysqlDSN != "" {
		cfg, err := mysql.ParseDSN(c.mysqlDSN)
		if err != nil {
			return nil, "", nil, fmt.Errorf("-mysql: %w", err)
		}
		// The store opens its own pool and closes it with itself.
		st, err := session.OpenMySQLStore(cfg, session.MySQLOptions{Table: c.table})
		if err != nil {
			return nil, "", nil, err
		}
		opts.Store, closeStore, mode = st, st.Close, "mysql store"
	}
	if c.tlsCert != "" {
		// Over HTTPS the cookie gets the __Host- prefix: the browser then
		// accepts it only with Secure, Path=/ and no Domain, so no
		// subdomain and no plain-HTTP page can plant or overwrite it.
		opts.CookieName = "__Host-SESSION_ID"
		opts.Cookie.Secure = true
	}
	m, err := session.New(opts)
	if err != nil {
		closeStore()
		return nil, "", nil, err
	}
	closeAll = func() {
		if err := errors.Join(m.Close(), closeStore()); err != nil {
			log.Print(err)
		}
	}
	a := &app{mode: mode}
	return a.handler(m), mode, closeAll, nil
}
