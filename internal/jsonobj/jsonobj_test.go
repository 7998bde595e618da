package jsonobj

import (
	"encoding/json"
	"reflect"
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
