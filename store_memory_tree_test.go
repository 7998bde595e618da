package session

import (
	"encoding/json"
	"maps"
	"strconv"
	"testing"
	"time"
)

// bigSession stores a session of n values under key and changes it once,
// so that the store keeps its values in a tree from then on.
func bigSession(t *testing.T, s *MemoryStore, key string, n int) {
	t.Helper()
	ctx := t.Context()
	vals := make(map[string]json.RawMessage, n)
	for i := range n {
		vals["k"+strconv.Itoa(i)] = json.RawMessage(`"value number ` + strconv.Itoa(i) + `"`)
	}
	vals["from-koa"] = json.RawMessage(`null`) // absence, as another program may store it
	rec := &Record{Values: vals, Created: time.Now(), Expires: time.Now().Add(time.Hour)}
	if err := s.Create(ctx, key, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, key, &Change{Add: map[string]int64{"count": 1}}); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryTreeRecords: once Update has changed a session, the store
// keeps its values in a tree. The middleware's reads see every value; a
// record handed out earlier never changes, however many updates follow;
// Load, Update and Rename give everyone else flat copies, whose maps are
// theirs; and the byte count matches a fresh count of every record.
func TestMemoryTreeRecords(t *testing.T) {
	ctx := t.Context()
	s := NewMemoryStore(MemoryOptions{})
	t.Cleanup(func() { s.Close() })
	bigSession(t, s, "a", 300)

	before, err := s.loadTree(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if before.tree == nil || before.Values != nil {
		t.Fatal("the store did not keep the changed session's values in a tree")
	}
	want := before.flat().Values
	if len(want) != 301 || string(want["count"]) != "1" || want["k7"] == nil {
		t.Fatalf("flat values: %d keys, count %s", len(want), want["count"])
	}
	if _, ok := want["from-koa"]; ok {
		t.Error("a stored null survived as a value")
	}
	for i := range 500 {
		ch := &Change{Values: map[string]json.RawMessage{
			"k" + strconv.Itoa(i%300): nil,
			"new" + strconv.Itoa(i):   json.RawMessage(strconv.Itoa(i)),
		}, Add: map[string]int64{"count": 1}}
		if _, err := s.updateTree(ctx, "a", ch); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	if got := before.flat().Values; !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
		t.Fatal("a record handed out before 500 updates changed")
	}
	for k, v := range want {
		if string(before.value(k)) != string(v) {
			t.Fatalf("value(%q) = %s, want %s", k, before.value(k), v)
		}
	}

	pub, err := s.Load(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if pub.tree != nil || len(pub.Values) != 500+1 || string(pub.Values["count"]) != "501" {
		t.Fatalf("Load: tree %v, %d values, count %s", pub.tree != nil, len(pub.Values), pub.Values["count"])
	}
	pub.Values["count"] = json.RawMessage(`999`) // the caller's copy
	if cur, _ := s.loadTree(ctx, "a"); string(cur.value("count")) != "501" {
		t.Fatal("changing the map Load returned changed the store")
	}
	upd, err := s.Update(ctx, "a", &Change{Add: map[string]int64{"count": 1}})
	if err != nil || upd.tree != nil || string(upd.Values["count"]) != "502" {
		t.Fatalf("Update = tree %v, %v", upd != nil && upd.tree != nil, err)
	}
	ren, err := s.Rename(ctx, "a", "b", &Change{Add: map[string]int64{"count": 1}})
	if err != nil || ren.tree != nil || string(ren.Values["count"]) != "503" {
		t.Fatalf("Rename = tree %v, %v", ren != nil && ren.tree != nil, err)
	}

	var counted int64
	for i := range s.shards {
		sh := &s.shards[i]
		for _, e := range sh.recs {
			counted += memSize(e.key, e.rec.flat())
		}
	}
	if got := s.Stats().Bytes; got != counted {
		t.Errorf("Stats().Bytes = %d, a fresh count gives %d", got, counted)
	}
}
