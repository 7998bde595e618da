package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/redisstore/internal/redistest"
)

// TestReshardKeepsWrites moves a busy session's slot to another node
// (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) while
// writers add to it, with and without the lock: the client follows the
// ASK and MOVED redirects (and waits out TRYAGAIN while a session's record
// and lock are split between the nodes), and every write that succeeded
// is in the count.
func TestReshardKeepsWrites(t *testing.T) {
	t.Parallel()
	redistest.Require(t)
	cl, err := redistest.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	// go-redis follows at most MaxRedirects (default 3) redirects per
	// call. While the nodes learn the slot's new owner one by one, and the
	// client reloads its slot map from one of them, a call can bounce more
	// often than that; it then fails with MOVED, unexecuted, which the
	// middleware would report as a 500. 8 rides out every such bounce.
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true, MaxRedirects: 8})
	t.Cleanup(func() { c.Close() })
	s := newStore(t, c, Options{})
	ctx := t.Context()
	const key = "hot"
	if err := s.Create(ctx, key, freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`0`)})); err != nil {
		t.Fatal(err)
	}
	slot, err := c.ClusterKeySlot(ctx, s.recordKey(key)).Result()
	if err != nil {
		t.Fatal(err)
	}
	src, dst, err := slotNodes(ctx, c, int(slot))
	if err != nil {
		t.Fatal(err)
	}

	var ok, failed atomic.Int64
	var errMu sync.Mutex
	errs := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				var err error
				if w%2 == 0 {
					_, err = s.Update(wctx, key, &session.Change{Add: map[string]int64{"n": 1}})
				} else {
					err = lockedAdd(wctx, s, key)
				}
				cancel()
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					errs[err.Error()]++
					errMu.Unlock()
				} else {
					ok.Add(1)
				}
			}
		}()
	}

	time.Sleep(100 * time.Millisecond)
	before := ok.Load()
	srcNode, dstNode := nodeClient(src.Addr), nodeClient(dst.Addr)
	defer srcNode.Close()
	defer dstNode.Close()
	must := func(what string, err error) {
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("IMPORTING", dstNode.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", src.ID).Err())
	must("MIGRATING", srcNode.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.ID).Err())
	time.Sleep(50 * time.Millisecond) // writes run while the slot is half moved
	host, port, _ := net.SplitHostPort(dst.Addr)
	for {
		keys, err := srcNode.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		must("GETKEYSINSLOT", err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must("MIGRATE", srcNode.Do(ctx, args...).Err())
	}
	// The destination first, then the source, as redis-cli does: the
	// other way round, the two nodes send a client back and forth.
	order := []string{dst.Addr, src.Addr}
	for _, addr := range cl.Addrs() {
		if addr != dst.Addr && addr != src.Addr {
			order = append(order, addr)
		}
	}
	for _, addr := range order {
		n := nodeClient(addr)
		must("SETSLOT NODE", n.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dst.ID).Err())
		n.Close()
	}
	time.Sleep(150 * time.Millisecond) // writes run after the move
	close(stop)
	wg.Wait()

	if owner, _, err := slotNodes(ctx, c, int(slot)); err != nil || owner.ID != dst.ID {
		t.Fatalf("the slot is on %v (%v), want %s", owner, err, dst.ID)
	}
	rec, err := s.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(string(rec.Values["n"]), 10, 64)
	t.Logf("%d writes succeeded (%d before the move began), %d failed; n = %d", ok.Load(), before, failed.Load(), n)
	if n != ok.Load() {
		t.Fatalf("n = %d after %d successful adds: a write was lost or doubled", n, ok.Load())
	}
	if failed.Load() > 0 {
		t.Errorf("%d writes failed during the move: %v", failed.Load(), errs)
	}
	if ok.Load() == before {
		t.Fatal("no write succeeded during or after the move")
	}
}

// lockedAdd adds one to n under the session's lock.
func lockedAdd(ctx context.Context, s *Store, key string) error {
	l, err := s.Lock(ctx, key)
	if err != nil {
		return err
	}
	_, err = l.Store().Update(ctx, key, &session.Change{Add: map[string]int64{"n": 1}})
	return errors.Join(err, l.Unlock())
}

// slotNode is a master: its id and address.
type slotNode struct{ ID, Addr string }

// slotNodes returns the master that serves slot and another master.
func slotNodes(ctx context.Context, c *redis.ClusterClient, slot int) (owner, other slotNode, err error) {
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		return owner, other, err
	}
	for _, sh := range shards {
		for _, n := range sh.Nodes {
			if n.Role != "master" {
				continue
			}
			node := slotNode{n.ID, net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))}
			serves := false
			for _, r := range sh.Slots {
				serves = serves || (int64(slot) >= r.Start && int64(slot) <= r.End)
			}
			if serves {
				owner = node
			} else {
				other = node
			}
		}
	}
	if owner.ID == "" || other.ID == "" {
		return owner, other, errors.New("slot owner or another master not found")
	}
	return owner, other, nil
}

func nodeClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
}
