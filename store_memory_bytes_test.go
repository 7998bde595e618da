package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"
)

// hostileMemAudit checks the byte count of s against a fresh count of every
// record it holds, and returns the live keys' flat values.
func hostileMemAudit(t *testing.T, step int, s *MemoryStore) {
	t.Helper()
	var sum, n int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, e := range sh.recs {
			fresh := *e.rec
			fresh.sizes = valueSizes{}
			if want := memSize(e.key, &fresh); e.size != want {
				sh.mu.RUnlock()
				t.Fatalf("step %d: %s counted %d bytes, a fresh count gives %d", step, e.key, e.size, want)
			}
			sum += e.size
			n++
		}
		sh.mu.RUnlock()
	}
	if st := s.Stats(); st.Bytes != sum || st.Sessions != n {
		t.Fatalf("step %d: Stats %+v, the records add up to %d bytes in %d sessions", step, st, sum, n)
	}
}

// TestMemoryStoreBytesRandomOps: a long random run of Create (nulls included),
// Update (sessions growing past and shrinking below the tree threshold,
// Clear, counters), Rename, Touch, Delete and expiry keeps the store's
// byte count equal to a fresh count of what it holds, the values equal to
// a model, and everything back to zero once all is gone.
func TestMemoryStoreBytesRandomOps(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := newMemoryStore(MemoryOptions{}, clock)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(3, 4))
	model := map[string]map[string]json.RawMessage{}
	keys := []string{"s0", "s1", "s2", "s3", "s4", "s5"}
	randValues := func(n int) map[string]json.RawMessage {
		m := map[string]json.RawMessage{}
		for range n {
			m[hostileKeys[rng.IntN(len(hostileKeys))]] = hostileValue(rng)
		}
		return m
	}
	for step := range 4000 {
		key := keys[rng.IntN(len(keys))]
		_, live := model[key]
		switch op := rng.IntN(20); {
		case !live || op == 0:
			vals := randValues(1 + rng.IntN(40))
			vals["keep"] = json.RawMessage(`1`)
			rec := &Record{Values: vals, Owner: "o" + key, Created: clock(), Expires: clock().Add(time.Hour)}
			err := s.Create(ctx, key, rec)
			if live {
				if !errors.Is(err, ErrExists) {
					t.Fatalf("step %d: Create over a live session: %v", step, err)
				}
				break
			}
			if err != nil {
				t.Fatalf("step %d: Create: %v", step, err)
			}
			m := maps.Clone(vals)
			maps.DeleteFunc(m, func(_ string, v json.RawMessage) bool { return isNull(v) })
			model[key] = m
		case op == 1:
			if err := s.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			delete(model, key)
		case op == 2:
			to := keys[rng.IntN(len(keys))]
			ch := &Change{Values: randValues(rng.IntN(3))}
			_, err := s.Rename(ctx, key, to, ch)
			if _, taken := model[to]; taken {
				if !errors.Is(err, ErrExists) {
					t.Fatalf("step %d: Rename %s to live %s: %v", step, key, to, err)
				}
				break
			}
			if err != nil {
				t.Fatalf("step %d: Rename: %v", step, err)
			}
			m := model[key]
			delete(model, key)
			for k, v := range ch.Values {
				if isNull(v) {
					delete(m, k)
				} else {
					m[k] = v
				}
			}
			if len(m) > 0 {
				model[to] = m
			}
		case op == 3:
			if err := s.Touch(ctx, key, clock().Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
		case op == 4 && rng.IntN(10) == 0:
			// Everything expires and a sweep frees it.
			mu.Lock()
			now = now.Add(3 * time.Hour)
			mu.Unlock()
			s.sweepIfDue(clock())
			model = map[string]map[string]json.RawMessage{}
		default:
			ch := &Change{Values: randValues(rng.IntN(12))}
			if rng.IntN(30) == 0 {
				ch.Clear = true
				ch.Values["keep"] = json.RawMessage(`1`)
			}
			if rng.IntN(4) == 0 {
				// Shrink: delete most keys, so the session goes back
				// under the threshold.
				for k := range model[key] {
					if k != "keep" && rng.IntN(3) > 0 {
						ch.Values[k] = nil
					}
				}
			}
			ch.Add = map[string]int64{"n": 1}
			if _, err := s.Update(ctx, key, ch); err != nil {
				t.Fatalf("step %d: Update: %v", step, err)
			}
			m := model[key]
			if ch.Clear {
				m = map[string]json.RawMessage{}
			}
			for k, v := range ch.Values {
				if isNull(v) {
					delete(m, k)
				} else {
					m[k] = v
				}
			}
			sum, _ := addInt(m["n"], 1)
			m["n"] = sum
			model[key] = m
		}
		hostileMemAudit(t, step, s)
		for _, k := range keys {
			rec, err := s.Load(ctx, k)
			want, live := model[k]
			if !live {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("step %d: Load %s: %v, want not found", step, k, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d: Load %s: %v", step, k, err)
			}
			got := maps.Clone(rec.Values)
			maps.DeleteFunc(got, func(_ string, v json.RawMessage) bool { return isNull(v) })
			if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
				t.Fatalf("step %d: %s holds %d values, want %d", step, k, len(got), len(want))
			}
		}
	}
	for _, k := range keys {
		_ = s.Delete(ctx, k)
	}
	mu.Lock()
	now = now.Add(24 * time.Hour)
	mu.Unlock()
	s.sweepIfDue(clock())
	if st := s.Stats(); st.Bytes != 0 || st.Sessions != 0 {
		t.Fatalf("empty store: %+v", st)
	}
}

// TestMemoryStoreMaxBytesTree: MaxBytes holds for a session kept in a
// tree as for one in a map: a session grown one value at a time stops
// exactly where a fresh count says the store is full, and shrinking it
// gives the room back.
func TestMemoryStoreMaxBytesTree(t *testing.T) {
	const limit = 64 << 10
	s := NewMemoryStore(MemoryOptions{MaxBytes: limit})
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	if err := s.Create(ctx, "big", &Record{Values: map[string]json.RawMessage{"a": json.RawMessage(`1`)}, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	i := 0
	for ; ; i++ {
		_, err := s.Update(ctx, "big", &Change{Values: map[string]json.RawMessage{fmt.Sprintf("key%05d", i): json.RawMessage(`"` + fmt.Sprint(i*i) + `"`)}})
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i > 10000 {
			t.Fatal("never full")
		}
	}
	hostileMemAudit(t, i, s)
	if st := s.Stats(); st.Bytes > limit {
		t.Fatalf("%d bytes held, limit %d", st.Bytes, limit)
	}
	// The refused value would have taken it past the limit.
	rec, _ := s.loadTree(ctx, "big")
	if rec.tree == nil {
		t.Fatal("a session of hundreds of values is not in a tree")
	}
	// Delete half: room again; fill again: same limit.
	ch := &Change{Values: map[string]json.RawMessage{}}
	for j := 0; j < i; j += 2 {
		ch.Values[fmt.Sprintf("key%05d", j)] = nil
	}
	if _, err := s.Update(ctx, "big", ch); err != nil {
		t.Fatal(err)
	}
	hostileMemAudit(t, -1, s)
	if _, err := s.Update(ctx, "big", &Change{Values: map[string]json.RawMessage{"x": json.RawMessage(`"` + strconv.Itoa(i) + `"`)}}); err != nil {
		t.Fatalf("after shrinking: %v", err)
	}
	if _, err := s.Update(ctx, "big", &Change{Clear: true, Values: map[string]json.RawMessage{"only": json.RawMessage(`1`)}}); err != nil {
		t.Fatal(err)
	}
	hostileMemAudit(t, -2, s)
	rec, _ = s.loadTree(ctx, "big")
	if rec.numValues() != 1 || string(rec.value("only")) != "1" {
		t.Fatalf("after Clear and a set: %v", rec.flat().Values)
	}
}
