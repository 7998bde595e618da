// Command counter is the Koa session tutorial's demo on net/http: GET /set
// starts a session with a user_id and a count of 0, GET / adds one to the
// count, GET /logout ends the session. Each answers the session as JSON.
//
//	go run ./examples/counter                       # in-memory sessions
//	go run ./examples/counter -store mysql -dsn 'root@tcp(127.0.0.1:3306)/test'
package main

import (
	"crypto/rand"
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

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session"
)

func main() {
	addr := flag.String("addr", ":3000", "listen address")
	store := flag.String("store", "memory", "session store: memory or mysql")
	dsn := flag.String("dsn", "root@tcp(127.0.0.1:3306)/test", "MySQL DSN, with -store mysql")
	lock := flag.Bool("lock", false, "serialize the requests of one session (exact counts under concurrency)")
	flag.Parse()
	if err := run(*addr, *store, *dsn, *lock); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run(addr, storeName, dsn string, lock bool) error {
	opts := session.Options{Lock: lock}
	switch storeName {
	case "memory":
	case "mysql":
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return fmt.Errorf("-dsn: %w", err)
		}
		st, err := session.OpenMySQLStore(cfg, session.MySQLOptions{})
		if err != nil {
			return err
		}
		defer st.Close()
		opts.Store = st
	default:
		return fmt.Errorf("-store %q: want memory or mysql", storeName)
	}
	m, err := session.New(opts)
	if err != nil {
		return err
	}
	defer m.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Printf("counter (%s store) listening on http://%s", storeName, ln.Addr())
	err = http.Serve(ln, m.Handler(routes()))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

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
		s.Set("count", s.GetInt("count")+1)
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
