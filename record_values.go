package session

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"unicode/utf8"

	"github.com/seed013449c2/session/internal/jsonobj"
	"github.com/seed013449c2/session/internal/pmap"
	"github.com/seed013449c2/session/internal/sqltable"
)

// A record's values come in two forms. Stores build records with a Values
// map. The memory store keeps a session that Update changes in a
// persistent map (Record.tree) instead, so that a change of one key of a
// session of hundreds copies a chunk of it rather than all of it, and
// every record it handed out stays as it was; the middleware reads such
// records through value and numValues, and the Store methods hand out
// flat copies. Change.Apply keeps the form it is given.

// loadRecord, updateRecord and renameRecord call st's Load, Update and
// Rename, or, when st is this package's memory or MySQL store itself, the
// methods that hand the middleware records whose values stay in a tree
// (which Load, Update and Rename copy into flat ones for everyone else).
// The type must match exactly: a store that embeds one of them to wrap
// its methods must have them called.
func loadRecord(ctx context.Context, st Store, key string) (*Record, error) {
	switch s := st.(type) {
	case *MemoryStore:
		return s.loadTree(ctx, key)
	case *MySQLStore:
		return s.loadTree(ctx, key)
	}
	return st.Load(ctx, key)
}

func updateRecord(ctx context.Context, st Store, key string, ch *Change) (*Record, error) {
	switch s := st.(type) {
	case *MemoryStore:
		return s.updateTree(ctx, key, ch)
	case *MySQLStore:
		return s.updateTree(ctx, key, ch)
	}
	return st.Update(ctx, key, ch)
}

func renameRecord(ctx context.Context, rn Renamer, oldKey, newKey string, ch *Change) (*Record, error) {
	switch s := rn.(type) {
	case *MemoryStore:
		return s.renameTree(ctx, oldKey, newKey, ch)
	case *MySQLStore:
		return s.renameTree(ctx, oldKey, newKey, ch)
	}
	return rn.Rename(ctx, oldKey, newKey, ch)
}

// valueSizes describes a record's values.
type valueSizes struct {
	// of is the Values map they describe, or nil; kept, not only its
	// address, so that no other map can come to have that address.
	of map[string]json.RawMessage
	// tree is the persistent map they describe, or nil.
	tree *pmap.Map[json.RawMessage]
	// n is the number of values then: a second guard against a map
	// changed in place.
	n int
	// json is the sum of jsonobj.EntrySize over the values.
	json int
	// raw is the sum of len(key) + len(value), what the memory store
	// counts.
	raw int
	// valid: every key is valid UTF-8 and every value valid UTF-8 JSON,
	// what the SQL stores require (sqltable.CheckValues). Only a record
	// read from such a store starts out valid; Apply checks what it adds
	// to one, so that a store checks the values a change set, not all of
	// them again.
	valid bool
}

// validEntry reports whether k and v are what a valid record holds: a
// value the SQL stores accept (sqltable.CheckValue), and not empty.
func validEntry(k string, v json.RawMessage) bool {
	return len(v) > 0 && sqltable.CheckValue(k, v) == nil
}

// sameMap reports whether a and b are one map (not merely equal ones).
func sameMap(a, b map[string]json.RawMessage) bool {
	return a != nil && b != nil && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// knownSizes returns rec's value sizes, if Apply made rec and its values
// are unchanged: then they also hold no null.
func (rec *Record) knownSizes() (valueSizes, bool) {
	sz := rec.sizes
	if rec.tree != nil {
		return sz, sz.tree == rec.tree && sz.n == rec.tree.Len()
	}
	return sz, sameMap(sz.of, rec.Values) && sz.n == len(rec.Values)
}

// value returns the stored JSON of key, nil when missing.
func (rec *Record) value(key string) json.RawMessage {
	if rec.tree != nil {
		v, _ := rec.tree.Get(key)
		return v
	}
	return rec.Values[key]
}

// numValues is how many values rec holds, nulls another program stored
// in Values included.
func (rec *Record) numValues() int {
	if rec.tree != nil {
		return rec.tree.Len()
	}
	return len(rec.Values)
}

// flat returns rec with its values in Values: rec itself, or a copy when
// a tree holds them.
func (rec *Record) flat() *Record {
	if rec == nil || rec.tree == nil {
		return rec
	}
	c := *rec
	// The copy's map is its holder's to change: nothing is known of it.
	c.Values, c.tree, c.sizes = rec.tree.ToMap(), nil, valueSizes{}
	return &c
}

// asTree returns rec with its values in a tree, nulls dropped: rec itself
// when they already are.
func (rec *Record) asTree() *Record {
	if rec.tree != nil || len(rec.Values) == 0 {
		return rec
	}
	c := *rec
	sz, known := rec.knownSizes()
	m := rec.Values
	if !known {
		m = make(map[string]json.RawMessage, len(rec.Values))
		sz = valueSizes{}
		for k, v := range rec.Values {
			if !isNull(v) {
				sz.put(m, k, v)
			}
		}
	}
	c.Values, c.tree = nil, pmap.Of(m)
	sz.of, sz.tree, sz.n = nil, c.tree, c.tree.Len()
	c.sizes = sz
	return &c
}

// put sets k to v in m (v null: deletes k), keeping sz up to date.
func (sz *valueSizes) put(m map[string]json.RawMessage, k string, v json.RawMessage) {
	if old, had := m[k]; had {
		sz.drop(k, old)
	}
	if isNull(v) {
		delete(m, k)
		return
	}
	m[k] = v
	sz.add(k, v)
}

// putTree sets k to v in t (v null: deletes k), keeping sz up to date.
func (sz *valueSizes) putTree(t *pmap.Editor[json.RawMessage], k string, v json.RawMessage) {
	var old json.RawMessage
	var had bool
	if isNull(v) {
		old, had = t.Remove(k)
	} else {
		old, had = t.Swap(k, v)
		sz.add(k, v)
	}
	if had {
		sz.drop(k, old)
	}
}

func (sz *valueSizes) add(k string, v json.RawMessage) {
	if sz.valid {
		sz.valid = validEntry(k, v)
	}
	sz.json += jsonobj.EntrySize(k, v)
	sz.raw += len(k) + len(v)
}

func (sz *valueSizes) drop(k string, v json.RawMessage) {
	sz.json -= jsonobj.EntrySize(k, v)
	sz.raw -= len(k) + len(v)
}

// Apply returns a new record: rec with the change applied. rec itself is
// not modified, and the new record shares no map with it. Version is
// copied; the store sets its own.
func (c *Change) Apply(rec *Record) (*Record, error) {
	next := *rec
	var sz valueSizes
	if rec.tree != nil {
		if err := c.applyTree(&next, &sz); err != nil {
			return nil, err
		}
	} else {
		sz = next.ownValues(c.Clear, len(c.Values)+len(c.Add))
		if err := c.applyMap(&next, &sz); err != nil {
			return nil, err
		}
	}
	next.sizes = sz
	if c.Owner != nil {
		next.Owner = *c.Owner
	}
	if c.Label != nil {
		next.Label = *c.Label
	}
	if c.Lifetime != nil {
		c.Lifetime.setIn(&next)
	}
	if !c.Expires.IsZero() {
		next.Expires = c.Expires
	}
	if c.MaxSize > 0 {
		if size := jsonobj.ObjectSize(sz.json); size > c.MaxSize {
			return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, c.MaxSize)
		}
	}
	return &next, nil
}

// ownValues gives rec a Values map of its own, ready for a change to
// modify: empty when clear, else a copy of the one it had, with room for
// extra more keys; it returns the copy's sizes.
func (rec *Record) ownValues(clear bool, extra int) valueSizes {
	sz, known := rec.knownSizes()
	from := rec.Values
	switch {
	case clear || len(from) == 0:
		rec.Values = make(map[string]json.RawMessage, extra)
		return valueSizes{valid: known && sz.valid}
	case known:
		// No null to drop: the copy is the runtime's, table by table.
		rec.Values = maps.Clone(from)
		return sz
	}
	rec.Values = make(map[string]json.RawMessage, len(from)+extra)
	sz = valueSizes{}
	for k, v := range from {
		if !isNull(v) { // null, as another program may store it, is absence
			sz.put(rec.Values, k, v)
		}
	}
	return sz
}

// applyMap applies c's values and counters to next.Values, next's own
// map, described by sz.
func (c *Change) applyMap(next *Record, sz *valueSizes) error {
	for k, v := range c.Values {
		sz.put(next.Values, k, v)
	}
	for k, d := range c.Add {
		sum, err := addInt(next.Values[k], d)
		if err != nil {
			return fmt.Errorf("session: add to %q: %w", k, err)
		}
		sz.put(next.Values, k, sum)
	}
	sz.of, sz.n = next.Values, len(next.Values)
	return nil
}

// applyTree applies c's values and counters to next.tree, which holds no
// null, giving next a tree of its own.
func (c *Change) applyTree(next *Record, sz *valueSizes) error {
	var known bool
	*sz, known = next.knownSizes()
	var t pmap.Editor[json.RawMessage] // the empty map, for Clear
	switch {
	case c.Clear:
		*sz = valueSizes{valid: known && sz.valid}
	case !known:
		*sz = valueSizes{}
		for k, v := range next.tree.All() {
			sz.add(k, v)
		}
		fallthrough
	default:
		t = next.tree.Edit()
	}
	for k, v := range c.Values {
		sz.putTree(&t, k, v)
	}
	for k, d := range c.Add {
		old, _ := t.Get(k)
		sum, err := addInt(old, d)
		if err != nil {
			return fmt.Errorf("session: add to %q: %w", k, err)
		}
		sz.putTree(&t, k, sum)
	}
	next.tree, next.Values = t.Done(), nil
	sz.of, sz.tree, sz.n = nil, next.tree, next.tree.Len()
	return nil
}

// treeFromJSON reads a stored JSON object (a SQL store's data column) into
// a tree, nulls dropped, with its sizes, and valid when the document is
// valid UTF-8 (Sorted and Decode check that it is valid JSON). A document
// in Encode's form (keys sorted) is read without a map.
func treeFromJSON(data []byte) (*pmap.Map[json.RawMessage], valueSizes, error) {
	sz := valueSizes{valid: utf8.Valid(data)}
	keys, vals, ok := jsonobj.Sorted(data)
	if !ok {
		m, err := jsonobj.Decode(data)
		if err != nil {
			return nil, valueSizes{}, err
		}
		keys, vals = keys[:0], vals[:0]
		for _, k := range slices.Sorted(maps.Keys(m)) {
			keys, vals = append(keys, k), append(vals, m[k])
		}
	}
	n := 0
	for i, k := range keys {
		if v := vals[i]; !isNull(v) {
			keys[n], vals[n] = k, v
			n++
			sz.json += jsonobj.EntrySize(k, v)
			sz.raw += len(k) + len(v)
		}
	}
	t := pmap.FromSorted(keys[:n:n], vals[:n:n])
	sz.tree, sz.n = t, t.Len()
	return t, sz, nil
}

// encodeValues is the JSON object of rec's values, keys sorted.
func encodeValues(rec *Record) string {
	if rec.tree == nil {
		return string(jsonobj.Encode(rec.Values))
	}
	size := 0
	if sz, ok := rec.knownSizes(); ok {
		size = jsonobj.ObjectSize(sz.json)
	}
	return jsonobj.EncodeSorted(size, rec.tree.All())
}

// checkedValues reports whether rec's values are known to be valid (see
// valueSizes.valid), so that a store need not check them again: only a
// tree's, which nobody outside the package can reach or change.
func (rec *Record) checkedValues() bool {
	sz, ok := rec.knownSizes()
	return ok && rec.tree != nil && sz.valid
}
