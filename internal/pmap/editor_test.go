package pmap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// Tests of Editor: every published Map, down to the spare room of
// its chunks' arrays, stays as it was, whichever way an edit reaches a
// chunk (copied for its values, for its keys, split, emptied), however
// many chunks one edit owns, and from whichever earlier version it starts.

// frozen is a deep copy of a Map as published, spare capacity of every
// chunk's arrays included: an edit that wrote past a published chunk's
// length (an insert into its room) would change a neighbour version too.
type frozen struct {
	m      *Map[int]
	chunks []*chunk[int]
	keys   [][]string
	vals   [][]int
	n      int
	want   map[string]int
}

func freeze(m *Map[int], want map[string]int) frozen {
	f := frozen{m: m, n: m.Len(), want: maps.Clone(want)}
	if m != nil {
		f.chunks = slices.Clone(m.chunks)
		for _, c := range m.chunks {
			f.keys = append(f.keys, slices.Clone(c.keys[:cap(c.keys)]))
			f.vals = append(f.vals, slices.Clone(c.vals[:cap(c.vals)]))
		}
	}
	return f
}

func (f frozen) verify(t *testing.T, what string) {
	t.Helper()
	if f.m.Len() != f.n {
		t.Fatalf("%s: a published map's Len went from %d to %d", what, f.n, f.m.Len())
	}
	if f.m == nil {
		return
	}
	if !slices.Equal(f.m.chunks, f.chunks) {
		t.Fatalf("%s: a published map's chunk list changed", what)
	}
	for i, c := range f.m.chunks {
		if !slices.Equal(c.keys[:cap(c.keys)], f.keys[i]) || !slices.Equal(c.vals[:cap(c.vals)], f.vals[i]) {
			t.Fatalf("%s: chunk %d of a published map changed:\nkeys %q -> %q\nvals %v -> %v", what, i,
				f.keys[i], c.keys[:cap(c.keys)], f.vals[i], c.vals[:cap(c.vals)])
		}
	}
	check(t, 0, f.m, f.want)
}

// chunkSizes returns the lengths of m's chunks.
func chunkSizes(m *Map[int]) []int {
	var out []int
	if m != nil {
		for _, c := range m.chunks {
			out = append(out, len(c.keys))
		}
	}
	return out
}

func hk(i int) string { return fmt.Sprintf("k%04d", i) }

// fullChunk returns a map of one chunk of maxChunk keys hk(2), hk(4), ...
// made by one edit (the chunk is the editor's own until Done).
func fullChunk(t *testing.T) (*Map[int], map[string]int) {
	var e Editor[int]
	want := map[string]int{}
	for i := 1; i <= maxChunk; i++ {
		e.Set(hk(2*i), i)
		want[hk(2*i)] = i
	}
	m := e.Done()
	if got := chunkSizes(m); !slices.Equal(got, []int{maxChunk}) {
		t.Fatalf("setup: chunks %v, want one of %d", got, maxChunk)
	}
	return m, want
}

// TestEditorSplitEveryPosition: a full chunk split by an insert at each
// of its maxChunk+1 positions, the chunk reached four ways: the editor's
// own (made in the same edit), a published one, a published one copied for
// its values first in the same edit, and one whose value was changed
// after a split in the same edit. The result holds exactly what it should
// in two chunks, and the published map is untouched.
func TestEditorSplitEveryPosition(t *testing.T) {
	for pos := 0; pos <= maxChunk; pos++ {
		newKey := hk(2*pos + 1) // between hk(2*pos) and hk(2*pos+2)
		for _, how := range []string{"own", "published", "valsFirst", "valsAfter"} {
			base, want := fullChunk(t)
			fz := freeze(base, want)
			want = maps.Clone(want)
			var e Editor[int]
			switch how {
			case "own":
				e = Editor[int]{}
				for i := 1; i <= maxChunk; i++ {
					e.Set(hk(2*i), i)
				}
			default:
				e = base.Edit()
			}
			if how == "valsFirst" {
				// Every value, so the chunk is a values-only copy whose
				// keys are the published chunk's.
				for i := 1; i <= maxChunk; i++ {
					if old, had := e.Swap(hk(2*i), -i); !had || old != i {
						t.Fatalf("pos %d %s: Swap gave %d, %v", pos, how, old, had)
					}
					want[hk(2*i)] = -i
				}
			}
			if old, had := e.Swap(newKey, 1000); had || old != 0 {
				t.Fatalf("pos %d %s: Swap of a new key gave %d, %v", pos, how, old, had)
			}
			want[newKey] = 1000
			if how == "valsAfter" {
				for i := 1; i <= maxChunk; i++ {
					e.Set(hk(2*i), -i)
					want[hk(2*i)] = -i
				}
				e.Set(newKey, 2000)
				want[newKey] = 2000
			}
			got := e.Done()
			check(t, pos, got, want)
			if sz := chunkSizes(got); len(sz) != 2 || sz[0]+sz[1] != maxChunk+1 || min(sz[0], sz[1]) < maxChunk/2 {
				t.Fatalf("pos %d %s: chunks %v after a split", pos, how, sz)
			}
			fz.verify(t, fmt.Sprintf("pos %d %s", pos, how))
			// The split halves are the new map's: a further edit of it
			// must not reach back into it either.
			fz2 := freeze(got, want)
			e2 := got.Edit()
			for i := range 2*maxChunk + 3 {
				e2.Set(hk(i), i*7)
			}
			_ = e2.Done()
			fz2.verify(t, fmt.Sprintf("pos %d %s, after a second edit", pos, how))
			fz.verify(t, fmt.Sprintf("pos %d %s, after a second edit", pos, how))
		}
	}
}

// TestEditorSplitOfFromSorted: FromSorted chunks (capacity capped at
// their length, sharing one array with their neighbours) filled to a
// split at every position of every chunk, from a values-only copy or
// not, leave the slices they were built from alone.
func TestEditorSplitOfFromSorted(t *testing.T) {
	const n = 40 // five chunks of 8
	keys := make([]string, n)
	vals := make([]int, n)
	for i := range keys {
		keys[i], vals[i] = hk(100*i), i
	}
	srcK, srcV := slices.Clone(keys), slices.Clone(vals)
	base := FromSorted(keys, vals)
	want0 := map[string]int{}
	for i, k := range keys {
		want0[k] = vals[i]
	}
	fz := freeze(base, want0)
	for ci := range n / (maxChunk / 2) {
		for pos := 0; pos <= maxChunk; pos++ {
			for _, valsFirst := range []bool{false, true} {
				want := maps.Clone(want0)
				e := base.Edit()
				lo := 100 * (ci * maxChunk / 2)
				if valsFirst {
					e.Set(hk(lo), -1)
					want[hk(lo)] = -1
				}
				// Fill chunk ci to maxChunk with keys after its first,
				// then insert the key that splits it at pos.
				var filled []int
				for j := 1; len(filled) < maxChunk/2; j++ {
					if k := lo + 2*j; k%100 != 0 {
						filled = append(filled, k)
					}
				}
				for _, k := range filled {
					e.Set(hk(k), k)
					want[hk(k)] = k
				}
				cur := slices.Sorted(maps.Keys(func() map[string]int {
					m := map[string]int{}
					for k := range want {
						if k >= hk(lo) && (ci == n/(maxChunk/2)-1 || k < hk(lo+100*maxChunk/2)) {
							m[k] = 0
						}
					}
					return m
				}()))
				if len(cur) != maxChunk {
					t.Fatalf("setup: chunk %d holds %d", ci, len(cur))
				}
				var nk string
				switch {
				case pos == 0 && ci == 0:
					nk = "a" // before every key
				case pos == 0:
					continue // the key would go to the chunk before
				case pos == maxChunk:
					nk = cur[maxChunk-1] + "x"
				default:
					nk = cur[pos-1] + "x"
				}
				e.Set(nk, 999)
				want[nk] = 999
				got := e.Done()
				check(t, ci*100+pos, got, want)
				if len(got.chunks) != n/(maxChunk/2)+1 {
					t.Fatalf("chunk %d pos %d: chunks %v, want a split", ci, pos, chunkSizes(got))
				}
				fz.verify(t, fmt.Sprintf("chunk %d pos %d valsFirst %v", ci, pos, valsFirst))
				if !slices.Equal(keys, srcK) || !slices.Equal(vals, srcV) {
					t.Fatalf("chunk %d pos %d: an edit wrote into FromSorted's slices", ci, pos)
				}
			}
		}
	}
}

// TestEditorEmptyThenNeighbour: an edit that empties a chunk, then
// inserts keys in the gap it left (they go to the chunk before, or to the
// first chunk when it was the first), and into the chunk after, in every
// order, matches a Go map, and the map it started from is untouched.
func TestEditorEmptyThenNeighbour(t *testing.T) {
	keys := make([]string, 48) // six chunks of 8
	vals := make([]int, 48)
	for i := range keys {
		keys[i], vals[i] = hk(10*i+10), i
	}
	want0 := map[string]int{}
	for i, k := range keys {
		want0[k] = vals[i]
	}
	base := FromSorted(keys, vals)
	fz := freeze(base, want0)
	for ci := range 6 {
		for _, valsFirst := range []bool{false, true} {
			want := maps.Clone(want0)
			e := base.Edit()
			if valsFirst {
				// Copy the chunk and both neighbours for their values.
				for _, j := range []int{ci*8 - 1, ci*8 + 3, ci*8 + 8} {
					if j >= 0 && j < 48 {
						e.Set(keys[j], -j)
						want[keys[j]] = -j
					}
				}
			}
			for j := ci * 8; j < ci*8+8; j++ {
				if old, had := e.Remove(keys[j]); !had || old != want[keys[j]] {
					t.Fatalf("chunk %d: Remove(%q) = %d, %v", ci, keys[j], old, had)
				}
				delete(want, keys[j])
			}
			if _, had := e.Remove(keys[ci*8]); had {
				t.Fatalf("chunk %d: a removed key removed twice", ci)
			}
			// Refill the gap with twice as many keys: a split of the
			// neighbour that takes them.
			for j := range 16 {
				k := hk(10*(ci*8) + 10 + j)
				e.Set(k, 5000+j)
				want[k] = 5000 + j
				if got, ok := e.Get(k); !ok || got != 5000+j {
					t.Fatalf("chunk %d: Get(%q) during the edit = %d, %v", ci, k, got, ok)
				}
			}
			if e.Len() != len(want) {
				t.Fatalf("chunk %d: Len %d, want %d", ci, e.Len(), len(want))
			}
			got := e.Done()
			check(t, ci, got, want)
			fz.verify(t, fmt.Sprintf("chunk %d", ci))
		}
	}
}

// TestEditorManyOwnedChunks: one edit that copies twenty chunks for
// their values (so that most are listed past the editor's fixed array),
// then inserts into and removes from each (each copied again for its
// keys, the entry found among the overflow), then changes values again
// (in place), matches a Go map and leaves its base alone.
func TestEditorManyOwnedChunks(t *testing.T) {
	const nchunks = 20
	var keys []string
	var vals []int
	for i := range nchunks * 8 {
		keys, vals = append(keys, hk(10*i)), append(vals, i)
	}
	want := map[string]int{}
	for i, k := range keys {
		want[k] = vals[i]
	}
	base := FromSorted(keys, vals)
	fz := freeze(base, want)
	want = maps.Clone(want)
	e := base.Edit()
	for round := range 3 {
		for c := nchunks - 1; c >= 0; c-- { // from the end: owner lookups in every order
			k := keys[c*8+3]
			e.Set(k, round*1000+c)
			want[k] = round*1000 + c
		}
		for c := range nchunks {
			nk := hk(10*(c*8+3) + 1 + round)
			e.Set(nk, -c)
			want[nk] = -c
			rk := keys[c*8+round]
			e.Delete(rk)
			delete(want, rk)
		}
		if e.nown+len(e.more) < nchunks {
			t.Fatalf("round %d: the editor lists %d chunks, it made at least %d", round, e.nown+len(e.more), nchunks)
		}
	}
	got := e.Done()
	check(t, 0, got, want)
	fz.verify(t, "base")
	if got.Len() != base.Len() {
		// three inserts and three removes per chunk
		t.Fatalf("Len %d, want %d", got.Len(), base.Len())
	}
}

// TestEditorBranchingVersions: edits start from any earlier version, not
// only the latest, and two editors from one version run interleaved; after
// every edit, every version ever published (spare room included) is
// exactly as it was.
func TestEditorBranchingVersions(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 13))
	var versions []frozen
	versions = append(versions, freeze(nil, map[string]int{}))
	keys := make([]string, 64)
	vals := make([]int, 64)
	for i := range keys {
		keys[i], vals[i] = hk(4*i), i
	}
	w := map[string]int{}
	for i, k := range keys {
		w[k] = vals[i]
	}
	versions = append(versions, freeze(FromSorted(keys, vals), w))
	srcK, srcV := slices.Clone(keys), slices.Clone(vals)
	op := func(e *Editor[int], want map[string]int, step int) {
		randomEdit(t, rng, e, want, hk(rng.IntN(300)), step)
	}
	for step := range 1500 {
		a := versions[rng.IntN(len(versions))]
		e1, want1 := a.m.Edit(), maps.Clone(a.want)
		e2, want2 := a.m.Edit(), maps.Clone(a.want)
		for range rng.IntN(70) {
			op(&e1, want1, step)
			if rng.IntN(2) == 0 {
				op(&e2, want2, step)
			}
		}
		m1 := e1.Done()
		m2 := e2.Done()
		check(t, step, m1, want1)
		check(t, step, m2, want2)
		if len(versions) < 40 {
			versions = append(versions, freeze(m1, want1), freeze(m2, want2))
		} else {
			versions[2+rng.IntN(len(versions)-2)] = freeze(m1, want1)
		}
		for i, v := range versions {
			v.verify(t, fmt.Sprintf("step %d version %d", step, i))
		}
	}
	if !slices.Equal(keys, srcK) || !slices.Equal(vals, srcV) {
		t.Fatal("an edit wrote into FromSorted's slices")
	}
}

// TestEditorZeroAndDone: the zero Editor; an editor whose edit deleted
// everything and then set again; Remove of an absent key and Get after
// Done (no panic, no change); Remove of a present key after Done panics
// and leaves the published map alone.
func TestEditorZeroAndDone(t *testing.T) {
	var z Editor[int]
	if _, ok := z.Get("x"); ok || z.Len() != 0 {
		t.Fatal("the zero Editor holds something")
	}
	if _, had := z.Remove("x"); had {
		t.Fatal("Remove on the zero Editor removed something")
	}
	if z.Done() != nil {
		t.Fatal("the zero Editor, unchanged, made a map")
	}

	m, want := fullChunk(t)
	e := m.Edit()
	for k := range want {
		e.Delete(k)
	}
	if e.Len() != 0 {
		t.Fatalf("Len %d after deleting every key", e.Len())
	}
	e.Set("b", 2)
	e.Set("a", 1)
	got := e.Done()
	check(t, 0, got, map[string]int{"a": 1, "b": 2})
	check(t, 1, m, want)

	fz := freeze(got, map[string]int{"a": 1, "b": 2})
	if _, had := e.Remove("zz"); had {
		t.Fatal("Remove of an absent key after Done removed something")
	}
	if v, ok := e.Get("a"); !ok || v != 1 {
		t.Fatalf("Get after Done = %d, %v", v, ok)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Remove of a present key after Done did not panic")
			}
		}()
		e.Remove("a")
	}()
	fz.verify(t, "after Remove past Done")
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Swap after Done did not panic")
			}
		}()
		e.Swap("a", 5)
	}()
	fz.verify(t, "after Swap past Done")
}
