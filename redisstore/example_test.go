package redisstore_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/redisstore"
)

// Sessions in Redis: the client may be a single node, a Sentinel-managed
// primary or a cluster; NewUniversalClient picks from the options.
func Example() {
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: []string{"127.0.0.1:6379"}, // or the cluster's nodes, or sentinels with MasterName
		// Required: store calls then end at the middleware's StoreTimeout
		// and lock waits at its LockTimeout.
		ContextTimeoutEnabled: true,
	})
	defer client.Close()
	st, err := redisstore.New(client, redisstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n, err := session.FromContext(r.Context()).Add("count", 1)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "visits: %d\n", n)
	})
	handler := session.Middleware(session.Options{Store: st})(mux)
	log.Fatal(http.ListenAndServe(":8080", handler))
}
