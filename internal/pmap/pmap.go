// Package pmap is an immutable map from strings to values, sorted by key,
// whose updates share almost all of their structure with the map they
// came from: a change copies one chunk of at most maxChunk entries and the
// list of chunks, not the whole map, and a batch of changes made through
// an Editor copies the list once and each chunk it touches once. The memory store keeps a session's
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
	// minChunk is the fewest a chunk holds when the map has more than one:
	// a removal that leaves fewer merges the chunk with a neighbour, or
	// shares their entries out evenly, so that a map that shrank holds
	// few, not many nearly empty, chunks.
	minChunk = maxChunk / 4
	// smallChunk is the room of the smaller of the two sizes a chunk the
	// editor makes comes in.
	smallChunk = maxChunk / 2
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

// find returns the index of the chunk of chunks that holds k or would:
// the last chunk whose first key is not after k, or 0.
func find[V any](chunks []*chunk[V], k string) int {
	i, _ := slices.BinarySearchFunc(chunks, k, func(c *chunk[V], k string) int {
		return strings.Compare(c.keys[0], k)
	})
	// i is the first chunk whose first key is >= k.
	if i < len(chunks) && chunks[i].keys[0] == k {
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
	c := m.chunks[find(m.chunks, k)]
	if j, ok := slices.BinarySearch(c.keys, k); ok {
		return c.vals[j], true
	}
	return zero, false
}

// Set returns a map with k set to v.
func (m *Map[V]) Set(k string, v V) *Map[V] {
	e := m.Edit()
	e.Set(k, v)
	return e.Done()
}

// Delete returns a map without k: m itself when k is absent.
func (m *Map[V]) Delete(k string) *Map[V] {
	e := m.Edit()
	e.Delete(k)
	return e.Done()
}

// Editor makes a batch of changes to a Map and returns them as a new Map,
// leaving the one it started from as it was. However many changes it
// makes, it copies the chunk list once and each chunk it touches once:
// the chunks it made itself it changes in place, since no Map holds them
// yet. Its zero value edits the empty map. An Editor must not be copied
// once it has made a change: the copy could change the chunks it made
// after a Map holds them.
type Editor[V any] struct {
	base   *Map[V]
	chunks []*chunk[V] // the new list; nil until the first change
	n      int
	// own lists the chunks this editor made, which it may change: the
	// first ones in an array, so that an Editor on the stack stays there.
	own  [4]owned[V]
	nown int
	more []owned[V]
	done bool
}

// owned is a chunk the editor made; keys tells whether its keys are its
// own too (a chunk whose values alone changed shares its keys with the
// chunk it was copied from).
type owned[V any] struct {
	c    *chunk[V]
	keys bool
}

// owner returns the entry of own that lists c, or nil.
func (e *Editor[V]) owner(c *chunk[V]) *owned[V] {
	for i := range e.nown {
		if e.own[i].c == c {
			return &e.own[i]
		}
	}
	for i := range e.more {
		if e.more[i].c == c {
			return &e.more[i]
		}
	}
	return nil
}

// adopt lists c as the editor's.
func (e *Editor[V]) adopt(c *chunk[V], keys bool) {
	if e.nown < len(e.own) {
		e.own[e.nown] = owned[V]{c, keys}
		e.nown++
		return
	}
	e.more = append(e.more, owned[V]{c, keys})
}

// Edit returns an Editor that starts from m.
func (m *Map[V]) Edit() Editor[V] {
	return Editor[V]{base: m, n: m.Len()}
}

// list returns the chunks as they stand now.
func (e *Editor[V]) list() []*chunk[V] {
	if e.chunks == nil && e.base != nil {
		return e.base.chunks
	}
	return e.chunks
}

// Get returns k's value as the edit stands, and whether k is present.
func (e *Editor[V]) Get(k string) (V, bool) {
	var zero V
	chunks := e.list()
	if len(chunks) == 0 {
		return zero, false
	}
	c := chunks[find(chunks, k)]
	if j, ok := slices.BinarySearch(c.keys, k); ok {
		return c.vals[j], true
	}
	return zero, false
}

// Len returns the number of entries as the edit stands.
func (e *Editor[V]) Len() int { return e.n }

// Set sets k to v.
func (e *Editor[V]) Set(k string, v V) { e.Swap(k, v) }

// Swap sets k to v and returns the value k had, and whether it had one.
func (e *Editor[V]) Swap(k string, v V) (old V, had bool) {
	e.mutable()
	if len(e.chunks) == 0 {
		c := newChunk[V](1, 1)
		c.keys[0], c.vals[0] = k, v
		e.chunks = append(e.chunks, c)
		e.adopt(c, true)
		e.n = 1
		return old, false
	}
	ci := find(e.chunks, k)
	j, found := slices.BinarySearch(e.chunks[ci].keys, k)
	if found {
		c := e.ownVals(ci)
		old, c.vals[j] = c.vals[j], v
		return old, true
	}
	e.n++
	if len(e.chunks[ci].keys) < maxChunk {
		c := e.ownKeys(ci, 1)
		c.keys = slices.Insert(c.keys, j, k)
		c.vals = slices.Insert(c.vals, j, v)
		return old, false
	}
	// Full: split in two halves, the new entry in its half.
	c, h := e.chunks[ci], maxChunk/2
	lo, hi := newChunk[V](h, h+1), newChunk[V](maxChunk-h, maxChunk-h+1)
	if j > h {
		lo = newChunk[V](h, h)
	} else {
		hi = newChunk[V](maxChunk-h, maxChunk-h)
	}
	copy(lo.keys, c.keys[:h])
	copy(lo.vals, c.vals[:h])
	copy(hi.keys, c.keys[h:])
	copy(hi.vals, c.vals[h:])
	if j <= h {
		lo.keys = slices.Insert(lo.keys, j, k)
		lo.vals = slices.Insert(lo.vals, j, v)
	} else {
		hi.keys = slices.Insert(hi.keys, j-h, k)
		hi.vals = slices.Insert(hi.vals, j-h, v)
	}
	e.replace(ci, lo)
	e.adopt(hi, true)
	e.chunks = slices.Insert(e.chunks, ci+1, hi)
	return old, false
}

// Delete removes k, if present.
func (e *Editor[V]) Delete(k string) { e.Remove(k) }

// Remove removes k and returns the value it had, and whether it had one.
func (e *Editor[V]) Remove(k string) (old V, had bool) {
	chunks := e.list()
	if len(chunks) == 0 {
		return old, false
	}
	ci := find(chunks, k)
	j, found := slices.BinarySearch(chunks[ci].keys, k)
	if !found {
		return old, false
	}
	old = chunks[ci].vals[j]
	e.mutable()
	e.n--
	c := e.chunks[ci]
	switch o := e.owner(c); {
	case len(c.keys) == 1:
		e.chunks = slices.Delete(e.chunks, ci, ci+1)
		return old, true
	case o != nil && o.keys:
		c.keys = slices.Delete(c.keys, j, j+1)
		c.vals = slices.Delete(c.vals, j, j+1)
	default:
		nc := newChunk[V](len(c.keys)-1, len(c.keys)-1)
		copy(nc.keys, c.keys[:j])
		copy(nc.keys[j:], c.keys[j+1:])
		copy(nc.vals, c.vals[:j])
		copy(nc.vals[j:], c.vals[j+1:])
		e.replace(ci, nc)
		c = nc
	}
	if len(c.keys) < minChunk && len(e.chunks) > 1 {
		e.rebalance(ci)
	}
	return old, true
}

// rebalance merges chunk ci, which holds fewer than minChunk entries,
// with a neighbour, or shares their entries out in two chunks of at least
// smallChunk when they hold more than maxChunk together.
func (e *Editor[V]) rebalance(ci int) {
	a := ci
	if a == len(e.chunks)-1 {
		a--
	}
	x, y := e.chunks[a], e.chunks[a+1]
	t := len(x.keys) + len(y.keys)
	if t <= maxChunk {
		m := newChunk[V](t, t)
		fill(m, 0, x, y)
		e.replace(a, m)
		e.chunks = slices.Delete(e.chunks, a+1, a+2)
		return
	}
	l := t / 2
	lo, hi := newChunk[V](l, l), newChunk[V](t-l, t-l)
	fill(lo, 0, x, y)
	fill(hi, l, x, y)
	e.replace(a, lo)
	e.replace(a+1, hi)
}

// fill sets dst's entries to those of x followed by y, from the off-th
// on.
func fill[V any](dst *chunk[V], off int, x, y *chunk[V]) {
	for i := range dst.keys {
		src, j := x, off+i
		if j >= len(x.keys) {
			src, j = y, j-len(x.keys)
		}
		dst.keys[i], dst.vals[i] = src.keys[j], src.vals[j]
	}
}

// Done returns the edited map: the one the editor started from when
// nothing changed, nil when it is empty. The editor must not be used
// afterwards.
func (e *Editor[V]) Done() *Map[V] {
	e.done = true
	switch {
	case e.chunks == nil:
		return e.base
	case e.n == 0:
		return nil
	}
	e.compact()
	return &Map[V]{chunks: e.chunks, n: e.n}
}

// compact moves the entries of every chunk the editor made with room for
// maxChunk that removals left with smallChunk or fewer into a chunk of
// the smaller size, so that a map shrunk in one batch does not keep its
// large arrays.
func (e *Editor[V]) compact() {
	shrink := func(o owned[V]) {
		c := o.c
		if !o.keys || cap(c.keys) <= smallChunk || len(c.keys) > smallChunk || len(c.keys) == 0 {
			return
		}
		i := find(e.chunks, c.keys[0])
		if e.chunks[i] != c {
			return // no longer in the map
		}
		nc := newChunk[V](len(c.keys), len(c.keys))
		copy(nc.keys, c.keys)
		copy(nc.vals, c.vals)
		e.chunks[i] = nc
	}
	for _, o := range e.own[:e.nown] {
		shrink(o)
	}
	for _, o := range e.more {
		shrink(o)
	}
}

// mutable gives the editor a chunk list of its own.
func (e *Editor[V]) mutable() {
	if e.done {
		panic("pmap: Editor used after Done")
	}
	if e.chunks == nil {
		var from []*chunk[V]
		if e.base != nil {
			from = e.base.chunks
		}
		e.chunks = make([]*chunk[V], len(from), len(from)+1)
		copy(e.chunks, from)
	}
}

// ownVals returns chunk ci with values the editor may change, copying it
// unless the editor made it.
func (e *Editor[V]) ownVals(ci int) *chunk[V] {
	c := e.chunks[ci]
	if e.owner(c) != nil {
		return c
	}
	var nc *chunk[V]
	n := len(c.vals)
	if n <= smallChunk {
		b := &chunkValsSmall[V]{}
		b.c.vals, nc = b.vals[:n:n], &b.c
	} else {
		b := &chunkVals[V]{}
		b.c.vals, nc = b.vals[:n:n], &b.c
	}
	nc.keys = c.keys
	copy(nc.vals, c.vals)
	e.adopt(nc, false)
	e.chunks[ci] = nc
	return nc
}

// ownKeys returns chunk ci with keys and values the editor may change and
// room for extra more entries, copying it unless the editor made it so.
func (e *Editor[V]) ownKeys(ci, extra int) *chunk[V] {
	c := e.chunks[ci]
	if o := e.owner(c); o != nil && o.keys && cap(c.keys)-len(c.keys) >= extra {
		return c
	}
	nc := newChunk[V](len(c.keys), len(c.keys)+extra)
	copy(nc.keys, c.keys)
	copy(nc.vals, c.vals)
	e.replace(ci, nc)
	return nc
}

// replace puts nc, a chunk the editor made, in place of chunk ci.
func (e *Editor[V]) replace(ci int, nc *chunk[V]) {
	if o := e.owner(e.chunks[ci]); o != nil {
		*o = owned[V]{nc, true}
	} else {
		e.adopt(nc, true)
	}
	e.chunks[ci] = nc
}

// A chunk the editor makes comes with the arrays it uses in one
// allocation, in one of two sizes: room for smallChunk entries or for
// maxChunk. chunkVals and chunkValsSmall are chunks whose values alone the
// editor copied: their keys are shared with the chunk they came from.
type chunkFull[V any] struct {
	c    chunk[V]
	keys [maxChunk]string
	vals [maxChunk]V
}

type chunkSmall[V any] struct {
	c    chunk[V]
	keys [smallChunk]string
	vals [smallChunk]V
}

type chunkVals[V any] struct {
	c    chunk[V]
	vals [maxChunk]V
}

type chunkValsSmall[V any] struct {
	c    chunk[V]
	vals [smallChunk]V
}

// newChunk returns a chunk of n zero entries with room for at least room
// (at most maxChunk), in the smaller size that fits.
func newChunk[V any](n, room int) *chunk[V] {
	if room <= smallChunk {
		b := &chunkSmall[V]{}
		b.c.keys, b.c.vals = b.keys[:n], b.vals[:n]
		return &b.c
	}
	b := &chunkFull[V]{}
	b.c.keys, b.c.vals = b.keys[:n], b.vals[:n]
	return &b.c
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
