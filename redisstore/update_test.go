package redisstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// The Update script re-implements Change.Apply in Lua. These tests hold it
// to the session package's own Apply, used as the oracle: same values,
// same refusals, byte for byte.

// errClass names the refusal an error is, for comparing two errors.
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, session.ErrNotInteger):
		return "ErrNotInteger"
	case errors.Is(err, session.ErrTooLarge):
		return "ErrTooLarge"
	case errors.Is(err, session.ErrNotFound):
		return "ErrNotFound"
	}
	return "other: " + err.Error()
}

func freshRecord(values map[string]json.RawMessage) *session.Record {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &session.Record{Values: values, Created: now, Expires: now.Add(time.Hour), Deadline: now.Add(24 * time.Hour)}
}

// TestAddMatchesApply adds deltas to stored values of every form that a
// JSON value can take and compares the stored result, or the refusal,
// with Change.Apply's.
func TestAddMatchesApply(t *testing.T) {
	t.Parallel()
	s := newStore(t, topologies[0].client(t), Options{})
	ctx := t.Context()
	stored := []string{"", "0", "5", "-5", "42", "999999999", "1000000000", "-1000000000", "-999999999",
		"9223372036854775807", "-9223372036854775808", "9223372036854775806", "-9223372036854775807",
		"3.0", "3e2", "-0", "1.5", `"7"`, "true", "null", "007", "-007", "1e19", "9.2233720368547758e18",
		"9223372036854775808", "-9223372036854775809", "12345678901234567890", "0.0", "-1e3", "1E2",
		"[1]", "{}", "3 ", "3\n", " 3", "1e400", "-0.0", "0e0", "1.0e+2", "2.5e1", "123456789012345678",
		"-123456789012345678", "4503599627370497", "9007199254740993", "1e18", "-1e18", "1e-2", "01.5"}
	deltas := []int64{0, 1, -1, 2, -2, 999999999, -999999999, 1000000000, -1000000000, 1e18, -1e18,
		math.MaxInt64, math.MinInt64, math.MaxInt64 - 5, math.MinInt64 + 5, 123456789123456789}
	for _, raw := range stored {
		for _, d := range deltas {
			values := map[string]json.RawMessage{"keep": json.RawMessage(`1`)}
			if raw != "" {
				values["x"] = json.RawMessage(raw)
			}
			rec := freshRecord(values)
			key := fmt.Sprintf("add-%x-%d", raw, d)
			ch := &session.Change{Add: map[string]int64{"x": d}}
			want, wantErr := ch.Apply(rec)
			if err := s.Create(ctx, key, rec); err != nil {
				t.Fatal(err)
			}
			got, err := s.Update(ctx, key, ch)
			if errClass(err) != errClass(wantErr) {
				t.Errorf("stored %q + %d: err = %v, Apply says %v", raw, d, err, wantErr)
				continue
			}
			if err != nil {
				// Refused: nothing changed.
				if now, err := s.Load(ctx, key); err != nil || string(now.Values["x"]) != raw {
					t.Errorf("stored %q + %d: after the refusal x = %q, %v", raw, d, now.Values["x"], err)
				}
				continue
			}
			if string(got.Values["x"]) != string(want.Values["x"]) {
				t.Errorf("stored %q + %d = %s, Apply says %s", raw, d, got.Values["x"], want.Values["x"])
			}
			loaded, err := s.Load(ctx, key)
			if err != nil || string(loaded.Values["x"]) != string(want.Values["x"]) {
				t.Errorf("stored %q + %d: Load gives %s, %v; want %s", raw, d, loaded.Values["x"], err, want.Values["x"])
			}
		}
	}
}

// TestWeight checks weight against encoding/json on keys that need
// every kind of escape.
func TestWeight(t *testing.T) {
	t.Parallel()
	keys := []string{"", "a", "count", `"`, `\`, "<a&b>", "\b\f\n\r\t", "\x00\x01\x1f\x7f", "é ✓", "\u2028\u2029",
		"\xff", "a\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\xaf", "😀", "\xf0\x9f\x98", "plain-key_1.2"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(8))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		keys = append(keys, string(b))
	}
	for _, k := range keys {
		q, _ := json.Marshal(k)
		if got := weight(k); got != len(q)+2 {
			t.Errorf("weight(%q) = %d, json.Marshal gives %d bytes (+2 for the colon and comma): %s", k, got, len(q), q)
		}
	}
}

// TestUpdateMatchesApply runs random sequences of changes (sets, deletes,
// nulls, adds, clears, owners, size limits around the exact size) on the
// store and on a copy of the record with Change.Apply, and compares the
// two after every step. A change comes with no Base, with the record the
// last step returned (the store writes it by compare-and-swap), or with an
// older one (the store finds it stale and applies the change itself).
func TestUpdateMatchesApply(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, topo.client(t), Options{})
			ctx := t.Context()
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
			outcomes := map[string]int{}
			defer func() { t.Logf("outcomes: %v", outcomes) }()
			for seq := range 8 {
				key := fmt.Sprintf("seq-%d", seq)
				model := freshRecord(map[string]json.RawMessage{"a": json.RawMessage(`1`), "n": json.RawMessage(`null`)})
				model.Handle = "h-" + key
				if err := s.Create(ctx, key, model); err != nil {
					t.Fatal(err)
				}
				model.Values = maps.Clone(model.Values)
				read, err := s.Load(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				older := read
				for step := range 40 {
					ch := randomChange(r, model)
					switch r.IntN(3) {
					case 1:
						ch.Base, outcomes["base"] = read, outcomes["base"]+1
					case 2:
						ch.Base = older
					}
					want, wantErr := ch.Apply(model)
					hits := s.casHits.Load()
					got, err := s.Update(ctx, key, ch)
					if s.casHits.Load() > hits {
						outcomes["compare-and-swap"]++
						if ch.Base != read {
							t.Fatalf("seq %d step %d: compare-and-swap on a stale Base", seq, step)
						}
					}
					outcomes[errClass(wantErr)]++
					if errClass(err) != errClass(wantErr) {
						t.Fatalf("seq %d step %d: %+v: err = %v, Apply says %v", seq, step, ch, err, wantErr)
					}
					if err != nil {
						continue
					}
					older, read = read, got
					if len(want.Values) == 0 {
						outcomes["emptied"]++
						if len(got.Values) != 0 {
							t.Fatalf("seq %d step %d: emptied record returned values %v", seq, step, got.Values)
						}
						if _, err := s.Load(ctx, key); !errors.Is(err, session.ErrNotFound) {
							t.Fatalf("seq %d step %d: emptied record still loads: %v", seq, step, err)
						}
						break
					}
					loaded, err := s.Load(ctx, key)
					if err != nil {
						t.Fatalf("seq %d step %d: Load: %v", seq, step, err)
					}
					if loaded.Version != got.Version {
						t.Fatalf("seq %d step %d: Update returned version %d, Load %d", seq, step, got.Version, loaded.Version)
					}
					for name, rec := range map[string]*session.Record{"Update": got, "Load": loaded} {
						if !sameRecord(rec, want) {
							t.Fatalf("seq %d step %d: %s = %+v %s, Apply says %+v %s", seq, step, name, rec, show(rec.Values), want, show(want.Values))
						}
					}
					model = want
				}
			}
			if outcomes["compare-and-swap"] == 0 {
				t.Error("no Update went by compare-and-swap")
			}
		})
	}
}

// randomChange returns a random change to model: sets, deletes, nulls,
// adds, sometimes a clear, an owner, a new expiry, and a size limit at,
// just under or just over the size the change would leave.
func randomChange(r *rand.Rand, model *session.Record) *session.Change {
	keys := []string{"a", "count", "<tag>", "é", "line\nbreak", "\xff", "\u2028", `q"uote`, "n"}
	randValue := func() json.RawMessage {
		switch r.IntN(7) {
		case 0:
			return json.RawMessage("null")
		case 1:
			return json.RawMessage(strconv.FormatInt(r.Int64N(2000)-1000, 10))
		case 2:
			return json.RawMessage(`"` + strings.Repeat("x", r.IntN(40)) + `"`)
		case 3:
			return json.RawMessage(`{"nested":[1,2,"<&>"]}`)
		case 4:
			return json.RawMessage("9223372036854775800")
		case 5:
			return json.RawMessage("2.5")
		}
		return json.RawMessage("true")
	}
	ch := &session.Change{Values: map[string]json.RawMessage{}, Add: map[string]int64{}}
	for range r.IntN(4) {
		ch.Values[keys[r.IntN(len(keys))]] = randValue()
	}
	for range r.IntN(3) {
		ch.Add[keys[r.IntN(len(keys))]] = r.Int64N(21) - 10
	}
	if r.IntN(10) == 0 {
		ch.Clear = true
		ch.Values["a"] = json.RawMessage(`"kept"`)
	}
	if r.IntN(8) == 0 {
		owner := fmt.Sprintf("owner-%d", r.IntN(3))
		ch.Owner = &owner
	}
	if r.IntN(3) == 0 {
		ch.Expires = time.Now().UTC().Truncate(time.Microsecond).Add(time.Duration(1+r.IntN(100)) * time.Minute)
	}
	if r.IntN(8) == 0 {
		label := []string{"", "Firefox on macOS é ✓", "phone"}[r.IntN(3)]
		ch.Label = &label
	}
	if r.IntN(8) == 0 {
		l := &session.Lifetime{IdleTimeout: time.Duration(r.IntN(3)) * 90 * time.Minute, Persist: session.CookiePersistence(r.IntN(3))}
		if r.IntN(3) > 0 {
			l.Deadline = time.Now().UTC().Truncate(time.Microsecond).Add(time.Duration(1+r.IntN(72)) * time.Hour)
		}
		ch.Lifetime = l
	}
	// A limit at, just under or just over the exact size.
	if probe, err := (&session.Change{Clear: ch.Clear, Values: ch.Values, Add: ch.Add}).Apply(model); err == nil {
		exact, _ := json.Marshal(probe.Values)
		ch.MaxSize = len(exact) + r.IntN(3) - 1
	}
	return ch
}

func show(values map[string]json.RawMessage) string {
	b, _ := json.Marshal(values)
	return string(b)
}
