package redisstore

import (
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
