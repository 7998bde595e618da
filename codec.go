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

	"github.com/seed013449c2/session/internal/jsonobj"
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
		if jsonobj.PlainString(x) {
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
