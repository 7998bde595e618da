package session

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/seed013449c2/session/internal/jsonobj"
)

// A session's values: reading them (decoded only when read, see codec.go)
// and recording this request's changes, which the commit merges into the
// stored record key by key.

// raw returns the current JSON of key. The caller holds s.mu.
func (s *Session) raw(key string) json.RawMessage {
	if v, ok := s.ch.Values[key]; ok {
		return v // nil when deleted
	}
	var v json.RawMessage
	if !s.ch.Clear && s.base != nil {
		v = s.base.value(key)
	}
	if d, ok := s.ch.Add[key]; ok {
		if sum, err := addInt(v, d); err == nil {
			return sum
		}
	}
	return v
}

func (s *Session) rawLocked(key string) json.RawMessage {
	s.lock()
	defer s.mu.Unlock()
	return s.raw(key)
}

// Get returns the value of key decoded as encoding/json decodes into an
// interface{} (numbers are float64, objects map[string]any), or nil when
// key is missing. Within one request and across requests Get gives the same
// answer, since values are stored as JSON when set. Use the typed getters
// or Decode for exact types.
func (s *Session) Get(key string) any {
	return decodeAny(s.rawLocked(key))
}

// Has reports whether key has a (non-null) value.
func (s *Session) Has(key string) bool {
	return !isNull(s.rawLocked(key))
}

// GetString returns the string value of key, or "" when it is missing or
// not a string.
func (s *Session) GetString(key string) string {
	v, _ := decodeString(s.rawLocked(key))
	return v
}

// GetInt returns the integer value of key, or 0 when it is missing or not an
// integral number. Numbers written by other programs as 3.0 or 3e0 count.
func (s *Session) GetInt(key string) int {
	v, _ := decodeInt(s.rawLocked(key))
	return int(v)
}

// GetInt64 is GetInt for int64.
func (s *Session) GetInt64(key string) int64 {
	v, _ := decodeInt(s.rawLocked(key))
	return v
}

// GetFloat64 returns the numeric value of key, or 0.
func (s *Session) GetFloat64(key string) float64 {
	v, _ := decodeFloat(s.rawLocked(key))
	return v
}

// GetBool returns the boolean value of key, or false.
func (s *Session) GetBool(key string) bool {
	v, _ := decodeBool(s.rawLocked(key))
	return v
}

// GetTime returns the time.Time value of key (stored as RFC 3339 text, as
// encoding/json writes it), or the zero time.
func (s *Session) GetTime(key string) time.Time {
	v, _ := decodeTime(s.rawLocked(key))
	return v
}

// Decode unmarshals the value of key into dst, which must be a pointer, as
// encoding/json does. It returns an error wrapping ErrNotFound when key is
// missing.
func (s *Session) Decode(key string, dst any) error {
	raw := s.rawLocked(key)
	if isNull(raw) {
		return fmt.Errorf("session: decode %q: %w", key, ErrNotFound)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("session: decode %q: %w", key, err)
	}
	return nil
}

// Set stores value under key. The value is encoded as JSON at once, so
// later changes to it do not reach the session. Setting nil deletes the
// key.
//
// A value that cannot be stored is refused here, where the handler can
// react, with an error wrapping ErrInvalidValue: one JSON cannot encode (a
// channel, a func, NaN, a cycle), or one nested more than 100 arrays or
// objects deep, which could not be read back. The key keeps its value, the
// request's other changes are saved as usual, and the refusal is logged
// too, so that an ignored error still leaves a trace. After the request's
// last commit (a goroutine that outlived its handler, a handler that
// http.TimeoutHandler gave up on) Set changes nothing and returns an error
// wrapping ErrSessionClosed, which is logged as well.
func (s *Session) Set(key string, value any) error {
	raw, err := encodeValue(value)
	if err == nil && jsonDepth(raw) > maxValueDepth {
		err = fmt.Errorf("nested more than %d levels deep", maxValueDepth)
	}
	s.lock()
	defer s.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("session: set %q: %w: %w", key, ErrInvalidValue, err)
		s.m.log.WarnContext(s.ctx, "session value refused", "key", key, "err", err)
		return err
	}
	if err := s.closedLocked("Set"); err != nil {
		return err
	}
	s.put(key, raw)
	return nil
}

// maxValueDepth is how deeply a value may nest arrays and objects: the
// stored session nests one level more, and every decoder that reads it back
// (encoding/json stops at 10,000) must accept it.
const maxValueDepth = 100

// closedLocked reports, and logs, a change attempted after the request's
// last commit, which nothing would save. The caller holds s.mu.
func (s *Session) closedLocked(op string) error {
	if !s.closed {
		return nil
	}
	when := "the request's last commit"
	if s.detached {
		when = "Commit"
	}
	err := fmt.Errorf("session: %s after %s: %w", op, when, ErrSessionClosed)
	s.m.log.ErrorContext(s.ctx, "session change lost", "err", err, "session", logID(s.key))
	return err
}

// put records a change. The caller holds s.mu.
func (s *Session) put(key string, raw json.RawMessage) {
	if s.ch.Values == nil {
		s.ch.Values = s.m.valuesMap()
	}
	s.ch.Values[key] = raw
	s.entries++
	delete(s.ch.Add, key)
}

// Add adds delta to the integer value of key (a missing value counts as
// 0) and returns the sum as this request sees it. The store applies the
// addition to the freshest stored value when the request commits, so
// concurrent requests that add to one counter all count, with no lock and
// at the cost of a plain write: the stored sum may be larger than the one
// returned here. Add fails with an error wrapping ErrNotInteger, and
// changes nothing, when the value is not an integer, or when the sum, or
// the total this request adds to the stored value, leaves the int64
// range; a value set to something else by a concurrent request fails the
// commit the same way.
func (s *Session) Add(key string, delta int64) (int64, error) {
	s.lock()
	defer s.mu.Unlock()
	if err := s.closedLocked("Add"); err != nil {
		return 0, err
	}
	cur := s.raw(key)
	sum, err := addInt(cur, delta)
	if err != nil {
		return 0, fmt.Errorf("session: add to %q: %w", key, err)
	}
	n, _ := decodeInt(sum)
	if _, set := s.ch.Values[key]; set || s.ch.Clear || s.base == nil {
		// The request decides this value outright: nothing to add to.
		s.put(key, sum)
		return n, nil
	}
	total := delta
	if d, ok := s.ch.Add[key]; ok {
		raw, err := addInt(strconv.AppendInt(nil, d, 10), delta)
		if err != nil {
			return 0, fmt.Errorf("session: add to %q: %w", key, err)
		}
		total, _ = decodeInt(raw)
	}
	if s.ch.Add == nil {
		s.ch.Add = s.m.addsMap()
	}
	s.ch.Add[key] = total
	s.entries++
	return n, nil
}

// Delete removes key.
func (s *Session) Delete(key string) {
	s.lock()
	defer s.mu.Unlock()
	if s.closedLocked("Delete") != nil {
		return
	}
	s.put(key, nil)
}

// Pop returns the value of key, as Get does, and deletes it: a read-once
// flash message.
func (s *Session) Pop(key string) any {
	s.lock()
	defer s.mu.Unlock()
	raw := s.raw(key)
	if isNull(raw) || s.closedLocked("Pop") != nil {
		return nil
	}
	s.put(key, nil)
	return decodeAny(raw)
}

// Clear removes every key. The session itself lives on (with no values it
// is deleted from the store and its cookie expired when the request ends);
// use Destroy to end it.
func (s *Session) Clear() {
	s.lock()
	defer s.mu.Unlock()
	if s.closedLocked("Clear") != nil {
		return
	}
	s.ch.Clear, s.ch.Values, s.ch.Add, s.entries = true, nil, nil, 0
}

// values returns the current values as one map. The caller holds s.mu.
func (s *Session) values() map[string]json.RawMessage {
	base := s.base
	if base == nil {
		base = &Record{}
	}
	ch := &Change{Clear: s.ch.Clear, Values: s.ch.Values, Add: s.ch.Add}
	rec, err := ch.Apply(base)
	if err != nil {
		// Add checked every sum against this base already.
		ch.Add = nil
		rec, _ = ch.Apply(base)
	}
	return rec.flat().Values
}

// Keys returns the keys that have values, sorted.
func (s *Session) Keys() []string {
	s.lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.values()))
}

// Len returns the number of keys that have values.
func (s *Session) Len() int {
	s.lock()
	defer s.mu.Unlock()
	if s.base == nil && len(s.ch.Values) == 0 && len(s.ch.Add) == 0 {
		return 0
	}
	return len(s.values())
}

// MarshalJSON returns the session's values as one JSON object with sorted
// keys, so a handler can answer with the session itself.
func (s *Session) MarshalJSON() ([]byte, error) {
	s.lock()
	defer s.mu.Unlock()
	return jsonobj.Encode(s.values()), nil
}

// jsonDepth returns how deeply raw, valid JSON, nests arrays and objects.
func jsonDepth(raw []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case inString && c == '\\':
			i++ // the escaped character
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// mapPool keeps the small maps of changes the memory store has applied,
// for the next requests' changes: the memory store, which lets go of a
// change when Update returns and keeps none of its maps, is the one store
// whose every write would otherwise allocate them anew.
type mapPool[V any] struct{ p sync.Pool }

// recycledMapLen is the most entries the maps of a change may have been
// given to be kept: maps given more may have grown past the runtime's
// smallest table, and deleting entries does not shrink it.
const recycledMapLen = 8

func (mp *mapPool[V]) get() map[string]V {
	if m, ok := mp.p.Get().(map[string]V); ok {
		return m
	}
	return make(map[string]V, recycledMapLen)
}

func (mp *mapPool[V]) put(m map[string]V) {
	if m != nil {
		clear(m)
		mp.p.Put(m)
	}
}

// valuesMap and addsMap return empty maps for a change, recycled ones when
// the Manager has them.
func (m *Manager) valuesMap() map[string]json.RawMessage {
	if m == nil || !m.pooled { // m is nil in a Session a test built by hand
		return make(map[string]json.RawMessage, recycledMapLen)
	}
	return m.valueMaps.get()
}

func (m *Manager) addsMap() map[string]int64 {
	if m == nil || !m.pooled {
		return make(map[string]int64, recycledMapLen)
	}
	return m.addMaps.get()
}

// recycle gives the maps of s's change back, once the memory store has
// applied it and nothing else refers to them, unless they were given more
// than recycledMapLen entries. The caller holds s.mu and cleans s.
func (s *Session) recycle() {
	if s.entries <= recycledMapLen {
		s.m.valueMaps.put(s.ch.Values)
		s.m.addMaps.put(s.ch.Add)
	}
}
