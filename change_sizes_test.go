package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/seed013449c2/session/internal/jsonobj"
)

// TestApplyMeasuresWhatChanged: Apply keeps what it learnt of a record's
// sizes and measures the next change by what it changes. Over a long run
// of random changes (sets, deletes, counters, clears, keys that JSON must
// escape, a null another program stored), MaxSize is judged on the exact
// encoded size, to the byte, and the memory store counts what a fresh
// count gives; a record whose Values map was replaced is measured afresh.
func TestApplyMeasuresWhatChanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "count", `quo"te`, "ünï", "tab\tkey", "<html>", "k1", "k2", "k3"}
	rec := &Record{Values: map[string]json.RawMessage{"a": json.RawMessage(`"x"`), "gone": json.RawMessage(`null`)}}
	for i := range 2000 {
		ch := &Change{Values: map[string]json.RawMessage{}}
		switch rng.IntN(20) {
		case 0:
			ch.Clear = true
		case 1:
			ch.Add = map[string]int64{"count": int64(rng.IntN(2000) - 1000)}
		}
		for range rng.IntN(4) {
			k := keys[rng.IntN(len(keys))]
			if k == "count" {
				continue // an integer, for Add
			}
			switch rng.IntN(3) {
			case 0:
				ch.Values[k] = nil
			default:
				ch.Values[k] = json.RawMessage(strconv.Quote(fmt.Sprint(rng.IntN(1 << rng.IntN(30)))))
			}
		}
		next, err := ch.Apply(rec)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		want := jsonobj.Size(next.Values)
		ch.MaxSize = want
		if _, err := ch.Apply(rec); err != nil {
			t.Fatalf("change %d: MaxSize %d, the exact size, refused: %v", i, want, err)
		}
		ch.MaxSize = want - 1
		if _, err := ch.Apply(rec); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("change %d: MaxSize %d, a byte short, gave %v", i, want-1, err)
		}
		fresh := &Record{Values: next.Values, Owner: next.Owner}
		if got, want := memSize("key", next), memSize("key", fresh); got != want {
			t.Fatalf("change %d: memSize %d, counted afresh %d", i, got, want)
		}
		rec = next
	}

	// A copy of a record given another map of as many values: what Apply
	// knew of the old map no longer holds.
	other := *rec
	other.Values = map[string]json.RawMessage{}
	for k := range rec.Values {
		other.Values[k] = json.RawMessage(`"` + strings.Repeat("x", 100) + `"`)
	}
	size := jsonobj.Size(other.Values)
	if _, err := (&Change{MaxSize: size - 1}).Apply(&other); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a replaced map was measured by the old one's sizes: %v", err)
	}
}
