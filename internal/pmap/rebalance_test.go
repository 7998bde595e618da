package pmap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// Tests of the removals that merge or share out chunks (rebalance), in
// long random runs of mixed batches: every published version, spare room
// included, stays exactly as it was; the result matches a Go map; find
// finds every key; and the chunk count stays bounded by the entries.

// checkShape fails unless m's chunks are in key order across chunks (the
// last key of each before the first of the next: what find's binary
// search on first keys needs), and unless there are at most
// n/minChunk+1 of them, at most one (a FromSorted tail, or what merged
// into it) under minChunk: a removal that leaves a chunk smaller merges it.
func checkShape(t *testing.T, what string, m *Map[int]) {
	t.Helper()
	if m == nil {
		return
	}
	for i := 1; i < len(m.chunks); i++ {
		a, b := m.chunks[i-1], m.chunks[i]
		if a.keys[len(a.keys)-1] >= b.keys[0] {
			t.Fatalf("%s: chunk %d ends with %q, chunk %d starts with %q", what, i-1, a.keys[len(a.keys)-1], i, b.keys[0])
		}
		if !slices.IsSorted(b.keys) {
			t.Fatalf("%s: chunk %d unsorted: %q", what, i, b.keys)
		}
	}
	small := 0
	for _, c := range m.chunks {
		if len(c.keys) < minChunk {
			small++
		}
	}
	if limit := m.n/minChunk + 1; len(m.chunks) > 1 && (small > 1 || len(m.chunks) > limit) {
		t.Fatalf("%s: %d entries in %d chunks, %d under minChunk (at most %d chunks, one small, expected): sizes %v",
			what, m.n, len(m.chunks), small, limit, chunkSizes(m))
	}
	for i, c := range m.chunks {
		for j, k := range c.keys {
			if got := find(m.chunks, k); got != i {
				t.Fatalf("%s: find(%q) = chunk %d, it is in chunk %d (entry %d)", what, k, got, i, j)
			}
		}
	}
}

// TestRebalanceRandomBatches: 4 seeds x 700 batches of 1 to 60 swaps and
// removes over a small key space, in phases that grow and shrink the map
// (so chunks split, empty, merge and share out over and over), each batch
// started from the latest version or from an earlier one, some batches
// first copying chunks for their values only (so that a merge's
// neighbour is a values-only copy), and some continuing with inserts and
// removes right after a merge in the same batch. After each batch the
// result, and every version kept (published, FromSorted's slices
// included), is checked.
func TestRebalanceRandomBatches(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 77))
			const space = 260
			n0 := rng.IntN(90) // FromSorted: chunks of 8 and a tail of n0%8
			keys, vals := make([]string, n0), make([]int, n0)
			want := map[string]int{}
			for i := range n0 {
				keys[i], vals[i] = hk(i*space/n0), i // distinct: n0 < space
				want[keys[i]] = i
			}
			srcK, srcV := slices.Clone(keys), slices.Clone(vals)
			versions := []frozen{freeze(nil, map[string]int{}), freeze(FromSorted(keys, vals), want)}
			cur := versions[1]
			for batch := range 700 {
				from := cur
				if rng.IntN(4) == 0 {
					from = versions[rng.IntN(len(versions))]
				}
				e, w := from.m.Edit(), maps.Clone(from.want)
				// Phase: mostly removes in some stretches, mostly
				// inserts in others.
				delP := 2 + (batch/50)%3*3 // 2, 5 or 8 in 10
				if rng.IntN(3) == 0 {
					// Copy a few chunks for their values first.
					for range 1 + rng.IntN(6) {
						ks := slices.Collect(maps.Keys(w))
						if len(ks) == 0 {
							break
						}
						k := ks[rng.IntN(len(ks))]
						v := rng.IntN(1 << 20)
						if old, had := e.Swap(k, v); !had || old != w[k] {
							t.Fatalf("batch %d: Swap(%q) gave %d, %v; want %d", batch, k, old, had, w[k])
						}
						w[k] = v
					}
				}
				for range 1 + rng.IntN(60) {
					var k string
					if rng.IntN(10) < delP && len(w) > 0 {
						// Remove a present key, often a neighbour of the
						// last one removed, to empty chunks.
						ks := slices.Sorted(maps.Keys(w))
						k = ks[rng.IntN(len(ks))]
						before := w[k]
						if old, had := e.Remove(k); !had || old != before {
							t.Fatalf("batch %d: Remove(%q) = %d, %v; want %d", batch, k, old, had, before)
						}
						delete(w, k)
					} else {
						k = hk(rng.IntN(space))
						v := rng.IntN(1 << 20)
						old, had := e.Swap(k, v)
						if before, was := w[k]; had != was || old != before {
							t.Fatalf("batch %d: Swap(%q) = %d, %v; want %d, %v", batch, k, old, had, before, was)
						}
						w[k] = v
					}
					wantV, wantOK := w[k]
					if got, ok := e.Get(k); ok != wantOK || got != wantV {
						t.Fatalf("batch %d: Get(%q) during the edit = %d, %v; want %d, %v", batch, k, got, ok, wantV, wantOK)
					}
					if e.Len() != len(w) {
						t.Fatalf("batch %d: Len during the edit %d, want %d", batch, e.Len(), len(w))
					}
				}
				m := e.Done()
				what := fmt.Sprintf("batch %d", batch)
				check(t, batch, m, w)
				checkShape(t, what, m)
				for _, k := range []string{"", "k", hk(-1), hk(space), hk(space * 2)} {
					if _, ok := m.Get(k); ok {
						t.Fatalf("%s: absent key %q found", what, k)
					}
				}
				cur = freeze(m, w)
				if len(versions) < 24 {
					versions = append(versions, cur)
				} else {
					versions[2+rng.IntN(len(versions)-2)] = cur
				}
				for i, v := range versions {
					v.verify(t, fmt.Sprintf("%s, version %d", what, i))
				}
			}
			if !slices.Equal(keys, srcK) || !slices.Equal(vals, srcV) {
				t.Fatal("an edit wrote into FromSorted's slices")
			}
		})
	}
}

// TestRebalanceEveryChunkEveryNeighbour: in maps of five chunks, of 8
// (FromSorted: a merge), of 16 (made by an earlier edit: a share-out),
// or of both in turn, each chunk, the first and the last included, loses
// entries until fewer than minChunk are left, its neighbours first left
// published, copied for their values only, or made the editor's own. The
// edit then goes on in the same batch: a value changed, keys inserted
// where the removed ones were (up to a split), more removed. No chunk
// under minChunk is left, the result matches a Go map, and the base is
// untouched, spare room included.
func TestRebalanceEveryChunkEveryNeighbour(t *testing.T) {
	bases := map[string]func() (*Map[int], map[string]int){
		"8s": func() (*Map[int], map[string]int) { return spaced(40, nil) },
		"16s": func() (*Map[int], map[string]int) {
			return spaced(40, func(ci int) bool { return true })
		},
		"mixed": func() (*Map[int], map[string]int) {
			return spaced(40, func(ci int) bool { return ci%2 == 1 })
		},
	}
	for name, mk := range bases {
		for _, nb := range []string{"published", "vals", "owned"} {
			base, want0 := mk()
			if nb == "published" {
				t.Logf("%s: chunks %v", name, chunkSizes(base))
			}
			fz := freeze(base, want0)
			nch := len(base.chunks)
			for ci := range nch {
				what := fmt.Sprintf("%s, chunk %d of %d, neighbours %s", name, ci, nch, nb)
				want := maps.Clone(want0)
				e := base.Edit()
				for _, nj := range []int{ci - 1, ci + 1} {
					if nj < 0 || nj >= nch {
						continue
					}
					c := base.chunks[nj]
					switch nb {
					case "vals":
						e.Set(c.keys[1], -1)
						want[c.keys[1]] = -1
					case "owned":
						k := c.keys[1] + "x" // between keys[1] and keys[2]
						e.Set(k, -2)
						e.Delete(k)
					}
				}
				c := base.chunks[ci]
				for _, k := range c.keys[:len(c.keys)-(minChunk-1)] {
					if _, had := e.Remove(k); !had {
						t.Fatalf("%s: Remove(%q) found nothing", what, k)
					}
					delete(want, k)
				}
				for i, ec := range e.chunks {
					if len(ec.keys) < minChunk {
						t.Fatalf("%s: after the removals chunk %d of %v holds %d", what, i, chunkSizes(&Map[int]{chunks: e.chunks}), len(ec.keys))
					}
				}
				// Go on in the same batch.
				last := c.keys[len(c.keys)-1]
				e.Set(last, 99)
				want[last] = 99
				for i, k := range c.keys[:len(c.keys)-(minChunk-1)] {
					for _, kk := range []string{k, k + "y"} {
						e.Set(kk, 1000+i)
						want[kk] = 1000 + i
					}
				}
				for _, k := range c.keys[len(c.keys)-(minChunk-1):] {
					e.Delete(k)
					delete(want, k)
				}
				got := e.Done()
				check(t, ci, got, want)
				checkShape(t, what, got)
				fz.verify(t, what)
			}
		}
	}
}

// spaced returns a FromSorted map of n keys hk(10*i) (chunks of 8), and,
// when grow says so for a chunk, one edit that inserts a key after each of
// its keys (a chunk of 16 in a full array, published).
func spaced(n int, grow func(ci int) bool) (*Map[int], map[string]int) {
	keys, vals := make([]string, n), make([]int, n)
	want := map[string]int{}
	for i := range n {
		keys[i], vals[i] = hk(10*i), i
		want[keys[i]] = i
	}
	m := FromSorted(keys, vals)
	if grow == nil {
		return m, want
	}
	e := m.Edit()
	for i := range n {
		if grow(i / (maxChunk / 2)) {
			k := hk(10*i + 5)
			e.Set(k, -i)
			want[k] = -i
		}
	}
	return e.Done(), want
}

// TestShrinkBatchUsesSmallArrays: a batch that takes each chunk of 16
// (published, in full arrays) down to minChunk entries, the fewest a
// removal leaves without a merge, copies every chunk once (its first
// removal) and then removes in place; Done must leave those chunks in
// arrays of 8, not 16, or the memory store, which counts a value once,
// would hold much more than MaxBytes counts
// (TestShrunkTreeSessionsHeapAllocations in the root package).
func TestShrinkBatchUsesSmallArrays(t *testing.T) {
	base, want := spaced(40, func(int) bool { return true }) // 5 chunks of 16
	e := base.Edit()
	for _, c := range base.chunks {
		for _, k := range c.keys[minChunk:] {
			e.Delete(k)
			delete(want, k)
		}
	}
	m := e.Done()
	check(t, 0, m, want)
	entries, room := 0, 0
	for _, c := range m.chunks {
		entries += len(c.keys)
		room += cap(c.keys)
	}
	t.Logf("%d entries in chunks %v, %d slots", entries, chunkSizes(m), room)
	if room > 2*entries {
		t.Errorf("a shrunk map of %d entries keeps %d slots (%.1f per entry): chunks of %d or fewer entries the edit made stay in arrays of %d",
			entries, room, float64(room)/float64(entries), smallChunk, maxChunk)
	}
}
