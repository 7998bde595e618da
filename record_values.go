package session

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"

	"github.com/seed013449c2/session/internal/jsonobj"
	"github.com/seed013449c2/session/internal/pmap"
)

// A record's values come in two forms. Stores build records with a Values
// map. The memory store keeps a session that Update changes in a
// persistent map (Record.tree) instead, so that a change of one key of a
// session of hundreds copies a chunk of it rather than all of it, and
// every record it handed out stays as it was; the middleware reads such
// records through value and numValues, and the Store methods hand out
// flat copies. Change.Apply keeps the form it is given.

// valueSizes describes a record's values.
type valueSizes struct {
	// of is the Values map they describe (its address), or 0.
	of uintptr
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
}

// mapID identifies a map for valueSizes.of.
func mapID(m map[string]json.RawMessage) uintptr {
	if m == nil {
		return 0
	}
	return reflect.ValueOf(m).Pointer()
}

// knownSizes returns rec's value sizes, if Apply made rec and its values
// are unchanged: then they also hold no null.
func (rec *Record) knownSizes() (valueSizes, bool) {
	sz := rec.sizes
	if rec.tree != nil {
		return sz, sz.tree == rec.tree && sz.n == rec.tree.Len()
	}
	return sz, sz.of != 0 && sz.of == mapID(rec.Values) && sz.n == len(rec.Values)
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
	c.Values, c.tree = rec.tree.ToMap(), nil
	c.sizes.tree = nil
	if _, ok := rec.knownSizes(); ok {
		c.sizes.of = mapID(c.Values)
	} else {
		c.sizes = valueSizes{}
	}
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
	sz.of, sz.tree, sz.n = 0, c.tree, c.tree.Len()
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

// putTree returns t with k set to v (v null: deleted), keeping sz up to
// date.
func (sz *valueSizes) putTree(t *pmap.Map[json.RawMessage], k string, v json.RawMessage) *pmap.Map[json.RawMessage] {
	if old, had := t.Get(k); had {
		sz.drop(k, old)
	}
	if isNull(v) {
		return t.Delete(k)
	}
	sz.add(k, v)
	return t.Set(k, v)
}

func (sz *valueSizes) add(k string, v json.RawMessage) {
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
		return valueSizes{}
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
	sz.of, sz.n = mapID(next.Values), len(next.Values)
	return nil
}

// applyTree applies c's values and counters to next.tree, which holds no
// null, giving next a tree of its own.
func (c *Change) applyTree(next *Record, sz *valueSizes) error {
	t := next.tree
	var known bool
	*sz, known = next.knownSizes()
	switch {
	case c.Clear:
		t, *sz = nil, valueSizes{}
	case !known:
		*sz = valueSizes{}
		for k, v := range t.All() {
			sz.add(k, v)
		}
	}
	for k, v := range c.Values {
		t = sz.putTree(t, k, v)
	}
	for k, d := range c.Add {
		old, _ := t.Get(k)
		sum, err := addInt(old, d)
		if err != nil {
			return fmt.Errorf("session: add to %q: %w", k, err)
		}
		t = sz.putTree(t, k, sum)
	}
	next.tree, next.Values = t, nil
	sz.of, sz.tree, sz.n = 0, t, t.Len()
	return nil
}
