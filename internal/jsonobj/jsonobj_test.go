package jsonobj

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// TestEncodeSize: the object has sorted, escaped keys and each value as
// stored, leaves out empty values, decodes back to the values, and Size
// is its exact length.
func TestEncodeSize(t *testing.T) {
	tests := []struct {
		values map[string]json.RawMessage
		want   string
	}{
		{nil, `{}`},
		{map[string]json.RawMessage{"gone": nil}, `{}`},
		{map[string]json.RawMessage{"b": json.RawMessage(`2`), "a": json.RawMessage(`{ "x": [1, 2] }`)}, `{"a":{ "x": [1, 2] },"b":2}`},
		{map[string]json.RawMessage{`a"b<`: json.RawMessage(`"é"`), "zoë": json.RawMessage(`true`), "": json.RawMessage(`null`)},
			`{"":null,"a\"b\u003c":"é","zoë":true}`},
	}
	for _, tt := range tests {
		got := Encode(tt.values)
		if string(got) != tt.want {
			t.Errorf("Encode(%s) = %s, want %s", tt.values, got, tt.want)
		}
		if n := Size(tt.values); n != len(got) {
			t.Errorf("Size(%s) = %d, want len(Encode) %d", tt.values, n, len(got))
		}
		back, err := Decode(got)
		if err != nil {
			t.Fatal(err)
		}
		live := map[string]json.RawMessage{}
		for k, v := range tt.values {
			if len(v) > 0 {
				live[k] = v
			}
		}
		if !reflect.DeepEqual(back, live) {
			t.Errorf("Decode(Encode(%s)) = %s", tt.values, back)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, data := range []string{"", "[1]", `"s"`, "{", `{"a":}`} {
		if v, err := Decode([]byte(data)); err == nil {
			t.Errorf("Decode(%q) = %v, want an error", data, v)
		}
	}
	if v, err := Decode([]byte("null")); err != nil || v == nil || len(v) != 0 {
		t.Errorf("Decode(null) = %v, %v; want an empty map", v, err)
	}
}

// decodeCases are documents Decode must read exactly as encoding/json does.
var decodeCases = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a" : 1 , "b":[1, {"c": "}"}] }`,
	`{"s":"a\"b\\\\","n":-1.5e3,"t":true,"f":false,"z":null,"o":{"x":[]}}`,
	`{"dup":1,"dup":2}`, `{"esc\u0041ped":1}`, `{"é":"ü"}`, "{\"k\":\"\xff\"}",
	`{"a":"]","b":"{","c":","}`, "\n{\"a\":\t1\n}\r\n",
	`null`, `[]`, `"x"`, `{`, `{"a":}`, `{"a":1,}`, ``, `{"a":1}x`,
}

// TestDecodeMatchesEncodingJSON: the fast path splits exactly as
// encoding/json decodes into map[string]json.RawMessage, and refuses what
// it refuses.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, doc := range decodeCases {
		checkDecode(t, []byte(doc))
	}
}

// FuzzDecode holds Decode to encoding/json on arbitrary documents.
func FuzzDecode(f *testing.F) {
	for _, doc := range decodeCases {
		f.Add([]byte(doc))
	}
	f.Fuzz(checkDecode)
}

func checkDecode(t *testing.T, doc []byte) {
	got, err := Decode(doc)
	want, werr := decodeSlow(doc)
	if (err == nil) != (werr == nil) {
		t.Fatalf("Decode(%q): err %v, encoding/json's %v", doc, err, werr)
	}
	if len(got) != len(want) {
		t.Fatalf("Decode(%q) = %q, encoding/json gives %q", doc, got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || string(g) != string(v) {
			t.Fatalf("Decode(%q)[%q] = %q, encoding/json gives %q", doc, k, g, v)
		}
	}
	// Sorted, when it accepts the document, reads the same members.
	if keys, vals, ok := Sorted(doc); ok {
		if werr != nil || len(keys) != len(want) {
			t.Fatalf("Sorted(%q) = %q (err of encoding/json: %v), want %q", doc, keys, werr, want)
		}
		for i, k := range keys {
			if string(want[k]) != string(vals[i]) || (i > 0 && keys[i-1] >= k) {
				t.Fatalf("Sorted(%q): %q = %q out of order or not %q", doc, k, vals[i], want[k])
			}
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	values := map[string]json.RawMessage{}
	for i := range 512 {
		values[fmt.Sprintf("k%d", i)] = json.RawMessage(`{"n":12,"s":"some text"}`)
	}
	doc := Encode(values)
	b.Run("split", func(b *testing.B) {
		for b.Loop() {
			Decode(doc)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			decodeSlow(doc)
		}
	})
}

// TestSortedAndEncodeSorted: Sorted reads back what Encode wrote, in
// order, and refuses what is not in strictly ascending key order;
// EncodeSorted writes what Encode writes.
func TestSortedAndEncodeSorted(t *testing.T) {
	values := map[string]json.RawMessage{"b": json.RawMessage(`[1,{"x":2}]`), "a": json.RawMessage(`"s"`), "c": json.RawMessage(`null`), "d": nil}
	doc := Encode(values)
	keys, vals, ok := Sorted(doc)
	if !ok || !slices.Equal(keys, []string{"a", "b", "c"}) || string(vals[1]) != `[1,{"x":2}]` {
		t.Fatalf("Sorted(%s) = %q, %q, %v", doc, keys, vals, ok)
	}
	seq := func(yield func(string, json.RawMessage) bool) {
		for i, k := range keys {
			if !yield(k, vals[i]) {
				return
			}
		}
	}
	if got := EncodeSorted(Size(values), seq); got != string(doc) {
		t.Errorf("EncodeSorted = %s, Encode = %s", got, doc)
	}
	for _, bad := range []string{`{"b":1,"a":2}`, `{"a":1,"a":2}`, `{"é":1}`, `{"a\n":1}`, `[1]`, `{"a":1`} {
		if _, _, ok := Sorted([]byte(bad)); ok {
			t.Errorf("Sorted(%s) accepted it", bad)
		}
	}
}
