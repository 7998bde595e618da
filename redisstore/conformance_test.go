package redisstore

import (
	"errors"

	"testing"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/sessiontest"
)

// TestConformance runs the session package's store suite on a standalone
// server and on a cluster.
func TestConformance(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			sessiontest.Run(t, func(t *testing.T) session.Store {
				return newStore(t, topo.client(t), Options{})
			})
		})
	}
}

// TestHTTP runs the session package's end-to-end suite through real HTTP:
// each app server of a test opens its own client and store on the same
// Redis, under one prefix.
func TestHTTP(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			sessiontest.RunHTTP(t, func(t *testing.T) func() session.Store {
				prefix := testPrefix(t)
				return func() session.Store {
					return newStore(t, topo.client(t), Options{Prefix: prefix})
				}
			})
		})
	}
}

// TestCorruptRecord: a key under the prefix that is not a session this
// store wrote loads as ErrCorrupt, so the middleware starts a fresh
// session instead of failing every request of that visitor.
func TestCorruptRecord(t *testing.T) {
	t.Parallel()
	c := topologies[0].client(t)
	s := newStore(t, c, Options{})
	ctx := t.Context()
	c.Set(ctx, s.recordKey("string"), "not a hash", 0)
	c.HSet(ctx, s.recordKey("no-expiry"), "v:n", "1")
	c.HSet(ctx, s.recordKey("bad-time"), "v:n", "1", "expires", "soon")
	for _, key := range []string{"string", "no-expiry", "bad-time"} {
		if _, err := s.Load(ctx, key); !errors.Is(err, session.ErrCorrupt) {
			t.Errorf("Load of %s: %v, want ErrCorrupt", key, err)
		}
	}
	if _, err := s.Update(ctx, "no-expiry", &session.Change{Add: map[string]int64{"n": 1}}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Update of a record with no expiry: %v, want ErrNotFound", err)
	}
}
