// Package prometheus exports the events of a [session.Manager] as
// Prometheus metrics: [New] registers counters and histograms on a
// prometheus.Registerer and returns the [session.Events] that feed them.
//
//	events, err := sessionmetrics.New(prometheus.DefaultRegisterer, sessionmetrics.Options{})
//	if err != nil { ... }
//	m, err := session.New(session.Options{Events: events})
//
// It lives in a module of its own, so that the session module does not
// depend on the Prometheus client. Its name is the one of the Prometheus
// client's package: import it under another name, as above.
//
// The metrics, with the default namespace "session":
//
//	session_created_total                 counter    sessions stored for the first time
//	session_regenerated_total             counter    sessions moved to a new id (Regenerate)
//	session_destroyed_total               counter    sessions deleted by a request (Destroy, or no values left)
//	session_expired_total                 counter    well-formed ids that named no live session
//	session_revoked_total                 counter    sessions ended by a revocation (session.Events.Revoked)
//	session_lock_wait_duration_seconds    histogram  waits for a session's lock, by result
//	session_store_call_duration_seconds   histogram  calls to the store, by op and result
//
// A lock wait's result is "acquired", "timeout", "canceled" (the client
// went away) or "error". A store call's op is the name of the store's
// method called ("Load", "Create", "Update", "Touch", "Delete", "Rename",
// "DeleteOwner", or that of another optional interface), and its result "ok", "not_found" (an ended or unknown
// session: an answer, not a failure), "exists", "full" (the store refused
// a new session), "timeout" (StoreTimeout or CommitTimeout passed),
// "canceled" or "error" (anything else: an outage, or a change the store
// refused, such as one past MaxSize). No label carries an id, an owner or
// any other value a visitor controls, so the number of series is bounded.
package prometheus

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed013449c2/session"
)

// Options configures the metrics. The zero value is ready to use.
type Options struct {
	// Namespace is the first part of every metric's name. Default
	// "session".
	Namespace string
	// ConstLabels are added to every metric, to tell apart the Managers
	// of one process on one registry: each with the same label names and
	// values of its own (say, {"area": "admin"} and {"area": "shop"}).
	ConstLabels prometheus.Labels
	// Buckets are the upper bounds, in seconds, of both histograms.
	// Default DefaultBuckets.
	Buckets []float64
}

// DefaultBuckets span a memory store's microseconds to a database's
// seconds: 0.1 ms to about 18 s, each three times the one before.
var DefaultBuckets = prometheus.ExponentialBuckets(0.0001, 3, 12)

// New registers the metrics on reg and returns hooks that update them, for
// [session.Options.Events]. It fails if reg refuses a metric, as when
// another collector of the same name is registered there (then it
// registers nothing): give each Manager of one registry its own Namespace,
// or its own values of the same ConstLabels.
func New(reg prometheus.Registerer, opts Options) (*session.Events, error) {
	ns := opts.Namespace
	if ns == "" {
		ns = "session"
	}
	buckets := opts.Buckets
	if len(buckets) == 0 {
		buckets = DefaultBuckets
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help, ConstLabels: opts.ConstLabels})
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, ConstLabels: opts.ConstLabels, Buckets: buckets}, labels)
	}
	var (
		created     = counter("created_total", "Sessions stored for the first time.")
		regenerated = counter("regenerated_total", "Sessions moved to a new id by Regenerate.")
		destroyed   = counter("destroyed_total", "Sessions deleted by a request: Destroy, or a change that left no values.")
		expired     = counter("expired_total", "Requests that presented a well-formed id naming no live session (expired, ended or never issued).")
		revoked     = counter("revoked_total", "Sessions of an owner ended by a revocation, such as Manager.Revoke or Session.RevokeOwner.")
		lockWait    = histogram("lock_wait_duration_seconds", "Time requests waited for a session's lock, by result.", "result")
		storeCall   = histogram("store_call_duration_seconds", "Latency of the calls to the session store, by Store method and result.", "op", "result")
	)
	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{created, regenerated, destroyed, expired, revoked, lockWait, storeCall} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, err
		}
		done = append(done, c)
	}
	count := func(c prometheus.Counter) func(context.Context, session.SessionEvent) {
		return func(context.Context, session.SessionEvent) { c.Inc() }
	}
	return &session.Events{
		Created:     count(created),
		Regenerated: count(regenerated),
		Destroyed:   count(destroyed),
		Expired:     count(expired),
		Revoked: func(_ context.Context, _ string, n int) {
			revoked.Add(float64(n))
		},
		LockWait: func(_ context.Context, d time.Duration, err error) {
			lockWait.WithLabelValues(lockResult(err)).Observe(d.Seconds())
		},
		StoreCall: func(_ context.Context, op string, d time.Duration, err error) {
			storeCall.WithLabelValues(op, storeResult(err)).Observe(d.Seconds())
		},
	}, nil
}

// lockResult is the result label of a lock wait.
func lockResult(err error) string {
	switch {
	case err == nil:
		return "acquired"
	case errors.Is(err, session.ErrLockTimeout):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// storeResult is the result label of a store call.
func storeResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, session.ErrNotFound):
		return "not_found"
	case errors.Is(err, session.ErrExists):
		return "exists"
	case errors.Is(err, session.ErrFull):
		return "full"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}
