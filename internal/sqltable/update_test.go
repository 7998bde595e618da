package sqltable

import (
	"errors"
	"maps"
	"testing"
)

// fakeRec and fakeChange stand for session.Record and session.Change.
type fakeRec struct{ values map[string]int }

type fakeChange struct {
	clear  bool
	set    map[string]int
	refuse error
}

func (c fakeChange) Apply(r *fakeRec) (*fakeRec, error) {
	if c.refuse != nil {
		return nil, c.refuse
	}
	next := &fakeRec{values: map[string]int{}}
	if !c.clear {
		maps.Copy(next.values, r.values)
	}
	maps.Copy(next.values, c.set)
	return next, nil
}

// TestApplyAll: a batch applies its changes in order, each to what the
// previous ones left; a change refused by Apply or by Check leaves the
// record as it was and gets its own error; once a change empties the
// record, the row is to be deleted and the later changes find nothing.
func TestApplyAll(t *testing.T) {
	refused, tooBig, notFound := errors.New("refused"), errors.New("too big"), errors.New("not found")
	tx := Tx[fakeChange, *fakeRec]{
		Empty: func(r *fakeRec) bool { return len(r.values) == 0 },
		Check: func(r *fakeRec) error {
			if r.values["big"] > 0 {
				return tooBig
			}
			return nil
		},
	}
	start := &fakeRec{values: map[string]int{"n": 1}}
	t.Run("in order", func(t *testing.T) {
		chs := []fakeChange{
			{set: map[string]int{"a": 1}},
			{refuse: refused},
			{set: map[string]int{"big": 1}},
			{set: map[string]int{"b": 2}},
		}
		results, final, gone, written := applyAll(start, chs, tx, notFound)
		want := []map[string]int{{"n": 1, "a": 1}, nil, nil, {"n": 1, "a": 1, "b": 2}}
		wantErr := []error{nil, refused, tooBig, nil}
		for i, r := range results {
			if !errors.Is(r.Err, wantErr[i]) || (r.Err == nil) != (wantErr[i] == nil) {
				t.Errorf("change %d: error %v, want %v", i, r.Err, wantErr[i])
			}
			if (r.Rec == nil) != (want[i] == nil) || r.Rec != nil && !maps.Equal(r.Rec.values, want[i]) {
				t.Errorf("change %d: record %+v, want %v", i, r.Rec, want[i])
			}
		}
		if gone || !written || !maps.Equal(final.values, want[3]) {
			t.Errorf("final %+v, gone %v, written %v; want the last record, written", final, gone, written)
		}
		if !maps.Equal(start.values, map[string]int{"n": 1}) {
			t.Errorf("the stored record changed: %v", start.values)
		}
	})
	t.Run("emptied", func(t *testing.T) {
		chs := []fakeChange{{clear: true}, {set: map[string]int{"c": 3}}}
		results, _, gone, _ := applyAll(start, chs, tx, notFound)
		if !gone || results[0].Err != nil || len(results[0].Rec.values) != 0 || !errors.Is(results[1].Err, notFound) {
			t.Errorf("results %+v, gone %v; want the first to empty the record and the second to find nothing", results, gone)
		}
	})
}
