// Command counter is the Koa session tutorial's demo on net/http: GET /set
// starts a session with a user_id and a count of 0, GET / adds one to the
// count, GET /logout ends the session. Each answers the session as JSON.
//
// The count goes up with Session.Add, which the store applies to the
// freshest stored count as each request commits: visits that arrive at once
// all count, without a lock. -lock serializes the requests of one session,
// for handlers that read a value and write back something computed from it
// (a list appended to, a check then a change), which Add does not cover.
//
//	go run ./examples/counter                       # in-memory sessions
//	go run ./examples/counter -store mysql -dsn 'root@tcp(127.0.0.1:3306)/test'
//	go run ./examples/counter -store mysql -koa     # share sessions with the Koa app
//
// With -koa the sessions live in the Koa tutorial's table,
// _mysql_session_store, in Koa's row format, and the cookie is the one the
// tutorial's Koa app sets (SESSION_ID, Path=/), so a visitor moves between
// this server and the Koa app (interop/koa) without losing the session.
// The server logs the address it listens on, so -addr 127.0.0.1:0 picks a
// free port.
package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/koa"
)

// config is what the flags say.
type config struct {
	addr, store, dsn string
	lock, koa        bool
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:3000", "listen address: loopback by default; \":3000\" for every interface (port 0 picks a free one)")
	flag.StringVar(&c.store, "store", "memory", "session store: memory or mysql")
	flag.StringVar(&c.dsn, "dsn", "root@tcp(127.0.0.1:3306)/test", "MySQL DSN, with -store mysql")
	flag.BoolVar(&c.lock, "lock", false, "serialize the requests of one session (for read-modify-write handlers; the counter's Add needs no lock)")
	flag.BoolVar(&c.koa, "koa", false, "with -store mysql: share sessions with the Koa tutorial's app (its table _mysql_session_store and its cookie SESSION_ID)")
	flag.Usage = func() {
		out := flag.CommandLine.Output()
		fmt.Fprintf(out, "Usage: counter [flags]\n\nThe session tutorial's counter. Routes:\n%s\nFlags:\n", routeHelp)
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	h, mode, closeAll, err := newServer(c)
	if err != nil {
		return err
	}
	defer closeAll()
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	log.Printf("counter (%s) listening on http://%s", mode, ln.Addr())
	// http.Serve has no timeouts: a client that sends nothing would hold
	// its connection forever.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	err = srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// newServer builds the counter's handler for c, and a function that
// closes what it opened.
func newServer(c config) (h http.Handler, mode string, closeAll func(), err error) {
	opts := session.Options{Lock: c.lock}
	mode = c.store + " store"
	closeStore := func() error { return nil }
	switch {
	case c.koa && c.store != "mysql":
		return nil, "", nil, fmt.Errorf("-koa needs -store mysql, not %q", c.store)
	case c.store == "memory":
	case c.store == "mysql":
		cfg, err := mysql.ParseDSN(c.dsn)
		if err != nil {
			return nil, "", nil, fmt.Errorf("-dsn: %w", err)
		}
		if !c.koa {
			// The store opens its own pool and closes it with itself.
			st, err := session.OpenMySQLStore(cfg, session.MySQLOptions{})
			if err != nil {
				return nil, "", nil, err
			}
			opts.Store, closeStore = st, st.Close
			break
		}
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, "", nil, fmt.Errorf("-dsn: %w", err)
		}
		db := sql.OpenDB(connector)
		st, err := koa.NewStore(db, koa.Options{})
		if err != nil {
			db.Close()
			return nil, "", nil, err
		}
		// koa.Store leaves the pool to its caller.
		opts.Store, closeStore = st, func() error { return errors.Join(st.Close(), db.Close()) }
		// The Koa app's cookie: the same name, and Path=/ (the default),
		// so the Go cookie replaces Koa's in the browser instead of
		// sitting beside it.
		opts.CookieName = "SESSION_ID"
		opts.Cookie.Path = "/"
		mode = "mysql store, Koa mode"
	default:
		return nil, "", nil, fmt.Errorf("-store %q: want memory or mysql", c.store)
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
	return m.Handler(routes()), mode, closeAll, nil
}

// routeHelp lists the routes, for -h and the README.
const routeHelp = `  GET /        adds one to "count" (Add: concurrent visits all count) and answers the session as JSON
  GET /set     starts over: a new "user_id" and "count" 0
  GET /logout  ends the session (Destroy) and expires the cookie
`

// routes are the tutorial's handlers; they only see the session.
func routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /set", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Set("user_id", randomID())
		s.Set("count", 0)
		reply(w, s)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		// Add, not Set(GetInt+1): concurrent visits all count. A count
		// that is not a number (another app wrote it) is an error.
		if _, err := s.Add("count", 1); err != nil {
			log.Print(err)
			http.Error(w, "the count is not a number", http.StatusInternalServerError)
			return
		}
		reply(w, s)
	})
	mux.HandleFunc("GET /logout", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Destroy()
		reply(w, s)
	})
	return mux
}

func reply(w http.ResponseWriter, s *session.Session) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(s); err != nil {
		log.Print(err)
	}
}

// randomID is a short random string, like the tutorial's
// Math.random().toString(36).substr(2).
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatUint(binary.LittleEndian.Uint64(b[:]), 36)
}
