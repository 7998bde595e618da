package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Values are kept as JSON, one document per key, from the moment they are
// set: a store row stays readable (`SELECT data FROM sessions` shows plain
// JSON), other stacks such as Koa can share it, and a request pays to decode
// only the keys it reads, never the whole session.
//
// JSON null is treated as absence everywhere: Set(key, nil) deletes the key,
// and a null written by another program (JavaScript turns NaN into null)
// reads as missing.

// encodeValue turns v into its JSON form. The common scalar types take a
// fast path that gives the same bytes as encoding/json without reflection.
func encodeValue(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		if plainString(x) {
			b := make([]byte, 0, len(x)+2)
			b = append(b, '"')
			b = append(b, x...)
			return append(b, '"'), nil
		}
	case int:
		return strconv.AppendInt(nil, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(nil, x, 10), nil
	case int32:
		return strconv.AppendInt(nil, int64(x), 10), nil
	case uint:
		return strconv.AppendUint(nil, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(nil, x, 10), nil
	case bool:
		if x {
			return json.RawMessage("true"), nil
		}
		return json.RawMessage("false"), nil
	case json.RawMessage:
		if !json.Valid(x) {
			return nil, fmt.Errorf("invalid json.RawMessage")
		}
		if string(x) == "null" {
			return nil, nil
		}
		return slices.Clone(x), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}

// plainString reports whether s encodes to JSON as itself between quotes:
// printable ASCII that encoding/json would not escape.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// decodeAny decodes raw the way encoding/json decodes into an interface{}.
func decodeAny(raw json.RawMessage) any {
	if isNull(raw) {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return v
}

// decodeString returns raw as a string if it is a JSON string.
func decodeString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// decodeInt returns raw as an int64 if it is a JSON number with an integral
// value in range: 3, -3, 3.0 and 3e2 all qualify, 3.5 does not.
func decodeInt(raw json.RawMessage) (int64, bool) {
	if n, ok := parseDigits(raw); ok {
		return n, true
	}
	f, ok := decodeFloat(raw)
	if !ok || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// parseDigits parses an optional minus sign followed by at most 19 digits
// that fit an int64, without allocating: the form almost every stored
// integer has, and the only exact one past float64's 2^53.
func parseDigits(raw []byte) (int64, bool) {
	neg := len(raw) > 0 && raw[0] == '-'
	if neg {
		raw = raw[1:]
	}
	if len(raw) == 0 || len(raw) > 19 {
		return 0, false
	}
	var n uint64 // 19 digits always fit
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return int64(-n), true // -(1<<63) wraps to itself: MinInt64
	case !neg && n < 1<<63:
		return int64(n), true
	}
	return 0, false
}

// decodeFloat returns raw as a float64 if it is a JSON number.
func decodeFloat(raw json.RawMessage) (float64, bool) {
	if n, ok := parseDigits(raw); ok {
		return float64(n), true
	}
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return f, true
}

// decodeBool returns raw as a bool if it is a JSON boolean.
func decodeBool(raw json.RawMessage) (value, ok bool) {
	switch string(raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// decodeTime returns raw as a time if it is a JSON string in the form
// encoding/json gives a time.Time (RFC 3339).
func decodeTime(raw json.RawMessage) (time.Time, bool) {
	s, ok := decodeString(raw)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// encodeObject writes values as one JSON object with sorted keys, each value
// copied as it is stored. Empty values are left out.
func encodeObject(values map[string]json.RawMessage) []byte {
	keys := make([]string, 0, len(values))
	size := 2
	for k, v := range values {
		if len(v) == 0 {
			continue
		}
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		if plainString(k) {
			b = append(b, '"')
			b = append(b, k...)
			b = append(b, '"')
		} else {
			q, _ := json.Marshal(k) // a string always marshals
			b = append(b, q...)
		}
		b = append(b, ':')
		b = append(b, values[k]...)
	}
	return append(b, '}')
}

// decodeObject parses a stored JSON object into its values, leaving each
// value undecoded. Null values are kept, as stored; the session reads them
// as missing.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	var values map[string]json.RawMessage
	if err := json.Unmarshal(data, &values); err != nil {
		return nil, fmt.Errorf("stored data is not a JSON object: %w", err)
	}
	if values == nil {
		values = map[string]json.RawMessage{}
	}
	return values, nil
}

// objectSize returns len(encodeObject(values)) without building it: the
// exact number of bytes a store keeps for values.
func objectSize(values map[string]json.RawMessage) int {
	size, n := 2, 0
	for k, v := range values {
		if len(v) == 0 {
			continue
		}
		if n > 0 {
			size++ // the comma
		}
		n++
		if plainString(k) {
			size += len(k) + 2
		} else {
			q, _ := json.Marshal(k) // a string always marshals
			size += len(q)
		}
		size += 1 + len(v)
	}
	return size
}
