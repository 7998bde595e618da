package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/seed013449c2/session/internal/jsonobj"
	"github.com/seed013449c2/session/internal/pmap"
)

// hostileKeys are keys a hostile app or another program may use: the
// empty key, escapes, non-ASCII, keys that sort before and after
// everything, near-duplicates.
var hostileKeys = func() []string {
	ks := []string{"", " ", "\x00", "\x7f", "\u2028", "\ufffd", `"`, `\`, "<", ">", "&", "é", "e\u0301",
		"a", "a ", "A", "aa", "~", "\U0001F600", "tab\tkey", "nl\nkey", strings.Repeat("k", 300)}
	for i := range 120 {
		ks = append(ks, fmt.Sprintf("k%03d", i))
	}
	return ks
}()

// hostileValue returns an absurd but valid JSON value.
func hostileValue(rng *rand.Rand) json.RawMessage {
	switch rng.IntN(9) {
	case 0:
		return json.RawMessage(`null`)
	case 1:
		return nil
	case 2:
		return json.RawMessage(strings.Repeat("[", 50) + strings.Repeat("]", 50))
	case 3:
		return json.RawMessage(`"\u0000\ud800 \\\"</script>"`)
	case 4:
		return json.RawMessage(strconv.Quote(strings.Repeat("x", rng.IntN(5000))))
	case 5:
		return json.RawMessage(`{"":{"":[null,{"a":null}]}}`)
	case 6:
		return json.RawMessage(` 1e308 `) // whitespace inside the raw value
	case 7:
		return json.RawMessage(`"é€😀"`)
	}
	return json.RawMessage(strconv.Itoa(rng.IntN(1000)))
}

// TestApplyBothForms: the same random run of changes, applied to a
// record kept as a map, one kept as a tree, and one that the memory store
// switches to a tree when it grows past memTreeMin, always holds the same
// values as a plain Go model; every known size is the exact encoded size
// (MaxSize holds to the byte), the memory store's count is what a fresh
// count gives, and encodeValues writes exactly what Encode writes.
func TestApplyBothForms(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 13))
	model := map[string]json.RawMessage{}
	asMap := &Record{}
	asTree := &Record{}
	mem := &Record{}
	for step := range 1500 {
		ch := &Change{}
		switch r := rng.IntN(60); {
		case r == 0:
			ch.Clear = true
		case r < 5:
			ch.Add = map[string]int64{"counter": int64(rng.IntN(100) - 50)}
		}
		n := rng.IntN(8)
		if rng.IntN(20) == 0 {
			n = 60 // a burst that splits chunks
		}
		if n > 0 {
			ch.Values = map[string]json.RawMessage{}
		}
		for range n {
			k := hostileKeys[rng.IntN(len(hostileKeys))]
			ch.Values[k] = hostileValue(rng)
		}
		if ch.Clear && rng.IntN(2) == 0 {
			ch.Values = map[string]json.RawMessage{"after-clear": json.RawMessage(`1`)}
		}
		// The model.
		want := maps.Clone(model)
		if ch.Clear {
			want = map[string]json.RawMessage{}
		}
		for k, v := range ch.Values {
			if isNull(v) {
				delete(want, k)
			} else {
				want[k] = v
			}
		}
		for k, d := range ch.Add {
			sum, err := addInt(want[k], d)
			if err != nil {
				t.Fatal(err)
			}
			want[k] = sum
		}
		size := jsonobj.Size(want)
		if enc := jsonobj.Encode(want); len(enc) != size {
			t.Fatalf("step %d: Size %d, Encode %d bytes", step, size, len(enc))
		}
		for name, rec := range map[string]**Record{"map": &asMap, "tree": &asTree, "mem": &mem} {
			base := *rec
			if name == "tree" {
				base = base.asTree()
			} else if name == "mem" {
				base = memTree(base)
			}
			ch.MaxSize = size - 1
			if _, err := ch.Apply(base); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("step %d %s: MaxSize one byte short of %d: %v", step, name, size, err)
			}
			ch.MaxSize = size
			next, err := ch.Apply(base)
			if err != nil {
				t.Fatalf("step %d %s: MaxSize exactly %d: %v", step, name, size, err)
			}
			got := next.flat().Values
			if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
				t.Fatalf("step %d %s: values %d, want %d", step, name, len(got), len(want))
			}
			if next.numValues() != len(want) {
				t.Fatalf("step %d %s: numValues %d, want %d", step, name, next.numValues(), len(want))
			}
			for k, v := range want {
				if string(next.value(k)) != string(v) {
					t.Fatalf("step %d %s: value(%q) = %s, want %s", step, name, k, next.value(k), v)
				}
			}
			if enc, wantEnc := encodeValues(next), jsonobj.Encode(want); len(want) > 0 && string(enc) != string(wantEnc) {
				t.Fatalf("step %d %s: encodeValues\n%s\nwant\n%s", step, name, enc, wantEnc)
			}
			if sz, ok := next.knownSizes(); ok && len(want) > 0 && jsonobj.ObjectSize(sz.json) != size {
				t.Fatalf("step %d %s: known JSON size %d, want %d", step, name, jsonobj.ObjectSize(sz.json), size)
			}
			fresh := &Record{Values: maps.Clone(want)}
			if a, b := memSize("key", next), memSize("key", fresh); a != b {
				t.Fatalf("step %d %s: memSize %d, counted afresh %d", step, name, a, b)
			}
			// The record it came from is untouched.
			if base.numValues() != len(model) {
				t.Fatalf("step %d %s: Apply changed its input: %d values, had %d", step, name, base.numValues(), len(model))
			}
			*rec = next
		}
		model = want
	}
}

// TestTreeFromJSONForeign: documents another program may have written, in
// every shape encoding/json accepts: a tree read from one holds what
// encoding/json reads (the last of repeated keys, nulls dropped), writes
// back what Encode writes, and knows its size; anything else is an error,
// never a panic.
func TestTreeFromJSONForeign(t *testing.T) {
	docs := []string{
		`{"b":1,"a":2}`,
		`{"a":1,"a":null}`,
		`{"a":null,"a":1}`,
		`{"a":1,"b":2,"a":3}`,
		`{"":1,"":2}`,
		`{"\u0061":1,"a":2}`,
		`{"a":1,"\u0061":2}`,
		`{"\ud800":1}`,
		`{"\u00e9":1,"é":2}`,
		`{"<":1,"\u003c":2}`,
		"\t{ \"a\" :\n 1 , \"b\" : [ 1 , 2 ] , \"c\" : { \"x\" : \"}\" } } \n",
		`{"a":"\"","b":"\\","c":"\\\""}`,
		`{"z":{"a":[{"b":"]"}]},"y":"{"}`,
		`{"a":1e999999}`,
		`{"a":-0.0e-0}`,
		`{"a":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}`,
		`null`,
		`{}`,
		`  {}  `,
		`[]`,
		`"x"`,
		`1`,
		``,
		`{`,
		`{"a":1,}`,
		`{"a":1}{"b":2}`,
		`{"a":1} x`,
		`{'a':1}`,
		"{\"a\":\"\xff\"}",
		"{\"\xff\":1}",
		"{\"a\":\"\x00\"}",
	}
	for i := range 40 {
		var b strings.Builder
		b.WriteString("{")
		for j := range 40 {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%02d":%d`, (i*7+j*13)%40, j)
		}
		b.WriteString("}")
		docs = append(docs, b.String())
	}
	for _, doc := range docs {
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal([]byte(doc), &want)
		var tree *pmap.Map[json.RawMessage]
		var sz valueSizes
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%q: panic %v", doc, r)
				}
			}()
			tree, sz, err = treeFromJSON([]byte(doc))
		}()
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%q: error %v, encoding/json says %v", doc, err, wantErr)
			continue
		}
		if err != nil {
			continue
		}
		maps.DeleteFunc(want, func(_ string, v json.RawMessage) bool { return isNull(v) })
		rec := &Record{tree: tree, sizes: sz}
		got := rec.flat().Values
		if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
			t.Errorf("%q: tree holds %q, encoding/json reads %q", doc, got, want)
			continue
		}
		if !slices.IsSorted(tree.Keys()) {
			t.Errorf("%q: keys out of order: %q", doc, tree.Keys())
		}
		if len(want) > 0 {
			if enc := encodeValues(rec); string(enc) != string(jsonobj.Encode(want)) {
				t.Errorf("%q: written back as %s, want %s", doc, enc, jsonobj.Encode(want))
			}
			if s, ok := rec.knownSizes(); !ok || jsonobj.ObjectSize(s.json) != jsonobj.Size(want) {
				t.Errorf("%q: sizes %+v known %v, want %d", doc, s, ok, jsonobj.Size(want))
			}
		}
		// A change of one key keeps the rest, and a key set twice in a
		// stored row ends up once.
		next, err := (&Change{Values: map[string]json.RawMessage{"new": json.RawMessage(`1`)}}).Apply(rec)
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if next.numValues() != len(want)+1-btoi(want["new"] != nil) {
			t.Errorf("%q: %d values after adding one to %d", doc, next.numValues(), len(want))
		}
		var back map[string]json.RawMessage
		if err := json.Unmarshal([]byte(encodeValues(next)), &back); err != nil || len(back) != next.numValues() {
			t.Errorf("%q: written %s (%v), %d keys, record has %d", doc, encodeValues(next), err, len(back), next.numValues())
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestValidFlag: a record read from a table is known valid, and a
// change that adds a value the table cannot hold (invalid UTF-8 in a key
// or a value, a value that is not JSON) makes it unknown, so that the
// store checks every value again; a change of valid values keeps it.
func TestValidFlag(t *testing.T) {
	tree, sz, err := treeFromJSON([]byte(`{"a":1,"b":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	rec := &Record{tree: tree, sizes: sz}
	if !rec.checkedValues() {
		t.Fatal("a record read from the table is not known valid")
	}
	for _, bad := range []map[string]json.RawMessage{
		{"\xff": json.RawMessage(`1`)},
		{"a": json.RawMessage("\"\xff\"")},
		{"a": json.RawMessage(`{`)},
		{"a": json.RawMessage(`1 2`)},
		{"a": json.RawMessage(`1}`)},
		{"a": json.RawMessage(`NaN`)},
	} {
		next, err := (&Change{Values: bad}).Apply(rec)
		if err != nil {
			t.Fatal(err)
		}
		if next.checkedValues() {
			t.Errorf("%q: still known valid", bad)
		}
		if err := mysqlCheck("key", next); err == nil {
			t.Errorf("%q: the MySQL store would write it", bad)
		}
		// And a valid change after it does not make it valid again.
		again, err := (&Change{Values: map[string]json.RawMessage{"c": json.RawMessage(`2`)}}).Apply(next)
		if err != nil {
			t.Fatal(err)
		}
		if again.checkedValues() {
			t.Errorf("%q then a valid change: known valid", bad)
		}
		// Overwriting the bad value does make it writable again.
		for k := range bad {
			fixed, err := (&Change{Values: map[string]json.RawMessage{k: nil}}).Apply(again)
			if err != nil {
				t.Fatal(err)
			}
			if err := mysqlCheck("key", fixed); err != nil {
				t.Errorf("%q deleted: still refused: %v", bad, err)
			}
		}
	}
	ok, err := (&Change{Values: map[string]json.RawMessage{"é": json.RawMessage(`"😀"`)}, Clear: true}).Apply(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !ok.checkedValues() {
		t.Error("a valid change after Clear: no longer known valid")
	}
}
