package session

import (
	"context"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/seed013449c2/session/internal/jsonobj"
	"github.com/seed013449c2/session/internal/sqltest"
)

// TestTreeFromJSON: a stored object read into a tree holds what Decode
// reads, nulls dropped, whether its keys are in Encode's order or not
// (another program wrote it, or a key repeats: the last wins); its sizes
// are what a fresh count gives; only a document of valid UTF-8 is known
// valid.
func TestTreeFromJSON(t *testing.T) {
	for _, doc := range []string{
		`{"a":1,"b":"x","c":[1,2]}`,
		`{"c":1,"a":"x","b":null}`,
		`{"a":1,"a":2}`,
		` {"é":"ü", "k\n":true} `,
		`{}`,
		`{"a":"` + "\xff" + `"}`,
	} {
		tree, sz, err := treeFromJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		m, _ := jsonobj.Decode([]byte(doc))
		maps.DeleteFunc(m, func(_ string, v json.RawMessage) bool { return isNull(v) })
		rec := &Record{tree: tree, sizes: sz}
		got := rec.flat().Values
		if !maps.EqualFunc(got, m, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
			t.Errorf("%s: tree holds %v, Decode gives %v", doc, got, m)
		}
		if sz2, ok := rec.knownSizes(); len(m) > 0 && (!ok || jsonobj.ObjectSize(sz2.json) != jsonobj.Size(m)) {
			t.Errorf("%s: sizes %+v (known %v), want JSON size %d", doc, sz2, ok, jsonobj.Size(m))
		}
		if wantValid := !strings.Contains(doc, "\xff"); sz.valid != wantValid {
			t.Errorf("%s: valid = %v", doc, sz.valid)
		}
	}
	if _, _, err := treeFromJSON([]byte(`[1]`)); err == nil {
		t.Error("an array read as values")
	}
}

// TestMySQLTreeChecksWhatChanged: a record read for the middleware is known
// valid, so a commit checks only what its change adds, and still refuses a
// value the table cannot hold.
func TestMySQLTreeChecksWhatChanged(t *testing.T) {
	s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
	ctx := context.Background()
	mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(sqltest.MockValuesSQL))
	base, err := s.loadTree(ctx, mockKey)
	if err != nil {
		t.Fatal(err)
	}
	if base.tree == nil || !base.checkedValues() {
		t.Fatalf("loadTree: tree %v, known valid %v", base.tree != nil, base.checkedValues())
	}
	for _, bad := range []json.RawMessage{json.RawMessage(`{"x":`), json.RawMessage("\"\xff\"")} {
		// Refused before the swap is sent; the transaction judges the
		// change on the fresh row and refuses it too.
		mock.ExpectBegin()
		mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(sqltest.MockValuesSQL))
		mock.ExpectRollback()
		_, err := s.updateTree(ctx, mockKey, &Change{Values: map[string]json.RawMessage{"bad": bad}, Base: base})
		if err == nil || !strings.Contains(err.Error(), "not valid UTF-8 JSON") {
			t.Errorf("a change setting %q: %v, want it refused", bad, err)
		}
	}
	mock.ExpectExec(sqlSwap).WithArgs(`{"count":1,"theme":"dark","user_id":"k3j2"}`, "alice", mockKey, int64(7), mockNowSQL).
		WillReturnResult(sqlmock.NewResult(0, 1))
	rec, err := s.updateTree(ctx, mockKey, &Change{Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}, Base: base})
	if err != nil || !rec.checkedValues() || string(rec.value("theme")) != `"dark"` {
		t.Fatalf("updateTree = %v, %v", rec, err)
	}
}

// TestRecycleOnlySmallChanges: the maps of a change are given back for
// reuse only when the request put at most recycledMapLen keys in them
// (counting a key put twice twice): deleting keys does not shrink a Go
// map, so a map that once held more could keep a large table alive in
// the pool.
func TestRecycleOnlySmallChanges(t *testing.T) {
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := &Session{m: m}
	for i := range recycledMapLen + 1 {
		s.put("k", json.RawMessage(strconv.Itoa(i))) // one key, put nine times
	}
	s.recycle()
	if got := m.valueMaps.p.Get(); got != nil {
		t.Fatalf("a map given %d entries went back to the pool", recycledMapLen+1)
	}
	s.clean()
	if s.entries != 0 || s.ch.Values != nil {
		t.Fatalf("clean left %d entries counted and %v", s.entries, s.ch.Values)
	}
}
