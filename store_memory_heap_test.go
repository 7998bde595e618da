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
