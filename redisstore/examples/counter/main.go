// Command counter is the session tutorial's counter with its sessions in
// Redis: GET /set starts a session with a user_id and a count of 0, GET /
// adds one to the count, GET /logout ends the session. Each answers the
// session as JSON.
//
// The count goes up with Session.Add, which the Redis store applies to
// the stored count in one atomic script as each request commits: visits
// that arrive at once all count, on one server or many, without a lock.
//
//	go run ./examples/counter                               # Redis on 127.0.0.1:6379
//	go run ./examples/counter -addr 10.0.0.5:6379
//	go run ./examples/counter -cluster -addr 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002
//	go run ./examples/counter -sentinel mymaster -addr 127.0.0.1:26379
//
// Start several with -listen on different ports and the same Redis: they
// share the sessions. The server logs the address it listens on, so
// -listen 127.0.0.1:0 picks a free port.
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
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/redisstore"
)

// config is what the flags say.
type config struct {
	listen, addr, sentinel string
	cluster, lock          bool
}

func main() {
	var c config
	flag.StringVar(&c.listen, "listen", ":3000", "HTTP listen address (port 0 picks a free one)")
	flag.StringVar(&c.addr, "addr", "127.0.0.1:6379", "Redis address; with -cluster or -sentinel, a comma-separated list of seed nodes or sentinels")
	flag.BoolVar(&c.cluster, "cluster", false, "the addresses are Redis Cluster nodes")
	flag.StringVar(&c.sentinel, "sentinel", "", "the master name, when the addresses are Redis Sentinels")
	flag.BoolVar(&c.lock, "lock", false, "serialize the requests of one session (for read-modify-write handlers; the counter's Add needs no lock)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	h, closeAll, err := newServer(c)
	if err != nil {
		return err
	}
	defer closeAll()
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	log.Printf("counter (Redis at %s) listening on http://%s", c.addr, ln.Addr())
	// A header read has a deadline, so that clients that open connections
	// and send nothing cannot hold them (and their goroutines) forever.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	err = srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// newServer builds the counter's handler for c, and a function that
// closes what it opened.
func newServer(c config) (http.Handler, func(), error) {
	if c.cluster && c.sentinel != "" {
		return nil, nil, errors.New("-cluster and -sentinel exclude each other")
	}
	// One client type for all three: a single node, a Sentinel-managed
	// primary (MasterName) or a cluster (IsClusterMode). The store needs
	// ContextTimeoutEnabled, so that a hung Redis cannot hold a request
	// past the middleware's StoreTimeout.
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 strings.Split(c.addr, ","),
		IsClusterMode:         c.cluster,
		MasterName:            c.sentinel,
		ContextTimeoutEnabled: true,
	})
	st, err := redisstore.New(client, redisstore.Options{})
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	m, err := session.New(session.Options{Store: st, Lock: c.lock})
	if err != nil {
		st.Close()
		client.Close()
		return nil, nil, err
	}
	closeAll := func() {
		m.Close()
		st.Close()
		client.Close()
	}
	return m.Handler(routes()), closeAll, nil
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
