package redisstore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/seed013449c2/session/redisstore/internal/redistest"
)

// The tests run on real Redis: one standalone server and one three-master
// cluster, started on first use and shared by every test (each test
// writes under its own random prefix), plus servers of their own for the
// tests that stop or pause Redis. They need redis-server and redis-cli in
// PATH; without them the tests skip, or fail when CI=true.

var shared struct {
	dir string

	standaloneOnce sync.Once
	standalone     *redistest.Server
	standaloneErr  error

	clusterOnce sync.Once
	cluster     *redistest.Cluster
	clusterErr  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "redisstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.dir = dir
	code := m.Run()
	if shared.standalone != nil {
		shared.standalone.Stop()
	}
	if shared.cluster != nil {
		shared.cluster.Stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// standalone returns the shared standalone server.
func standalone(t testing.TB) *redistest.Server {
	t.Helper()
	redistest.Require(t)
	shared.standaloneOnce.Do(func() {
		d, err := os.MkdirTemp(shared.dir, "standalone-")
		if err != nil {
			shared.standaloneErr = err
			return
		}
		shared.standalone, shared.standaloneErr = redistest.StartServer(d)
	})
	if shared.standaloneErr != nil {
		t.Fatalf("starting redis-server: %v", shared.standaloneErr)
	}
	return shared.standalone
}

// cluster returns the shared three-master cluster.
func cluster(t testing.TB) *redistest.Cluster {
	t.Helper()
	redistest.Require(t)
	shared.clusterOnce.Do(func() {
		d, err := os.MkdirTemp(shared.dir, "cluster-")
		if err != nil {
			shared.clusterErr = err
			return
		}
		shared.cluster, shared.clusterErr = redistest.StartCluster(d, 3)
	})
	if shared.clusterErr != nil {
		t.Fatalf("starting the Redis cluster: %v", shared.clusterErr)
	}
	return shared.cluster
}

// ownServer starts a server for t alone, stopped when t ends.
func ownServer(t *testing.T, extra ...string) *redistest.Server {
	t.Helper()
	redistest.Require(t)
	srv, err := redistest.StartServer(t.TempDir(), extra...)
	if err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// topology is one way of running Redis, for the tests that run on each.
type topology struct {
	name   string
	client func(t testing.TB) redis.UniversalClient
}

var topologies = []topology{
	{"Standalone", func(t testing.TB) redis.UniversalClient {
		c := standalone(t).Client()
		t.Cleanup(func() { c.Close() })
		return c
	}},
	{"Cluster", func(t testing.TB) redis.UniversalClient {
		c := cluster(t).Client()
		t.Cleanup(func() { c.Close() })
		return c
	}},
}

// testPrefix returns a prefix no other test uses.
func testPrefix(t testing.TB) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "t" + hex.EncodeToString(b) + ":"
}

// newStore returns a store on c under a fresh prefix, closed when t ends.
func newStore(t testing.TB, c redis.UniversalClient, opts Options) *Store {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = testPrefix(t)
	}
	s, err := New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
