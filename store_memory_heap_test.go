//go:build !race

// The race detector changes allocation sizes, so these run without it
// (.ci/run runs them in a step of their own, with the other allocation
// tests).

package session

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// heapAlloc returns the live heap after a full collection.
func heapAlloc() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// fillMemoryStore creates n sessions with an owner (when owned) and vals
// small values each, and returns their owners.
func fillMemoryStore(t *testing.T, s *MemoryStore, n, vals int, owned bool) []string {
	t.Helper()
	now := time.Now()
	owners := make([]string, n)
	for i := range n {
		values := map[string]json.RawMessage{"x": json.RawMessage("1")}
		for j := range vals - 1 {
			values[fmt.Sprintf("k%d", j)] = json.RawMessage(`12`)
		}
		if owned {
			owners[i] = fmt.Sprintf("user-%d", i)
		}
		rec := &Record{Values: values, Owner: owners[i], Created: now, Expires: now.Add(time.Hour)}
		if err := s.Create(context.Background(), fmt.Sprintf("%064x", i), rec); err != nil {
			t.Fatal(err)
		}
	}
	return owners
}

// TestMemoryStoreHeapAllocations checks that MemoryOptions.MaxBytes counts
// what sessions really take: Stats' bytes per session is within a quarter
// of the heap that 50,000 sessions of each shape grow by.
func TestMemoryStoreHeapAllocations(t *testing.T) {
	const n = 50_000
	for _, tc := range []struct {
		vals  int
		owned bool
	}{{1, false}, {3, false}, {11, false}, {3, true}} {
		t.Run(fmt.Sprintf("values=%d,owner=%v", tc.vals, tc.owned), func(t *testing.T) {
			s := NewMemoryStore(MemoryOptions{})
			defer s.Close()
			before := heapAlloc()
			fillMemoryStore(t, s, n, tc.vals, tc.owned)
			heap := (heapAlloc() - before) / n
			counted := s.Stats().BytesPerSession
			t.Logf("heap %d bytes per session, counted %d", heap, counted)
			if counted < heap*3/4 || counted > heap*5/4 {
				t.Fatalf("Stats counts %d bytes per session, the heap grows by %d: off by more than a quarter", counted, heap)
			}
			runtime.KeepAlive(s)
		})
	}
}

// TestMemoryStoreRevokeFreesAllocations checks that a store emptied by a
// mass revoke gives its memory back: the index maps, which Go never
// shrinks, are rebuilt as shards empty.
func TestMemoryStoreRevokeFreesAllocations(t *testing.T) {
	const n = 100_000
	s := NewMemoryStore(MemoryOptions{})
	defer s.Close()
	before := heapAlloc()
	owners := fillMemoryStore(t, s, n, 3, true)
	full := heapAlloc() - before
	for _, o := range owners {
		if _, err := s.DeleteOwner(context.Background(), o, ""); err != nil {
			t.Fatal(err)
		}
	}
	left := heapAlloc() - before
	t.Logf("%d sessions took %d KB; after revoking them all, %d KB remain", n, full/1024, left/1024)
	if st := s.Stats(); st.Sessions != 0 || st.Bytes != 0 {
		t.Fatalf("Stats after revoking everything = %+v", st)
	}
	if left > full/20 {
		t.Fatalf("%d KB of %d KB still in use after revoking every session", left/1024, full/1024)
	}
	runtime.KeepAlive(s)
}

// TestShrunkTreeSessionsHeapAllocations: MaxBytes is the memory store's
// bound on what it holds, so the bytes it counts for a session must stay
// near what the session takes on the heap, also for a session that grew
// past the tree threshold and then lost most of its values. Measured over
// hundreds of sessions; the bound is 3x (2.0x before pmap.Editor).
//
//   - shrunk: 256 values, a change that makes it a tree, then one that
//     deletes seven of every eight. The Editor once gave every chunk it
//     copied room for 16 entries, and left 32 chunks of one: 11.5x.
//   - regrown: the tree grows to 1,024 values in one change (the Editor
//     fills its own chunks and splits them), then one change keeps four
//     of every sixteen: chunks of 4 left in arrays of 16 gave 3.4x.
func TestShrunkTreeSessionsHeapAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	keyOf := func(j int) string { return fmt.Sprintf("k%04d", j) }
	for _, tc := range []struct {
		name  string
		n     int
		vals  int                // values kept at the end
		shape func(j int) string // "keep", "add" or "drop" for value j of 1,024
	}{
		{"shrunk", 1000, 32, func(j int) string {
			switch {
			case j >= 256:
				return ""
			case j%8 == 0:
				return "keep"
			}
			return "drop"
		}},
		{"regrown", 500, 256, func(j int) string {
			switch {
			case j%16 < 4 && j%4 == 0:
				return "keep"
			case j%16 < 4:
				return "add"
			case j%4 == 0:
				return "drop"
			}
			return "add-drop"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := NewMemoryStore(MemoryOptions{})
			defer st.Close()
			ctx := t.Context()
			now := time.Now()
			update := func(key string, ch *Change) {
				if _, err := st.Update(ctx, key, ch); err != nil {
					t.Fatal(err)
				}
			}
			before := heapAlloc()
			for i := range tc.n {
				start := map[string]json.RawMessage{}
				add := &Change{Values: map[string]json.RawMessage{}}
				drop := &Change{Values: map[string]json.RawMessage{}}
				for j := range 1024 {
					switch tc.shape(j) {
					case "keep":
						start[keyOf(j)] = json.RawMessage(`12`)
					case "drop":
						start[keyOf(j)] = json.RawMessage(`12`)
						drop.Values[keyOf(j)] = nil
					case "add":
						add.Values[keyOf(j)] = json.RawMessage(`12`)
					case "add-drop":
						add.Values[keyOf(j)] = json.RawMessage(`12`)
						drop.Values[keyOf(j)] = nil
					}
				}
				key := fmt.Sprintf("%064x", i)
				if err := st.Create(ctx, key, &Record{Values: start, Created: now, Expires: now.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
				// A change of one value makes the session a tree.
				update(key, &Change{Values: map[string]json.RawMessage{keyOf(0): json.RawMessage(`13`)}})
				if len(add.Values) > 0 {
					update(key, add)
				}
				update(key, drop)
			}
			perSession := (heapAlloc() - before) / int64(tc.n)
			counted := st.Stats().BytesPerSession
			ratio := float64(perSession) / float64(counted)
			t.Logf("a session of %d values: heap %d bytes, counted %d (%.1fx)", tc.vals, perSession, counted, ratio)
			if perSession > 3*counted {
				t.Errorf("a session left with %d values takes %d bytes on the heap, the store counts %d (%.1fx): MaxBytes no longer bounds the memory it holds",
					tc.vals, perSession, counted, ratio)
			}
			runtime.KeepAlive(st)
		})
	}
}
