//go:build !race

package session

import (
	"encoding/json"
	"runtime"
	"testing"
)

// TestMemoryUpdateAllocsFollowTheChange: changing one value of a session
// of 2,000 allocates a small part of what the session takes, not a copy
// of it, and leaves no copy behind. Not parallel: it reads the process's
// allocation counters.
func TestMemoryUpdateAllocsFollowTheChange(t *testing.T) {
	ctx := t.Context()
	s := NewMemoryStore(MemoryOptions{})
	t.Cleanup(func() { s.Close() })
	bigSession(t, s, "big", 2000)
	rec, _ := s.loadTree(ctx, "big")
	session := memSize("big", rec) // about 125 KB

	const updates = 200
	ch := &Change{Values: map[string]json.RawMessage{"k1000": json.RawMessage(`"changed"`)}, Add: map[string]int64{"count": 1}}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range updates {
		if _, err := s.updateTree(ctx, "big", ch); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	perUpdate := int64(after.TotalAlloc-before.TotalAlloc) / updates
	t.Logf("a session of %d bytes; %d bytes allocated per update", session, perUpdate)
	if perUpdate > session/10 {
		t.Errorf("an update of one value allocates %d bytes, more than a tenth of the session's %d", perUpdate, session)
	}
}
