package session_test

import (
	"encoding/json"
	"testing"

	"github.com/seed013449c2/session"
)

// TestChangeCloneSharesNothing: a store that keeps a change past Update
// (to batch it) keeps a Clone, which the caller's later changes cannot
// reach.
func TestChangeCloneSharesNothing(t *testing.T) {
	owner, label := "ann", "phone"
	ch := &session.Change{
		Values:   map[string]json.RawMessage{"a": json.RawMessage(`1`)},
		Add:      map[string]int64{"n": 1},
		Owner:    &owner,
		Label:    &label,
		Lifetime: &session.Lifetime{IdleTimeout: 5},
	}
	c := ch.Clone()
	ch.Values["a"], ch.Values["b"] = json.RawMessage(`2`), json.RawMessage(`3`)
	ch.Add["n"] = 9
	owner, label = "bob", "laptop"
	ch.Lifetime.IdleTimeout = 7
	if string(c.Values["a"]) != "1" || len(c.Values) != 1 || c.Add["n"] != 1 || *c.Owner != "ann" || *c.Label != "phone" || c.Lifetime.IdleTimeout != 5 {
		t.Fatalf("the clone changed with the original: %+v", c)
	}
}
