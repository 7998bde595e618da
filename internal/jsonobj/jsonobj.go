// Package jsonobj writes and reads a session's values as one JSON object,
// the form the SQL stores keep in their data column: keys sorted, each value
// copied as it is stored, so a row reads like the session it holds.
package jsonobj

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Encode writes values as one JSON object with sorted keys, each value
// copied as it is stored. Empty values are left out.
func Encode(values map[string]json.RawMessage) []byte {
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
		b = appendKey(b, k)
		b = append(b, ':')
		b = append(b, values[k]...)
	}
	return append(b, '}')
}

// EncodeSorted is Encode for values that come in ascending key order, as
// from a sorted map (nothing to sort), as a string built in place. size is
// their Size, or 0.
func EncodeSorted(size int, values func(yield func(string, json.RawMessage) bool)) string {
	var b strings.Builder
	b.Grow(max(size, 2))
	b.WriteByte('{')
	first := true
	for k, v := range values {
		if len(v) == 0 {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		if PlainString(k) {
			b.WriteByte('"')
			b.WriteString(k)
			b.WriteByte('"')
		} else {
			q, _ := json.Marshal(k) // a string always marshals
			b.Write(q)
		}
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.String()
}

func appendKey(b []byte, k string) []byte {
	if PlainString(k) {
		b = append(b, '"')
		b = append(b, k...)
		return append(b, '"')
	}
	q, _ := json.Marshal(k) // a string always marshals
	return append(b, q...)
}

// Decode parses a stored JSON object into its values, leaving each value
// undecoded. Null values are kept, as stored; a session reads them as
// missing. The values share data's memory.
//
// It gives exactly what encoding/json gives for a map[string]
// json.RawMessage (TestDecodeMatchesEncodingJSON, FuzzDecode), faster: the
// document is checked with json.Valid, then split at its top-level
// members without reflection or copies; a key with an escape or a
// non-ASCII byte, and anything but an object, takes encoding/json's path.
func Decode(data []byte) (map[string]json.RawMessage, error) {
	if values, ok := split(data); ok {
		return values, nil
	}
	return decodeSlow(data)
}

func decodeSlow(data []byte) (map[string]json.RawMessage, error) {
	var values map[string]json.RawMessage
	if err := json.Unmarshal(data, &values); err != nil {
		return nil, fmt.Errorf("stored data is not a JSON object: %w", err)
	}
	if values == nil {
		values = map[string]json.RawMessage{}
	}
	return values, nil
}

// Size returns len(Encode(values)) without building it: the exact number
// of bytes a store keeps for values.
func Size(values map[string]json.RawMessage) int {
	sum := 0
	for k, v := range values {
		if len(v) > 0 {
			sum += EntrySize(k, v)
		}
	}
	return ObjectSize(sum)
}

// EntrySize is what one key and its value add to an encoded object: the
// quoted key, the colon, the value and the comma that separates it from
// the next (ObjectSize takes the last one back).
func EntrySize(k string, v json.RawMessage) int {
	n := len(k) + 2
	if !PlainString(k) {
		q, _ := json.Marshal(k) // a string always marshals
		n = len(q)
	}
	return n + 1 + len(v) + 1
}

// ObjectSize is the size of an encoded object whose entries' EntrySize
// add up to sum.
func ObjectSize(sum int) int {
	if sum == 0 {
		return 2 // {}
	}
	return sum + 1 // the braces, less the last entry's comma
}

// PlainString reports whether s encodes to JSON as itself between quotes:
// printable ASCII that encoding/json would not escape.
func PlainString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// Sorted splits a stored JSON object as Decode does, into its keys and
// values in the order they are stored, provided that is strictly
// ascending key order, as Encode writes it; ok is false otherwise (keys out
// of order or repeated, escapes, non-ASCII keys, not an object), and the
// caller uses Decode. The values share data's memory.
func Sorted(data []byte) (keys []string, vals []json.RawMessage, ok bool) {
	// Room for as many members as there are colons, a bound the nested
	// ones only raise, up to a size whose overshoot costs little.
	n := min(bytes.Count(data, []byte{':'}), 1024)
	keys, vals = make([]string, 0, n), make([]json.RawMessage, 0, n)
	ok = each(data, func(k string, v json.RawMessage) bool {
		if len(keys) > 0 && k <= keys[len(keys)-1] {
			return false
		}
		keys, vals = append(keys, k), append(vals, v)
		return true
	})
	return keys, vals, ok
}

// split is Decode's fast path: it reports false for anything it leaves to
// encoding/json.
func split(data []byte) (map[string]json.RawMessage, bool) {
	values := make(map[string]json.RawMessage, 8)
	ok := each(data, func(k string, v json.RawMessage) bool {
		values[k] = v
		return true
	})
	return values, ok
}

// each calls f with every member of the JSON object data, in order, and
// reports true, or false for anything it leaves to encoding/json (see
// split) or when f returns false.
func each(data []byte, f func(k string, v json.RawMessage) bool) bool {
	if !json.Valid(data) {
		return false
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	// One copy of the document as a string, of which every key is a
	// part: one allocation instead of one per key.
	doc := string(data)
	i++
	for {
		i = skipSpace(data, i)
		if data[i] == '}' {
			return true
		}
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		// A key: valid JSON guarantees the closing quote.
		start := i + 1
		end := start
		for data[end] != '"' {
			if data[end] == '\\' || data[end] >= utf8.RuneSelf {
				return false
			}
			end++
		}
		key := doc[start:end]
		i = skipSpace(data, end+1) + 1 // past the colon
		i = skipSpace(data, i)
		vend := valueEnd(data, i)
		if !f(key, data[i:vend:vend]) {
			return false
		}
		i = vend
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns where the JSON value starting at data[i] ends; data is
// valid JSON.
func valueEnd(data []byte, i int) int {
	depth := 0
	for ; i < len(data); i++ {
		switch data[i] {
		case '"':
			for i++; data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		case ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}
