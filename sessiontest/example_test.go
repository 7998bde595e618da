package sessiontest_test

import (
	"testing"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/sessiontest"
)

// A store's test file runs the whole suite with one call. The constructor
// registers the store's cleanup, so each subtest closes what it opened.
func ExampleRun() {
	testStore := func(t *testing.T) {
		sessiontest.Run(t, func(t *testing.T) session.Store {
			s := session.NewMemoryStore(session.MemoryOptions{})
			t.Cleanup(func() { s.Close() })
			return s
		})
	}
	_ = testStore // in a real _test.go file: func TestStore(t *testing.T) { ... }
}
