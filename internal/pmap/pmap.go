// Package pmap is an immutable map from strings to values, sorted by key,
// whose updates share almost all of their structure with the map they
// came from: a change copies one chunk of at most maxChunk entries and the
// list of chunks, not the whole map. The memory store keeps a session's
// values in one, so that a request that changes one key of a session of
// hundreds neither copies nor leaves behind hundreds of entries, while
// every record it ever handed out stays as it was.
//
// Written here rather than taken from a library: the root module depends
// on the standard library and the MySQL driver only.
package pmap

import (
	"iter"
	"slices"
	"strings"
)

const (
	// maxChunk is the most entries a chunk holds; a chunk that would hold
	// more splits in two halves.
	maxChunk = 16
)

// Map is an immutable sorted map. A nil *Map is the empty map; every
// method may be called on it.
type Map[V any] struct {
	chunks []*chunk[V] // in key order, none empty
	n      int
}

type chunk[V any] struct {
	keys []string // sorted
	vals []V
}

// Of returns a Map holding m's entries.
func Of[V any](m map[string]V) *Map[V] {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	vals := make([]V, len(keys))
	for i, k := range keys {
		vals[i] = m[k]
	}
	return FromSorted(keys, vals)
}

// Len returns the number of entries.
func (m *Map[V]) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// find returns the index of the chunk that holds k or would: the last
// chunk whose first key is not after k, or 0.
func (m *Map[V]) find(k string) int {
	i, _ := slices.BinarySearchFunc(m.chunks, k, func(c *chunk[V], k string) int {
		return strings.Compare(c.keys[0], k)
	})
	// i is the first chunk whose first key is >= k.
	if i < len(m.chunks) && m.chunks[i].keys[0] == k {
		return i
	}
	return max(i-1, 0)
}

// Get returns k's value and whether k is present.
func (m *Map[V]) Get(k string) (V, bool) {
	var zero V
	if m.Len() == 0 {
		return zero, false
	}
	c := m.chunks[m.find(k)]
	if j, ok := slices.BinarySearch(c.keys, k); ok {
		return c.vals[j], true
	}
	return zero, false
}

// Set returns a map with k set to v.
func (m *Map[V]) Set(k string, v V) *Map[V] {
	if m.Len() == 0 {
		return &Map[V]{chunks: []*chunk[V]{{keys: []string{k}, vals: []V{v}}}, n: 1}
	}
	ci := m.find(k)
	c := m.chunks[ci]
	j, found := slices.BinarySearch(c.keys, k)
	out := &Map[V]{n: m.n}
	if found {
		nc := &chunk[V]{keys: c.keys, vals: slices.Clone(c.vals)} // keys unchanged: shared
		nc.vals[j] = v
		out.chunks = replace(m.chunks, ci, nc)
		return out
	}
	out.n++
	keys, vals := inserted(c.keys, j, k), inserted(c.vals, j, v)
	if len(keys) <= maxChunk {
		out.chunks = replace(m.chunks, ci, &chunk[V]{keys: keys, vals: vals})
		return out
	}
	h := len(keys) / 2
	lo := &chunk[V]{keys: keys[:h:h], vals: vals[:h:h]}
	hi := &chunk[V]{keys: keys[h:], vals: vals[h:]}
	out.chunks = make([]*chunk[V], 0, len(m.chunks)+1)
	out.chunks = append(append(append(out.chunks, m.chunks[:ci]...), lo, hi), m.chunks[ci+1:]...)
	return out
}

// Delete returns a map without k: m itself when k is absent.
func (m *Map[V]) Delete(k string) *Map[V] {
	if m.Len() == 0 {
		return m
	}
	ci := m.find(k)
	c := m.chunks[ci]
	j, found := slices.BinarySearch(c.keys, k)
	if !found {
		return m
	}
	if m.n == 1 {
		return nil
	}
	out := &Map[V]{n: m.n - 1}
	if len(c.keys) == 1 {
		out.chunks = slices.Delete(slices.Clone(m.chunks), ci, ci+1)
		return out
	}
	nc := &chunk[V]{keys: removed(c.keys, j), vals: removed(c.vals, j)}
	out.chunks = replace(m.chunks, ci, nc)
	return out
}

// inserted returns a copy of s with v inserted at i, in one allocation of
// exactly the room it needs.
func inserted[T any](s []T, i int, v T) []T {
	out := make([]T, len(s)+1)
	copy(out, s[:i])
	out[i] = v
	copy(out[i+1:], s[i:])
	return out
}

// removed returns a copy of s without s[i].
func removed[T any](s []T, i int) []T {
	out := make([]T, len(s)-1)
	copy(out, s[:i])
	copy(out[i:], s[i+1:])
	return out
}

// replace returns a copy of chunks with chunks[i] replaced by c.
func replace[V any](chunks []*chunk[V], i int, c *chunk[V]) []*chunk[V] {
	out := slices.Clone(chunks)
	out[i] = c
	return out
}

// All yields the entries in key order.
func (m *Map[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		if m == nil {
			return
		}
		for _, c := range m.chunks {
			for i, k := range c.keys {
				if !yield(k, c.vals[i]) {
					return
				}
			}
		}
	}
}

// Keys returns the keys in order.
func (m *Map[V]) Keys() []string {
	out := make([]string, 0, m.Len())
	for k := range m.All() {
		out = append(out, k)
	}
	return out
}

// ToMap returns the entries as a Go map.
func (m *Map[V]) ToMap() map[string]V {
	out := make(map[string]V, m.Len())
	for k, v := range m.All() {
		out[k] = v
	}
	return out
}

// FromSorted returns a Map of keys[i] to vals[i], for keys in strictly
// ascending order (not checked), without copying them: the slices become
// the map's and must not be changed.
func FromSorted[V any](keys []string, vals []V) *Map[V] {
	if len(keys) == 0 {
		return nil
	}
	out := &Map[V]{n: len(keys), chunks: make([]*chunk[V], 0, (len(keys)+maxChunk/2-1)/(maxChunk/2))}
	for start := 0; start < len(keys); start += maxChunk / 2 {
		end := min(start+maxChunk/2, len(keys))
		out.chunks = append(out.chunks, &chunk[V]{keys: keys[start:end:end], vals: vals[start:end:end]})
	}
	return out
}
