package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed013449c2/session"
)

// TestOwnerIndexAcrossSlots gives one owner sessions in every slot range
// of the cluster and ends them with one DeleteOwner.
func TestOwnerIndexAcrossSlots(t *testing.T) {
	t.Parallel()
	c := topologies[1].client(t)
	s := newStore(t, c, Options{})
	ctx := t.Context()
	const n = 40
	owner := "user-" + testPrefix(t)
	nodes := map[string]bool{}
	var keys []string
	for i := range n {
		key := fmt.Sprintf("k%03d", i)
		rec := freshRecord(map[string]json.RawMessage{"i": json.RawMessage(fmt.Sprint(i))})
		rec.Owner = owner
		if err := s.Create(ctx, key, rec); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
		node, err := c.(*redis.ClusterClient).MasterForKey(ctx, s.recordKey(key))
		if err != nil {
			t.Fatal(err)
		}
		nodes[node.Options().Addr] = true
	}
	if len(nodes) != 3 {
		t.Fatalf("the sessions landed on %d nodes, want all 3", len(nodes))
	}
	got, err := s.DeleteOwner(ctx, owner, keys[7])
	if err != nil || got != n-1 {
		t.Fatalf("DeleteOwner = %d, %v; want %d, nil", got, err, n-1)
	}
	for i, key := range keys {
		_, err := s.Load(ctx, key)
		if (i == 7) != (err == nil) {
			t.Errorf("key %d after DeleteOwner: %v", i, err)
		}
	}
	// The entries of the deleted records are gone from the index.
	if left, err := c.ZCard(ctx, s.ownerKey(owner)).Result(); err != nil || left != 1 {
		t.Fatalf("owner index holds %d entries, %v; want 1", left, err)
	}
}

// TestOwnerIndexPruned checks that the index does not grow as sessions
// end: entries past their end are dropped by the next write to the index,
// and the index expires with its last entry.
func TestOwnerIndexPruned(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			c := topo.client(t)
			s := newStore(t, c, Options{})
			ctx := t.Context()
			owner := "user-" + testPrefix(t)
			idx := s.ownerKey(owner)
			now := time.Now().UTC()
			for i := range 10 {
				rec := &session.Record{Values: map[string]json.RawMessage{"i": json.RawMessage(`1`)}, Owner: owner,
					Created: now, Expires: now.Add(200 * time.Millisecond), Deadline: now.Add(200 * time.Millisecond)}
				if err := s.Create(ctx, fmt.Sprintf("short%d", i), rec); err != nil {
					t.Fatal(err)
				}
			}
			if n, _ := c.ZCard(ctx, idx).Result(); n != 10 {
				t.Fatalf("index holds %d entries, want 10", n)
			}
			ttl, err := c.PTTL(ctx, idx).Result()
			if err != nil || ttl <= 0 || ttl > 2*time.Second {
				t.Fatalf("index TTL = %v, %v; want it to expire with its last entry", ttl, err)
			}
			time.Sleep(300 * time.Millisecond)
			long := freshRecord(map[string]json.RawMessage{"i": json.RawMessage(`1`)})
			long.Owner = owner
			if err := s.Create(ctx, "long", long); err != nil {
				t.Fatal(err)
			}
			if n, _ := c.ZCard(ctx, idx).Result(); n != 1 {
				t.Fatalf("after the short sessions ended, the index holds %d entries, want 1", n)
			}
			if ttl, _ := c.PTTL(ctx, idx).Result(); ttl < 23*time.Hour {
				t.Fatalf("index TTL %v, want it to follow the long session's deadline", ttl)
			}
		})
	}
}

// TestOwnerIndexFollowsExpiry: a record with an owner and no Deadline is
// indexed by its expiry, so a Touch or an Update that extends it must
// extend its entry first, or DeleteOwner would miss it later.
func TestOwnerIndexFollowsExpiry(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, topo.client(t), Options{})
			ctx := t.Context()
			owner := "user-" + testPrefix(t)
			now := time.Now().UTC()
			short := func(key string) {
				rec := &session.Record{Values: map[string]json.RawMessage{"i": json.RawMessage(`1`)}, Owner: owner,
					Created: now, Expires: now.Add(300 * time.Millisecond)}
				if err := s.Create(ctx, key, rec); err != nil {
					t.Fatal(err)
				}
			}
			short("touched")
			short("updated")
			short("beyond-deadline")
			later := time.Now().Add(time.Hour)
			if err := s.Touch(ctx, "touched", later); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Update(ctx, "updated", &session.Change{Expires: later, Values: map[string]json.RawMessage{"j": json.RawMessage(`2`)}}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(400 * time.Millisecond)
			if n, err := s.DeleteOwner(ctx, owner, ""); err != nil || n != 2 {
				t.Fatalf("DeleteOwner = %d, %v; want 2 (the extended sessions)", n, err)
			}
		})
	}
}

// TestLoginIndexesFirst: setting an owner on an anonymous session (login)
// lists it in the index before the record names the owner, and a later
// change of owner is followed.
func TestLoginIndexesFirst(t *testing.T) {
	t.Parallel()
	c := topologies[1].client(t)
	s := newStore(t, c, Options{})
	ctx := t.Context()
	if err := s.Create(ctx, "anon", freshRecord(map[string]json.RawMessage{"cart": json.RawMessage(`[1]`)})); err != nil {
		t.Fatal(err)
	}
	ann, bob := "ann-"+testPrefix(t), "bob-"+testPrefix(t)
	rec, err := s.Update(ctx, "anon", &session.Change{Owner: &ann})
	if err != nil || rec.Owner != ann {
		t.Fatalf("Update owner = %+v, %v", rec, err)
	}
	score, err := c.ZScore(ctx, s.ownerKey(ann), "anon").Result()
	if err != nil || int64(score) < rec.Deadline.UnixMicro() {
		t.Fatalf("index score %v, %v; want at least the deadline %d", score, err, rec.Deadline.UnixMicro())
	}
	if _, err := s.Update(ctx, "anon", &session.Change{Owner: &bob}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteOwner(ctx, ann, ""); err != nil || n != 0 {
		t.Fatalf("DeleteOwner of the former owner = %d, %v; want 0", n, err)
	}
	if n, err := s.DeleteOwner(ctx, bob, ""); err != nil || n != 1 {
		t.Fatalf("DeleteOwner of the new owner = %d, %v; want 1", n, err)
	}
}

// countingHook counts the commands and pipelines a client sends: each is
// one round trip to Redis.
type countingHook struct {
	trips atomic.Int64
	mu    sync.Mutex
	names map[string]int // commands by name, EVALSHA by script
}

func (h *countingHook) count(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.names[name]
}

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.trips.Add(1)
		name := cmd.Name()
		if args := cmd.Args(); name == "evalsha" && len(args) > 1 {
			name = fmt.Sprint("evalsha ", args[1])
		}
		h.mu.Lock()
		if h.names == nil {
			h.names = map[string]int{}
		}
		h.names[name]++
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.trips.Add(1)
		return next(ctx, cmds)
	}
}

// TestRoundTrips pins the cost of each call in round trips to Redis.
func TestRoundTrips(t *testing.T) {
	c := topologies[0].client(t)
	hook := &countingHook{}
	c.AddHook(hook)
	s := newStore(t, c, Options{})
	ctx := t.Context()
	owner := "user-" + testPrefix(t)
	warm := freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`1`)})
	warm.Owner = owner
	// Load every script into the server's cache first: a script's first
	// run costs one more round trip (NOSCRIPT, then EVAL).
	s.Create(ctx, "warm", warm)
	s.Update(ctx, "warm", &session.Change{Add: map[string]int64{"n": 1}})
	s.Touch(ctx, "warm", time.Now().Add(time.Hour))
	s.DeleteDevice(ctx, owner, "no such handle")
	s.DeleteOwner(ctx, owner, "")
	l, _ := s.Lock(ctx, "warm")
	l.Store().Update(ctx, "warm", &session.Change{Add: map[string]int64{"n": 1}})
	l.Unlock()

	other := "other-" + testPrefix(t)
	var base *session.Record // what the compare-and-swap Update read
	for _, tc := range []struct {
		name  string
		trips int64
		call  func() error
	}{
		{"Create", 1, func() error {
			return s.Create(ctx, "k", freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`1`)}))
		}},
		{"Load", 1, func() error { _, err := s.Load(ctx, "k"); return err }},
		{"Update", 1, func() error {
			_, err := s.Update(ctx, "k", &session.Change{Add: map[string]int64{"n": 1}, Values: map[string]json.RawMessage{"s": json.RawMessage(`"x"`)}})
			return err
		}},
		{"Touch", 1, func() error { return s.Touch(ctx, "k", time.Now().Add(2*time.Hour)) }},
		{"Update setting an owner (login)", 3, func() error {
			_, err := s.Update(ctx, "k", &session.Change{Owner: &other})
			return err
		}},
		{"Update of an owned session", 1, func() error {
			_, err := s.Update(ctx, "k", &session.Change{Add: map[string]int64{"n": 1}})
			return err
		}},
		{"Update with its Base (compare-and-swap)", 1, func() error {
			hits := s.casHits.Load()
			if _, err := s.Update(ctx, "k", &session.Change{Add: map[string]int64{"n": 1}, Base: base, Expires: time.Now().Add(time.Hour)}); err != nil {
				return err
			}
			if s.casHits.Load() != hits+1 {
				return errors.New("the Update did not go by compare-and-swap")
			}
			return nil
		}},
		{"Create with an owner", 2, func() error {
			rec := freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`1`)})
			rec.Owner, rec.Handle = other, "handle-k2"
			return s.Create(ctx, "k2", rec)
		}},
		{"Devices of 2", 2, func() error {
			list, err := s.Devices(ctx, other, 10)
			if err == nil && len(list) != 2 {
				err = fmt.Errorf("listed %+v, want 2", list)
			}
			return err
		}},
		{"DeleteDevice of an unknown handle", 2, func() error {
			found, err := s.DeleteDevice(ctx, other, "handle-k3")
			if err == nil && found {
				err = errors.New("found it")
			}
			return err
		}},
		{"DeleteOwner of 2", 3, func() error { _, err := s.DeleteOwner(ctx, other, ""); return err }},
		{"Delete", 1, func() error { return s.Delete(ctx, "k") }},
		{"Lock, locked Update, Unlock", 3, func() error {
			l, err := s.Lock(ctx, "k3")
			if err != nil {
				return err
			}
			if err := l.Store().Create(ctx, "k3", freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`1`)})); err != nil {
				return err
			}
			return l.Unlock()
		}},
	} {
		if tc.name == "Update with its Base (compare-and-swap)" {
			var err error
			if base, err = s.Load(ctx, "k"); err != nil {
				t.Fatal(err)
			}
		}
		before := hook.trips.Load()
		if err := tc.call(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := hook.trips.Load() - before; got != tc.trips {
			t.Errorf("%s took %d round trips, want %d", tc.name, got, tc.trips)
		}
	}
}

// TestOwnerIndexUnlistsDeleted: logins and logouts in a loop (Create with
// an owner, then Delete, with and without a lease) leave the owner's
// index holding only the live session, not one entry per login until
// their ends pass.
func TestOwnerIndexUnlistsDeleted(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			c := topo.client(t)
			s := newStore(t, c, Options{})
			ctx := t.Context()
			owner := "user-" + testPrefix(t)
			for i := range 20 {
				key := fmt.Sprintf("login%d", i)
				rec := freshRecord(map[string]json.RawMessage{"i": json.RawMessage(`1`)})
				rec.Owner = owner
				if err := s.Create(ctx, key, rec); err != nil {
					t.Fatal(err)
				}
				if i%2 == 0 {
					if err := s.Delete(ctx, key); err != nil {
						t.Fatal(err)
					}
					continue
				}
				lease, err := s.Lock(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if err := lease.Store().Delete(ctx, key); err != nil {
					t.Fatal(err)
				}
				if err := lease.Unlock(); err != nil {
					t.Fatal(err)
				}
			}
			live := freshRecord(map[string]json.RawMessage{"i": json.RawMessage(`1`)})
			live.Owner = owner
			if err := s.Create(ctx, "live", live); err != nil {
				t.Fatal(err)
			}
			if n, err := c.ZCard(ctx, s.ownerKey(owner)).Result(); err != nil || n != 1 {
				t.Fatalf("after 20 logouts the owner index holds %d entries, %v; want the live one", n, err)
			}
		})
	}
}
