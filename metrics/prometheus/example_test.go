package prometheus_test

import (
	"bufio"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/seed013449c2/session"
	sessionmetrics "github.com/seed013449c2/session/metrics/prometheus"
)

// A Manager whose events feed Prometheus, and the metrics served at
// /metrics for Prometheus to scrape.
func ExampleNew() {
	reg := prometheus.NewRegistry()
	events, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		log.Fatal(err)
	}
	m, err := session.New(session.Options{Events: events})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Set("visited", true)
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for range 2 {
		res, err := http.Get(srv.URL + "/") // no cookie jar: a new visitor each time
		if err != nil {
			log.Fatal(err)
		}
		res.Body.Close()
	}
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "session_created_total") ||
			strings.HasPrefix(line, "session_store_call_duration_seconds_count") {
			fmt.Println(line)
		}
	}
	// Output:
	// session_created_total 2
	// session_store_call_duration_seconds_count{op="Create",result="ok"} 2
}
