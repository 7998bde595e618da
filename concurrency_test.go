package session_test

import (
	"testing"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/sessiontest"
)

func TestMemoryStoreHTTP(t *testing.T) {
	sessiontest.RunHTTP(t, func(t *testing.T) func() session.Store {
		st := session.NewMemoryStore(session.MemoryOptions{})
		t.Cleanup(func() { st.Close() })
		return func() session.Store { return st }
	})
}
