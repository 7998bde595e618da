package pmap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// check compares m with want entry by entry and checks the chunks'
// invariants: none empty or over maxChunk, keys sorted across chunks.
func check(t *testing.T, step int, m *Map[int], want map[string]int) {
	t.Helper()
	if m.Len() != len(want) {
		t.Fatalf("step %d: Len %d, want %d", step, m.Len(), len(want))
	}
	if got := m.ToMap(); !maps.Equal(got, want) {
		t.Fatalf("step %d: %v, want %v", step, got, want)
	}
	if keys := m.Keys(); !slices.IsSorted(keys) || len(keys) != len(want) {
		t.Fatalf("step %d: keys %v not sorted or not all", step, keys)
	}
	for k, v := range want {
		if got, ok := m.Get(k); !ok || got != v {
			t.Fatalf("step %d: Get(%q) = %d, %v; want %d", step, k, got, ok, v)
		}
	}
	if m != nil {
		if len(m.chunks) == 0 {
			t.Fatalf("step %d: a non-nil map without chunks", step)
		}
		for _, c := range m.chunks {
			if len(c.keys) == 0 || len(c.keys) > maxChunk || len(c.keys) != len(c.vals) {
				t.Fatalf("step %d: chunk of %d keys, %d values", step, len(c.keys), len(c.vals))
			}
		}
	}
}

// TestMatchesAGoMap: thousands of random sets and deletes, checked after
// each against a Go map; and every earlier version still holds what it
// held (nothing is changed in place).
func TestMatchesAGoMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	var m *Map[int]
	want := map[string]int{}
	type version struct {
		m    *Map[int]
		want map[string]int
	}
	var versions []version
	for step := range 6000 {
		k := "k" + strconv.Itoa(rng.IntN(400))
		if rng.IntN(3) == 0 {
			m = m.Delete(k)
			delete(want, k)
		} else {
			v := rng.Int()
			m = m.Set(k, v)
			want[k] = v
		}
		if _, gone := m.Get("absent"); gone {
			t.Fatal("a key never set is present")
		}
		if step%97 == 0 {
			check(t, step, m, want)
			versions = append(versions, version{m, maps.Clone(want)})
		}
	}
	for i, v := range versions {
		check(t, i, v.m, v.want)
	}
}

func TestOfAndEmpty(t *testing.T) {
	var empty *Map[int]
	check(t, 0, empty, map[string]int{})
	if empty.Delete("x") != nil {
		t.Fatal("Delete on the empty map made a map")
	}
	if Of(map[string]int{}) != nil {
		t.Fatal("Of an empty map is not nil")
	}
	src := map[string]int{}
	for i := range 1000 {
		src[strconv.Itoa(i)] = i
	}
	m := Of(src)
	check(t, 0, m, src)
	for k := range src {
		m = m.Delete(k)
	}
	if m != nil {
		t.Fatalf("deleting every key left %d", m.Len())
	}
	one := empty.Set("", 5) // the empty key is a key like any other
	check(t, 1, one, map[string]int{"": 5})
}

// TestChangeCopiesLittle: a change of one key of a map of 10,000 copies one
// chunk and the chunk list, far less than the map.
func TestChangeCopiesLittle(t *testing.T) {
	src := map[string]int{}
	for i := range 10_000 {
		src["key"+strconv.Itoa(i)] = i
	}
	m := Of(src)
	allocs := testing.AllocsPerRun(100, func() { _ = m.Set("key5000", 1) })
	if allocs > 4 {
		t.Errorf("Set of an existing key allocates %v times, want at most 4", allocs)
	}
	next := m.Set("key5000", 1)
	shared := 0
	for i := range m.chunks {
		if m.chunks[i] == next.chunks[i] {
			shared++
		}
	}
	if shared != len(m.chunks)-1 {
		t.Errorf("%d of %d chunks shared after one Set, want all but one", shared, len(m.chunks))
	}
}

// TestFromSorted: a map built from sorted slices holds them, and changing
// it leaves the slices alone.
func TestFromSorted(t *testing.T) {
	keys := make([]string, 100)
	vals := make([]int, 100)
	want := map[string]int{}
	for i := range keys {
		keys[i], vals[i] = fmt.Sprintf("k%03d", i), i
		want[keys[i]] = i
	}
	m := FromSorted(keys, vals)
	check(t, 0, m, want)
	m.Set("k050", -1).Delete("k000")
	if keys[0] != "k000" || vals[50] != 50 {
		t.Fatal("a change wrote into the slices the map was built from")
	}
	if FromSorted[int](nil, nil) != nil {
		t.Fatal("FromSorted of nothing is not the empty map")
	}
}

// TestEditorBatches: batches of up to 40 swaps and removes made through
// one Editor, each giving the value it replaced and read back through the
// Editor as it goes, checked with the result against a Go map; every earlier version, and the slices a
// FromSorted map was built from, still hold what they held.
func TestEditorBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	keys := make([]string, 200)
	vals := make([]int, 200)
	for i := range keys {
		keys[i], vals[i] = fmt.Sprintf("k%03d", i*2), i
	}
	srcKeys, srcVals := slices.Clone(keys), slices.Clone(vals)
	m := FromSorted(keys, vals)
	want := map[string]int{}
	for i, k := range keys {
		want[k] = vals[i]
	}
	type version struct {
		m    *Map[int]
		want map[string]int
	}
	versions := []version{{m, maps.Clone(want)}}
	for batch := range 600 {
		e := m.Edit()
		for range 1 + rng.IntN(40) {
			k := fmt.Sprintf("k%03d", rng.IntN(450))
			randomEdit(t, rng, &e, want, k, batch)
			wantV, wantOK := want[k]
			if got, ok := e.Get(k); ok != wantOK || got != wantV {
				t.Fatalf("batch %d: Get(%q) during the edit = %d, %v; want %d, %v", batch, k, got, ok, wantV, wantOK)
			}
			if e.Len() != len(want) {
				t.Fatalf("batch %d: Len during the edit %d, want %d", batch, e.Len(), len(want))
			}
		}
		m = e.Done()
		check(t, batch, m, want)
		if batch%50 == 0 {
			versions = append(versions, version{m, maps.Clone(want)})
		}
	}
	for i, v := range versions {
		check(t, i, v.m, v.want)
	}
	if !slices.Equal(keys, srcKeys) || !slices.Equal(vals, srcVals) {
		t.Fatal("an edit wrote into the slices a FromSorted map was built from")
	}
}

// randomEdit removes k from e and want, one time in three, else sets it
// to a random value in both, and fails unless e gives back the value want
// held.
func randomEdit(t *testing.T, rng *rand.Rand, e *Editor[int], want map[string]int, k string, step int) {
	t.Helper()
	before, had := want[k]
	var old int
	var was bool
	if rng.IntN(3) == 0 {
		old, was = e.Remove(k)
		delete(want, k)
	} else {
		v := rng.IntN(1 << 20)
		old, was = e.Swap(k, v)
		want[k] = v
	}
	if old != before || was != had {
		t.Fatalf("step %d: %q had %d, %v; the edit said %d, %v", step, k, before, had, old, was)
	}
}

// TestEditorNoChange: an edit that changes nothing returns the map it
// started from; one that deletes every key returns the empty map; an
// Editor used after Done panics instead of changing a published map.
func TestEditorNoChange(t *testing.T) {
	m := Of(map[string]int{"a": 1, "b": 2})
	e := m.Edit()
	e.Delete("zz")
	if got := e.Done(); got != m {
		t.Fatal("an edit that changed nothing made a new map")
	}
	e = m.Edit()
	e.Delete("a")
	e.Delete("b")
	if got := e.Done(); got != nil {
		t.Fatalf("deleting every key left %d", got.Len())
	}
	var zero Editor[int]
	zero.Set("x", 1)
	check(t, 0, zero.Done(), map[string]int{"x": 1})
	defer func() {
		if recover() == nil {
			t.Fatal("Set after Done did not panic")
		}
	}()
	zero.Set("y", 2)
}

// TestEditorCopiesOnce: a batch that sets two keys in different chunks
// of a map of 10,000 copies the chunk list once and each chunk once: four
// allocations with the new Map, however many changes the batch holds.
func TestEditorCopiesOnce(t *testing.T) {
	src := map[string]int{}
	for i := range 10_000 {
		src["key"+strconv.Itoa(i)] = i
	}
	m := Of(src)
	allocs := testing.AllocsPerRun(100, func() {
		e := m.Edit()
		for i := range 8 {
			e.Set("key1000", i)
			e.Set("key9000", i)
		}
		_ = e.Done()
	})
	if allocs > 4 {
		t.Errorf("a batch of 16 sets of two keys allocates %v times, want at most 4", allocs)
	}
}

// TestRemovalsMergeChunks: a map of 256 keys that loses seven of every
// eight, one batch or one key at a time, ends with its 32 keys in chunks
// of at least minChunk, not in 32 chunks of one.
func TestRemovalsMergeChunks(t *testing.T) {
	for _, batch := range []bool{true, false} {
		var m *Map[int]
		want := map[string]int{}
		for i := range 256 {
			k := fmt.Sprintf("k%03d", i)
			m = m.Set(k, i)
			want[k] = i
		}
		e := m.Edit()
		for i := range 256 {
			if i%8 == 0 {
				continue
			}
			k := fmt.Sprintf("k%03d", i)
			delete(want, k)
			if batch {
				e.Delete(k)
			} else {
				m = m.Delete(k)
			}
		}
		if batch {
			m = e.Done()
		}
		check(t, 0, m, want)
		for _, c := range m.chunks {
			if len(c.keys) < minChunk {
				t.Fatalf("batch %v: a chunk of %d keys among %d chunks", batch, len(c.keys), len(m.chunks))
			}
		}
	}
}
