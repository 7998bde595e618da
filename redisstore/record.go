package redisstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/jsonobj"
)

// valuePrefix starts the hash field of every value; the metadata fields
// (see scripts.go) never start with it, so no key can collide with them.
const valuePrefix = "v:"

// Metadata fields of a record's hash.
const (
	fieldCreated  = "created"
	fieldExpires  = "expires"
	fieldDeadline = "deadline"
	fieldOwner    = "owner"
	fieldIndexed  = "indexed"
	fieldVersion  = "version"
	fieldSize     = "size"
	fieldNulls    = "nulls"
	fieldIdle     = "idle"    // Record.IdleTimeout in nanoseconds, absent when 0
	fieldPersist  = "persist" // Record.Persist, absent when 0
	fieldLabel    = "label"   // absent when ""
	fieldHandle   = "handle"  // absent when ""
)

// micros is how a time is stored: microseconds since 1970, the precision
// the store keeps.
func micros(t time.Time) string {
	return strconv.FormatInt(t.UnixMicro(), 10)
}

// expireAt is the PEXPIREAT argument for a record that stops being live at
// t: the millisecond at or after t, so that Redis never drops a live
// record (reads compare microseconds themselves), and at least 1, a time
// in the past, for a record that is already over.
func expireAt(t time.Time) string {
	ms := (t.UnixMicro() + 999) / 1000
	if t.UnixMicro() < 0 {
		ms = t.UnixMicro() / 1000
	}
	return strconv.FormatInt(max(ms, 1), 10)
}

// endScore is what the owner index needs of a record: the latest time at
// which it can still be live, in microseconds.
func endScore(rec *session.Record) int64 {
	end := rec.Expires.UnixMicro()
	if !rec.Deadline.IsZero() {
		end = max(end, rec.Deadline.UnixMicro())
	}
	return end
}

// weight is what the value under key adds to the values encoded as one
// JSON object besides the value's own bytes: the key quoted as
// encoding/json quotes it, a colon and a comma (jsonobj.EntrySize of an
// empty value), exactly as the session package measures it for
// Change.MaxSize.
func weight(key string) int {
	return jsonobj.EntrySize(key, nil)
}

// isNull reports whether raw is absent or JSON null: no value, as the
// session package treats it.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// recordFields returns the hash fields that store rec, with its version
// and the score under which the owner index lists it.
func recordFields(rec *session.Record, version int64, indexed int64) []any {
	f := make([]any, 0, 2*len(rec.Values)+14)
	size, nulls := 0, 0
	for k, v := range rec.Values {
		switch {
		case len(v) == 0:
			continue
		case isNull(v):
			// Kept as given, and counted for nothing: null is absence.
			nulls++
		default:
			size += weight(k) + len(v)
		}
		f = append(f, valuePrefix+k, []byte(v))
	}
	if nulls > 0 {
		f = append(f, fieldNulls, strconv.Itoa(nulls))
	}
	f = append(f,
		fieldExpires, micros(rec.Expires),
		fieldVersion, strconv.FormatInt(version, 10),
		fieldSize, strconv.Itoa(size))
	if !rec.Created.IsZero() {
		f = append(f, fieldCreated, micros(rec.Created))
	}
	if !rec.Deadline.IsZero() {
		f = append(f, fieldDeadline, micros(rec.Deadline))
	}
	if rec.Owner != "" {
		f = append(f, fieldOwner, rec.Owner, fieldIndexed, strconv.FormatInt(indexed, 10))
	}
	if rec.IdleTimeout != 0 {
		f = append(f, fieldIdle, strconv.FormatInt(int64(rec.IdleTimeout), 10))
	}
	if rec.Persist != 0 {
		f = append(f, fieldPersist, strconv.Itoa(int(rec.Persist)))
	}
	if rec.Label != "" {
		f = append(f, fieldLabel, rec.Label)
	}
	if rec.Handle != "" {
		f = append(f, fieldHandle, rec.Handle)
	}
	return f
}

// decodeRecord builds a record from a hash's fields, given as a map (from
// HGETALL) or as a flat list of names and values (from a script).
func decodeRecord(fields map[string]string) (*session.Record, error) {
	rec := &session.Record{Values: make(map[string]json.RawMessage, len(fields))}
	for k, v := range fields {
		if err := setField(rec, k, v); err != nil {
			return nil, err
		}
	}
	return checkDecoded(rec, fields[fieldExpires] != "")
}

func decodeFlat(flat []any) (*session.Record, error) {
	rec := &session.Record{Values: make(map[string]json.RawMessage, len(flat)/2)}
	hasExpires := false
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		hasExpires = hasExpires || k == fieldExpires
		if err := setField(rec, k, v); err != nil {
			return nil, err
		}
	}
	return checkDecoded(rec, hasExpires)
}

func checkDecoded(rec *session.Record, hasExpires bool) (*session.Record, error) {
	if !hasExpires {
		return nil, fmt.Errorf("redisstore: %w: no expiry", session.ErrCorrupt)
	}
	return rec, nil
}

// setField sets the part of rec that the hash field k holds.
func setField(rec *session.Record, k, v string) error {
	if key, ok := strings.CutPrefix(k, valuePrefix); ok {
		rec.Values[key] = json.RawMessage(v)
		return nil
	}
	switch k {
	case fieldCreated, fieldExpires, fieldDeadline:
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("redisstore: %w: field %s = %.30q", session.ErrCorrupt, k, v)
		}
		t := time.UnixMicro(us).UTC()
		switch k {
		case fieldCreated:
			rec.Created = t
		case fieldExpires:
			rec.Expires = t
		default:
			rec.Deadline = t
		}
	case fieldOwner:
		rec.Owner = v
	case fieldLabel:
		rec.Label = v
	case fieldHandle:
		rec.Handle = v
	case fieldIdle, fieldPersist:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || (k == fieldPersist && (n < 0 || n > 255)) {
			return fmt.Errorf("redisstore: %w: field %s = %.30q", session.ErrCorrupt, k, v)
		}
		if k == fieldIdle {
			rec.IdleTimeout = time.Duration(n)
		} else {
			rec.Persist = session.CookiePersistence(n)
		}
	case fieldVersion:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("redisstore: %w: field %s = %.30q", session.ErrCorrupt, k, v)
		}
		rec.Version = n
	}
	return nil
}
