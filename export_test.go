package session

import (
	"net/http"
	"time"
)

// CleanupGoroutines lets the external tests count a store's cleanup loops.
var CleanupGoroutines = cleanupGoroutines

// SetClock makes m read the time from now instead of time.Now, so that a
// test can move time by hand. Call it before m serves a request.
func SetClock(m *Manager, now func() time.Time) { m.now = now }

// NewMemoryStoreClock is NewMemoryStore reading the time from now.
func NewMemoryStoreClock(opts MemoryOptions, now func() time.Time) *MemoryStore {
	return newMemoryStore(opts, now)
}

// Sweep runs one sweep of s at its clock's time, as its cleanup loop does
// on each tick, and reports whether one ran.
func (s *MemoryStore) Sweep() bool { return s.sweepIfDue(s.now()) }

// DefaultErrorHandler is the ErrorHandler m uses when Options has none.
func DefaultErrorHandler(m *Manager) func(http.ResponseWriter, *http.Request, error) {
	return m.defaultError
}
