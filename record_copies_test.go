package session_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
)

// hostileTreeSession stores a session of n values in s under key and
// changes it once, so that a tree store keeps it in a tree.
func hostileTreeSession(t *testing.T, s session.Store, key string, n int) {
	t.Helper()
	vals := map[string]json.RawMessage{}
	for i := range n {
		vals["k"+strconv.Itoa(i)] = json.RawMessage(`"v` + strconv.Itoa(i) + `"`)
	}
	now := time.Now()
	if err := s.Create(t.Context(), key, &session.Record{Values: vals, Created: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(t.Context(), key, &session.Change{Add: map[string]int64{"n": 1}}); err != nil {
		t.Fatal(err)
	}
}

// TestLoadedCopyIsTheCallers: Load, Update and Rename hand out
// copies whose Values maps are the caller's. A caller that changes a
// value in place in its copy (same number of keys) and uses the record
// again (Change.Apply with MaxSize, Create of a copy of the session) must
// be measured by what the record now holds, not by what the store knew
// of it when it handed it out.
func TestLoadedCopyIsTheCallers(t *testing.T) {
	ctx := t.Context()
	huge := json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`)

	t.Run("memory Apply MaxSize", func(t *testing.T) {
		mem := newMemory(t)
		hostileTreeSession(t, mem, "a", 40)
		rec, err := mem.Load(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		rec.Values["k1"] = huge // the caller's copy
		next, err := (&session.Change{MaxSize: 64 << 10, Values: map[string]json.RawMessage{"k2": json.RawMessage(`1`)}}).Apply(rec)
		if !errors.Is(err, session.ErrTooLarge) {
			t.Errorf("a record holding a 1 MB value passed MaxSize 64 KB: %v (%d values)", err, len(next.Values))
		}
	})

	t.Run("memory Create MaxBytes", func(t *testing.T) {
		mem := newMemoryWith(t, session.MemoryOptions{MaxBytes: 512 << 10})
		hostileTreeSession(t, mem, "a", 40)
		rec, err := mem.Load(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		before := mem.Stats().Bytes
		rec.Values["k1"] = huge // the caller's copy, copied to a new key
		err = mem.Create(ctx, "b", rec)
		if err == nil {
			t.Errorf("a 1 MB session created in a store of at most 512 KB; Stats say %d bytes (were %d)", mem.Stats().Bytes, before)
		} else if !errors.Is(err, session.ErrFull) {
			t.Errorf("Create: %v", err)
		}
	})

	t.Run("mysql Create checks values", func(t *testing.T) {
		cfg, table := sqltest.Table(t)
		st := openMySQLTestStore(t, cfg, session.MySQLOptions{Table: table})
		hostileTreeSession(t, st, "a", 5)
		rec, err := st.Update(ctx, "a", &session.Change{Add: map[string]int64{"n": 1}})
		if err != nil {
			t.Fatal(err)
		}
		rec.Values["k1"] = json.RawMessage(`{not json`) // the caller's copy
		err = st.Create(ctx, "b", rec)
		if err == nil {
			_, lerr := st.Load(ctx, "b")
			t.Errorf("Create wrote a value that is not JSON; the row now reads: %v", lerr)
		}
	})
}
