// Package sessiontest checks that a [session.Store] keeps the contract
// documented in package session. Every store in this module runs it, and so
// can a store written elsewhere: one call in a test covers every promise the
// middleware relies on, from expiry on read to atomic updates under load.
//
// Each subtest gets a fresh store from the caller's constructor and works
// under random keys and owners, so the suite can run against a shared real
// database without interfering with other data. What a store may leave out
// is told by the interfaces it implements, not by options: the owner index
// is checked when the store implements [session.OwnerStore] (and a store
// that does not must refuse an owner), the lock when it implements
// [session.Locker], and a session's own lifetime, label and handle
// (Record.IdleTimeout, Persist, Label, Handle) with the list of devices
// when it implements [session.DeviceStore] (and a store that
// [RunOptions].NoLifetimeLabel says keeps none must refuse them).
//
// Times are built in UTC and truncated to the microsecond, the precision SQL
// databases keep (or to [RunOptions].Precision), and compared with
// [time.Time.Equal]. Values are compared as JSON, so a store may reformat
// them (a database JSON column reorders keys and drops spaces) as long as
// the meaning is kept.
package sessiontest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// Run runs the conformance suite as subtests of t. newStore must return a
// ready store and register with t.Cleanup whatever closing it needs; it is
// called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) session.Store) {
	t.Helper()
	RunWith(t, RunOptions{}, newStore)
}

// RunOptions describe how much less than a full Record a store keeps, by
// design: a store over another framework's table, such as koa.Store, has
// no column for some fields. The zero value is the whole contract, which
// Run checks.
type RunOptions struct {
	// NoCreatedDeadline: the store keeps neither Record.Created nor
	// Record.Deadline, and Load returns both zero.
	NoCreatedDeadline bool
	// Precision is how finely the store keeps times, such as
	// time.Millisecond. Default time.Microsecond.
	Precision time.Duration
	// NoLifetimeLabel: the store keeps none of Record.IdleTimeout,
	// Persist, Label and Handle, and refuses a record or change that sets
	// them with an error wrapping errors.ErrUnsupported.
	NoLifetimeLabel bool
}

// suite is one run's RunOptions, with the defaults filled in.
type suite struct {
	RunOptions
	// owners is set when the store implements session.OwnerStore.
	owners bool
}

// RunWith is Run for a store that keeps less than a full Record, as opts
// say; everything else is checked as Run checks it.
func RunWith(t *testing.T, opts RunOptions, newStore func(t *testing.T) session.Store) {
	t.Helper()
	c := &suite{RunOptions: opts}
	_, c.owners = newStore(t).(session.OwnerStore)
	if c.Precision <= 0 {
		c.Precision = time.Microsecond
	}
	type storeTest struct {
		name string
		run  func(*testing.T, session.Store)
	}
	storeTests := []storeTest{
		{"LoadMissing", testLoadMissing},
		{"CreateLoadRoundTrip", c.testRoundTrip},
		{"CreateOnLiveKey", c.testCreateOnLiveKey},
		{"CreateOverExpired", c.testCreateOverExpired},
		{"Update", c.testUpdate},
		{"UpdateClearAndAdd", c.testUpdateClearAndAdd},
		{"UpdateRefusedChangesNothing", c.testUpdateRefused},
		{"UpdateToEmptyDeletes", c.testUpdateToEmpty},
		{"UpdateNeverCreates", c.testUpdateNeverCreates},
		{"Touch", c.testTouch},
		{"ExpiredIsNotFound", c.testExpired},
		{"ExpiresWhileStored", c.testExpiresWhileStored},
		{"Delete", c.testDelete},
	}
	if c.owners {
		storeTests = append(storeTests,
			storeTest{"DeleteOwner", c.testDeleteOwner},
			storeTest{"DeleteOwnerFollowsUpdate", c.testDeleteOwnerFollowsUpdate})
	} else {
		storeTests = append(storeTests, storeTest{"OwnerRefusedWithoutOwnerStore", c.testOwnerUnsupported})
	}
	if _, ok := newStore(t).(session.Renamer); ok {
		storeTests = append(storeTests,
			storeTest{"RenameMoves", c.testRenameMoves},
			storeTest{"RenameRefusals", c.testRenameRefusals})
	}
	for _, tc := range c.lifetimeDeviceTests(newStore(t)) {
		storeTests = append(storeTests, storeTest(tc))
	}
	storeTests = append(storeTests,
		storeTest{"LoadedRecordIsSnapshot", c.testSnapshot},
		storeTest{"CancelledContext", c.testCancelled},
		storeTest{"ConcurrentIncrements", c.testConcurrentIncrements},
		storeTest{"ConcurrentDistinctKeys", c.testConcurrentDistinctKeys})
	for _, tc := range storeTests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t)) })
	}

	t.Run("Locker", func(t *testing.T) {
		if _, ok := newStore(t).(session.Locker); !ok {
			t.Skip("the store does not implement session.Locker")
		}
		lockerTests := []struct {
			name string
			run  func(*testing.T, session.Locker)
		}{
			{"MutualExclusion", testLockExclusion},
			{"UnlockTwice", testUnlockTwice},
			{"ContextEndsWait", testLockContext},
			{"ReleasedAtOnce", testLockReleased},
			{"KeysIndependent", testLockKeysIndependent},
			{"LeaseStore", func(t *testing.T, l session.Locker) { c.testLeaseStore(t, l) }},
		}
		for _, tc := range lockerTests {
			t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t).(session.Locker)) })
		}
	})
}

func testLoadMissing(t *testing.T, s session.Store) {
	_, err := s.Load(t.Context(), newKey(t))
	if !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load of a missing key: err = %v, want ErrNotFound", err)
	}
}

func (c *suite) testRoundTrip(t *testing.T, s session.Store) {
	ctx := t.Context()
	rich := c.newRecord(t, c.owner(t), map[string]any{
		"count":  1,
		"user":   "abc",
		"big":    1234567890123,
		"ratio":  0.25,
		"flag":   true,
		"none":   nil,
		"nested": map[string]any{"list": []any{1, "two", 3.5}, "empty": map[string]any{}},
		"text":   "é ✓ \u2028 <a&b> \"quoted\" \\ \n",
	})
	anonymous := c.newRecord(t, "", map[string]any{"n": 0})
	anonymous.Deadline = time.Time{}

	for _, tc := range []struct {
		name string
		rec  *session.Record
	}{
		{"owner and deadline", rich},
		{"no owner, zero deadline", anonymous},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := newKey(t)
			want := cloneRecord(tc.rec)
			if err := s.Create(ctx, key, tc.rec); err != nil {
				t.Fatalf("Create: %v", err)
			}
			got := mustLoad(t, s, key)
			c.checkRecord(t, got, want)
		})
	}
}

func (c *suite) testCreateOnLiveKey(t *testing.T, s session.Store) {
	ctx := t.Context()
	key := newKey(t)
	first := c.newRecord(t, "", map[string]any{"who": "first"})
	want := cloneRecord(first)
	mustCreate(t, s, key, first)

	err := s.Create(ctx, key, c.newRecord(t, "", map[string]any{"who": "second"}))
	if !errors.Is(err, session.ErrExists) {
		t.Fatalf("Create on a live key: err = %v, want ErrExists", err)
	}
	c.checkRecord(t, mustLoad(t, s, key), want)
}

func (c *suite) testCreateOverExpired(t *testing.T, s session.Store) {
	key := newKey(t)
	mustCreate(t, s, key, c.expiredRecord(t, "", map[string]any{"who": "old"}))

	fresh := c.newRecord(t, c.owner(t), map[string]any{"who": "new"})
	want := cloneRecord(fresh)
	if err := s.Create(t.Context(), key, fresh); err != nil {
		t.Fatalf("Create over an expired record: %v", err)
	}
	c.checkRecord(t, mustLoad(t, s, key), want)
}

func (c *suite) testUpdate(t *testing.T, s session.Store) {
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"count": 1, "gone": "x", "kept": "y"}))
	loaded := mustLoad(t, s, key)

	owner := c.owner(t)
	expires := c.stamp(time.Now().Add(2 * time.Hour))
	ch := &session.Change{
		Values:  encode(t, map[string]any{"count": 2, "user": "u1"}),
		Expires: expires,
	}
	ch.Values["gone"] = nil
	if owner != "" {
		ch.Owner = &owner
	}
	want := cloneRecord(loaded)
	want.Values = encode(t, map[string]any{"count": 2, "user": "u1", "kept": "y"})
	want.Owner, want.Expires = owner, expires
	got := mustUpdate(t, s, key, ch)
	c.checkRecord(t, got, want)
	saved := mustLoad(t, s, key)
	c.checkRecord(t, saved, want)
	if saved.Version == loaded.Version {
		t.Fatalf("Update kept version %d; the updated record needs a new one", saved.Version)
	}
	if got.Version != saved.Version {
		t.Fatalf("Update returned version %d, Load then gave %d", got.Version, saved.Version)
	}

	// A zero Expires and a nil Owner keep what is stored.
	want.Values = encode(t, map[string]any{"count": 3, "user": "u1", "kept": "y"})
	c.checkRecord(t, mustUpdate(t, s, key, &session.Change{Values: encode(t, map[string]any{"count": 3})}), want)
	c.checkRecord(t, mustLoad(t, s, key), want)
}

func (c *suite) testUpdateClearAndAdd(t *testing.T, s session.Store) {
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"a": 1, "b": 2, "n": 40}))
	want := cloneRecord(mustLoad(t, s, key))

	// Add: to a stored integer, and to a missing value, which counts as 0.
	want.Values = encode(t, map[string]any{"a": 1, "b": 2, "n": 42, "m": -3})
	c.checkRecord(t, mustUpdate(t, s, key, &session.Change{Add: map[string]int64{"n": 2, "m": -3}}), want)
	c.checkRecord(t, mustLoad(t, s, key), want)

	// Clear drops every stored value before the change's own apply.
	want.Values = encode(t, map[string]any{"c": "new", "n": 5})
	ch := &session.Change{Clear: true, Values: encode(t, map[string]any{"c": "new"}), Add: map[string]int64{"n": 5}}
	c.checkRecord(t, mustUpdate(t, s, key, ch), want)
	c.checkRecord(t, mustLoad(t, s, key), want)
}

// testUpdateRefused checks that a change the store must refuse (too large,
// an addition to a value that is not an integer, or past int64) changes
// nothing at all: not even the keys of the same change that were fine.
func (c *suite) testUpdateRefused(t *testing.T, s session.Store) {
	ctx := t.Context()
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"name": "ann", "big": math.MaxInt64}))
	want := cloneRecord(mustLoad(t, s, key))
	// {"big":9223372036854775807,"name":"ann","x":"<<"} is stored as 59
	// bytes: encoding/json writes each "<" as \u003c, six bytes.
	for _, tc := range []struct {
		name string
		ch   *session.Change
		want error
	}{
		{"over MaxSize", &session.Change{Values: encode(t, map[string]any{"x": "<<"}), MaxSize: 58}, session.ErrTooLarge},
		{"add to a string", &session.Change{Values: encode(t, map[string]any{"ok": 1}), Add: map[string]int64{"name": 1}}, session.ErrNotInteger},
		{"add past int64", &session.Change{Values: encode(t, map[string]any{"ok": 1}), Add: map[string]int64{"big": 1}}, session.ErrNotInteger},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Update(ctx, key, tc.ch); !errors.Is(err, tc.want) {
				t.Fatalf("Update: err = %v, want %v", err, tc.want)
			}
			c.checkRecord(t, mustLoad(t, s, key), want)
		})
	}
	// MaxSize counts exactly the stored bytes: the same change one byte
	// larger is accepted.
	ch := &session.Change{Values: encode(t, map[string]any{"x": "<<"}), MaxSize: 59}
	if _, err := s.Update(ctx, key, ch); err != nil {
		t.Fatalf("Update of exactly MaxSize bytes: %v", err)
	}
}

func (c *suite) testUpdateToEmpty(t *testing.T, s session.Store) {
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"only": 1}))
	got := mustUpdate(t, s, key, &session.Change{Values: map[string]json.RawMessage{"only": nil}})
	if len(got.Values) != 0 {
		t.Fatalf("Update that deletes the last value returned values %v", keysOf(got.Values))
	}
	mustBeGone(t, s, key, "after its last value was deleted")

	key = newKey(t)
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"a": 1, "b": 2}))
	if got := mustUpdate(t, s, key, &session.Change{Clear: true}); len(got.Values) != 0 {
		t.Fatalf("Update with Clear returned values %v", keysOf(got.Values))
	}
	mustBeGone(t, s, key, "after Clear")
}

func (c *suite) testUpdateNeverCreates(t *testing.T, s session.Store) {
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, key string)
	}{
		{"never created", func(*testing.T, string) {}},
		{"deleted", func(t *testing.T, key string) {
			mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"n": 1}))
			if err := s.Delete(ctx, key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := newKey(t)
			tc.setup(t, key)
			ch := &session.Change{Values: encode(t, map[string]any{"n": 2}), Add: map[string]int64{"c": 1}}
			if _, err := s.Update(ctx, key, ch); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("Update: err = %v, want ErrNotFound", err)
			}
			mustBeGone(t, s, key, "after Update")
		})
	}
}

func (c *suite) testTouch(t *testing.T, s session.Store) {
	ctx := t.Context()
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, c.owner(t), map[string]any{"count": 1}))
	before := mustLoad(t, s, key)

	expires := c.stamp(time.Now().Add(3 * time.Hour))
	if err := s.Touch(ctx, key, expires); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	after := mustLoad(t, s, key)
	want := cloneRecord(before)
	want.Expires = expires
	c.checkRecord(t, after, want)
	if after.Version != before.Version {
		t.Fatalf("Touch changed the version from %d to %d", before.Version, after.Version)
	}

	// The refreshed record takes changes as before.
	mustUpdate(t, s, key, &session.Change{Add: map[string]int64{"count": 1}})
	if got := mustLoad(t, s, key); string(got.Values["count"]) != "2" {
		t.Fatalf("count after Touch and Add = %s, want 2", got.Values["count"])
	}

	missing := newKey(t)
	if err := s.Touch(ctx, missing, expires); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch of a missing key: err = %v, want ErrNotFound", err)
	}
	mustBeGone(t, s, missing, "after Touch")
}

// testExpired stores records that are already past their Expires, so no
// cleanup can have run: the store must check expiry on the read itself.
func (c *suite) testExpired(t *testing.T, s session.Store) {
	ctx := t.Context()
	key := newKey(t)
	mustCreate(t, s, key, c.expiredRecord(t, "", map[string]any{"n": 1}))

	mustBeGone(t, s, key, "of an expired record")
	if err := s.Touch(ctx, key, c.stamp(time.Now().Add(time.Hour))); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch of an expired record: err = %v, want ErrNotFound", err)
	}
	mustBeGone(t, s, key, "after Touch revived an expired record")
	if _, err := s.Update(ctx, key, &session.Change{Values: encode(t, map[string]any{"n": 2})}); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Update of an expired record: err = %v, want ErrNotFound", err)
	}
	mustBeGone(t, s, key, "after Update")
}

// testExpiresWhileStored lets a live record's Expires pass after it was
// loaded, so that a past time at Create cannot explain the answer.
func (c *suite) testExpiresWhileStored(t *testing.T, s session.Store) {
	ctx := t.Context()
	var (
		key     string
		expires time.Time
		loaded  *session.Record
	)
	// The record must be loaded while it is live: a machine too slow to
	// Create and Load within the window gets a wider one, not a failure.
	for window := 250 * time.Millisecond; loaded == nil; window *= 2 {
		key = newKey(t)
		rec := c.newRecord(t, "", map[string]any{"n": 1})
		rec.Expires = c.stamp(time.Now().Add(window))
		expires = rec.Expires
		mustCreate(t, s, key, rec)
		var err error
		switch loaded, err = s.Load(ctx, key); {
		case err == nil && loaded == nil:
			t.Fatal("Load returned a nil record and no error")
		case err == nil:
		case !errors.Is(err, session.ErrNotFound) || time.Now().Before(expires):
			t.Fatalf("Load of a live record: %v", err)
		case window >= 4*time.Second:
			t.Fatalf("Create and Load took more than %v", window)
		}
	}

	time.Sleep(time.Until(expires) + 20*time.Millisecond)

	mustBeGone(t, s, key, "after Expires passed")
	ch := &session.Change{Values: encode(t, map[string]any{"n": 2}), Expires: c.stamp(time.Now().Add(time.Hour))}
	if _, err := s.Update(ctx, key, ch); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Update after Expires passed: err = %v, want ErrNotFound", err)
	}
	if err := s.Touch(ctx, key, c.stamp(time.Now().Add(time.Hour))); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch after Expires passed: err = %v, want ErrNotFound", err)
	}
	mustBeGone(t, s, key, "after Update and Touch")
}

func (c *suite) testDelete(t *testing.T, s session.Store) {
	ctx := t.Context()
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"n": 1}))
	for i := range 2 {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
		mustBeGone(t, s, key, "after Delete")
	}
	if err := s.Delete(ctx, newKey(t)); err != nil {
		t.Fatalf("Delete of a key never used: %v", err)
	}
	// The key is free again.
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"n": 2}))
}

func (c *suite) testDeleteOwner(t *testing.T, s session.Store) {
	ctx := t.Context()
	alice, bob := newOwner(t), newOwner(t)
	keys := map[string]string{} // name -> key
	for _, r := range []struct{ name, owner string }{
		{"alice1", alice}, {"alice2", alice}, {"alice3", alice},
		{"bob", bob}, {"anonymous", ""},
	} {
		keys[r.name] = newKey(t)
		mustCreate(t, s, keys[r.name], c.newRecord(t, r.owner, map[string]any{"name": r.name}))
	}

	steps := []struct {
		owner, except string
		wantN         int
		gone, kept    []string
	}{
		{alice, keys["alice2"], 2, []string{"alice1", "alice3"}, []string{"alice2", "bob", "anonymous"}},
		{alice, "", 1, []string{"alice2"}, []string{"bob", "anonymous"}},
		{"", "", 0, nil, []string{"bob", "anonymous"}},
		{newOwner(t), "", 0, nil, []string{"bob", "anonymous"}},
		{bob, keys["bob"], 0, nil, []string{"bob", "anonymous"}},
		{bob, newKey(t), 1, []string{"bob"}, []string{"anonymous"}},
	}
	o := s.(session.OwnerStore)
	for i, st := range steps {
		n, err := o.DeleteOwner(ctx, st.owner, st.except)
		if err != nil {
			t.Fatalf("step %d: DeleteOwner: %v", i, err)
		}
		if n != st.wantN {
			t.Errorf("step %d: DeleteOwner removed %d records, want %d", i, n, st.wantN)
		}
		for _, name := range st.gone {
			mustBeGone(t, s, keys[name], "of "+name+" after DeleteOwner")
		}
		for _, name := range st.kept {
			if _, err := s.Load(ctx, keys[name]); err != nil {
				t.Fatalf("step %d: Load of %s: %v, want it kept", i, name, err)
			}
		}
	}
}

// testRenameMoves checks a session.Renamer: the live record moves to the
// new key with the change applied, in one step, and its owner index
// follows it; a change that leaves no values only deletes.
func (c *suite) testRenameMoves(t *testing.T, s session.Store) {
	ctx := t.Context()
	r := s.(session.Renamer)
	from, to := newKey(t), newKey(t)
	owner := c.owner(t)
	mustCreate(t, s, from, c.newRecord(t, "", map[string]any{"cart": 2, "user": "anon"}))
	want := cloneRecord(mustLoad(t, s, from))
	expires := c.stamp(time.Now().Add(3 * time.Hour))
	ch := &session.Change{Values: encode(t, map[string]any{"user": "ann"}), Add: map[string]int64{"cart": 1}, Expires: expires}
	if owner != "" {
		ch.Owner = &owner
	}
	want.Values = encode(t, map[string]any{"cart": 3, "user": "ann"})
	want.Owner, want.Expires = owner, expires
	got, err := r.Rename(ctx, from, to, ch)
	if err != nil {
		t.Fatalf("Rename: %v", err)
	}
	c.checkRecord(t, got, want)
	c.checkRecord(t, mustLoad(t, s, to), want)
	mustBeGone(t, s, from, "of the old key after Rename")
	if o, ok := s.(session.OwnerStore); ok {
		if n, err := o.DeleteOwner(ctx, owner, ""); err != nil || n != 1 {
			t.Fatalf("DeleteOwner after Rename = %d, %v; want 1, nil", n, err)
		}
		mustBeGone(t, s, to, "after DeleteOwner")
	}

	// Emptied on the way: the old record goes, nothing is created.
	from, to = newKey(t), newKey(t)
	mustCreate(t, s, from, c.newRecord(t, "", map[string]any{"only": 1}))
	got, err = r.Rename(ctx, from, to, &session.Change{Clear: true})
	if err != nil || len(got.Values) != 0 {
		t.Fatalf("Rename that empties = %v, %v; want no values", got, err)
	}
	mustBeGone(t, s, from, "after an emptying Rename")
	mustBeGone(t, s, to, "after an emptying Rename")

	// An expired record under the new key does not stand in the way.
	from, to = newKey(t), newKey(t)
	mustCreate(t, s, from, c.newRecord(t, "", map[string]any{"n": 1}))
	mustCreate(t, s, to, c.expiredRecord(t, "", map[string]any{"stale": true}))
	if _, err := r.Rename(ctx, from, to, &session.Change{}); err != nil {
		t.Fatalf("Rename onto an expired record: %v", err)
	}
	if got := mustLoad(t, s, to); got.Values["stale"] != nil || string(got.Values["n"]) != "1" {
		t.Fatalf("after Rename onto an expired record the new key holds %v", keysOf(got.Values))
	}
}

// testRenameRefusals checks that a Rename that cannot happen changes
// nothing: the old record gone (a concurrent logout won), the new key
// taken, or a change the store refuses.
func (c *suite) testRenameRefusals(t *testing.T, s session.Store) {
	ctx := t.Context()
	r := s.(session.Renamer)
	from, to := newKey(t), newKey(t)
	if _, err := r.Rename(ctx, from, to, &session.Change{}); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Rename of a missing key: err = %v, want ErrNotFound", err)
	}
	mustBeGone(t, s, to, "after a Rename of a missing key")

	mustCreate(t, s, from, c.newRecord(t, "", map[string]any{"who": "from"}))
	mustCreate(t, s, to, c.newRecord(t, "", map[string]any{"who": "to"}))
	wantFrom, wantTo := cloneRecord(mustLoad(t, s, from)), cloneRecord(mustLoad(t, s, to))
	if _, err := r.Rename(ctx, from, to, &session.Change{}); !errors.Is(err, session.ErrExists) {
		t.Fatalf("Rename onto a live key: err = %v, want ErrExists", err)
	}
	c.checkRecord(t, mustLoad(t, s, from), wantFrom)
	c.checkRecord(t, mustLoad(t, s, to), wantTo)

	free := newKey(t)
	for _, ch := range []*session.Change{
		{Values: encode(t, map[string]any{"big": strings.Repeat("x", 100)}), MaxSize: 50},
		{Add: map[string]int64{"who": 1}},
	} {
		if _, err := r.Rename(ctx, from, free, ch); !errors.Is(err, session.ErrTooLarge) && !errors.Is(err, session.ErrNotInteger) {
			t.Fatalf("Rename with a refused change: err = %v", err)
		}
		c.checkRecord(t, mustLoad(t, s, from), wantFrom)
		mustBeGone(t, s, free, "after a refused Rename")
	}
}

// testOwnerUnsupported checks that a store that keeps no owner (it does not
// implement session.OwnerStore) refuses one loudly and changes nothing,
// rather than dropping it: a "log out everywhere" that silently ends
// nothing would be worse than an error.
func (c *suite) testOwnerUnsupported(t *testing.T, s session.Store) {
	ctx := t.Context()
	key := newKey(t)
	if err := s.Create(ctx, key, c.newRecord(t, newOwner(t), map[string]any{"n": 1})); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Create with an owner: err = %v, want errors.ErrUnsupported", err)
	}
	mustBeGone(t, s, key, "after a refused Create")

	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"n": 1}))
	want := cloneRecord(mustLoad(t, s, key))
	owner := newOwner(t)
	ch := &session.Change{Values: encode(t, map[string]any{"n": 2}), Owner: &owner}
	if _, err := s.Update(ctx, key, ch); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Update with an owner: err = %v, want errors.ErrUnsupported", err)
	}
	c.checkRecord(t, mustLoad(t, s, key), want)
}

// testDeleteOwnerFollowsUpdate checks that DeleteOwner sees the owner a
// record has now, not the one it was created with: logging in sets the
// owner of an anonymous session, and "log out everywhere" must find it.
func (c *suite) testDeleteOwnerFollowsUpdate(t *testing.T, s session.Store) {
	ctx := t.Context()
	o := s.(session.OwnerStore)
	before, after := newOwner(t), newOwner(t)
	for _, tc := range []struct{ name, from string }{
		{"owner set", ""},
		{"owner changed", before},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := newKey(t)
			mustCreate(t, s, key, c.newRecord(t, tc.from, map[string]any{"n": 1}))
			mustUpdate(t, s, key, &session.Change{Owner: &after, Add: map[string]int64{"n": 1}})

			if tc.from != "" {
				if n, err := o.DeleteOwner(ctx, tc.from, ""); err != nil || n != 0 {
					t.Fatalf("DeleteOwner of the former owner = %d, %v; want 0, nil", n, err)
				}
				mustLoad(t, s, key)
			}
			if n, err := o.DeleteOwner(ctx, after, ""); err != nil || n != 1 {
				t.Fatalf("DeleteOwner of the new owner = %d, %v; want 1, nil", n, err)
			}
			mustBeGone(t, s, key, "after DeleteOwner")
		})
	}
}

// testSnapshot checks that a loaded record is a snapshot: the middleware reads
// it for the whole request while other requests of the session write.
func (c *suite) testSnapshot(t *testing.T, s session.Store) {
	ctx := t.Context()
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, c.owner(t), map[string]any{"count": 1, "user": "u1"}))
	loaded := mustLoad(t, s, key)
	snapshot := cloneRecord(loaded)

	// Touch both before and after the Update: either may be what a store
	// gets wrong by writing into the record it handed out.
	touch := func(d time.Duration) {
		t.Helper()
		if err := s.Touch(ctx, key, c.stamp(time.Now().Add(d))); err != nil {
			t.Fatalf("Touch: %v", err)
		}
	}
	touch(4 * time.Hour)
	ch := &session.Change{Values: encode(t, map[string]any{"count": 2, "extra": true, "user": nil})}
	if owner := c.owner(t); owner != "" {
		ch.Owner = &owner
	}
	mustUpdate(t, s, key, ch)
	mustUpdate(t, s, key, &session.Change{Add: map[string]int64{"count": 1}})
	touch(5 * time.Hour)

	c.checkRecord(t, loaded, snapshot)
	if loaded.Version != snapshot.Version {
		t.Fatalf("loaded record's version changed from %d to %d", snapshot.Version, loaded.Version)
	}
	for k, v := range snapshot.Values {
		if !bytes.Equal(loaded.Values[k], v) {
			t.Fatalf("loaded record's value %q changed from %s to %s", k, v, loaded.Values[k])
		}
	}
}

func (c *suite) testCancelled(t *testing.T, s session.Store) {
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, c.owner(t), map[string]any{"n": 1}))
	loaded := mustLoad(t, s, key)
	freshKey, fresh := newKey(t), c.newRecord(t, "", map[string]any{"n": 1})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	// Each call targets a key where it would otherwise succeed, so only the
	// context can explain the error.
	type call struct {
		name string
		call func() error
	}
	calls := []call{
		{"Load", func() error { _, err := s.Load(ctx, key); return err }},
		{"Create", func() error { return s.Create(ctx, freshKey, fresh) }},
		{"Update", func() error {
			_, err := s.Update(ctx, key, &session.Change{Values: encode(t, map[string]any{"n": 2})})
			return err
		}},
		{"Touch", func() error { return s.Touch(ctx, key, c.stamp(time.Now().Add(time.Hour))) }},
		{"Delete", func() error { return s.Delete(ctx, key) }},
	}
	if o, ok := s.(session.OwnerStore); ok {
		calls = append(calls, call{"DeleteOwner", func() error { _, err := o.DeleteOwner(ctx, loaded.Owner, ""); return err }})
	}
	if d, ok := s.(session.DeviceStore); ok {
		calls = append(calls,
			call{"Devices", func() error { _, err := d.Devices(ctx, loaded.Owner, 10); return err }},
			call{"DeleteDevice", func() error { _, err := d.DeleteDevice(ctx, loaded.Owner, "h"); return err }})
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, context.Canceled) {
				t.Fatalf("%s with a cancelled context: err = %v, want context.Canceled", tc.name, err)
			}
		})
	}
}

// testConcurrentIncrements has many writers add to one counter at once: an
// atomic Update keeps every addition.
func (c *suite) testConcurrentIncrements(t *testing.T, s session.Store) {
	const workers, increments = 20, 5
	ctx := t.Context()
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"count": 0}))

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range increments {
				if _, err := s.Update(ctx, key, &session.Change{Add: map[string]int64{"count": 1}}); err != nil {
					t.Errorf("increment: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()

	if got := string(mustLoad(t, s, key).Values["count"]); got != fmt.Sprint(workers*increments) {
		t.Fatalf("count = %s after %d increments; Update lost some", got, workers*increments)
	}
}

func (c *suite) testConcurrentDistinctKeys(t *testing.T, s session.Store) {
	const workers = 20
	ctx := t.Context()
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"base": true}))

	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("worker%02d", i)
			ch := &session.Change{Values: map[string]json.RawMessage{name: json.RawMessage(`true`)}}
			if _, err := s.Update(ctx, key, ch); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	wg.Wait()

	values := mustLoad(t, s, key).Values
	if len(values) != workers+1 {
		t.Errorf("record has %d values, want %d: %v", len(values), workers+1, keysOf(values))
	}
	for i := range workers {
		if name := fmt.Sprintf("worker%02d", i); values[name] == nil {
			t.Errorf("value %q was lost", name)
		}
	}
}

func testLockExclusion(t *testing.T, l session.Locker) {
	const workers, rounds = 10, 3
	ctx := t.Context()
	key := newKey(t)
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				lease, err := l.Lock(ctx, key)
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				time.Sleep(time.Millisecond) // give an overlapping holder time to show up
				inside.Add(-1)
				if err := lease.Unlock(); err != nil {
					t.Errorf("Unlock: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d times a holder got the lock while another held it", n)
	}
}

func testUnlockTwice(t *testing.T, l session.Locker) {
	ctx := t.Context()
	key := newKey(t)
	first := mustLock(t, l, key)
	first()

	second := mustLock(t, l, key)
	// A stale second release must neither block nor free the current
	// holder's lock. It runs on another goroutine, as releases may, so a
	// store that blocks fails the test instead of hanging it.
	if !returnsWithin(patience, first) {
		t.Fatal("a repeated unlock blocked")
	}
	if unlock, err := lockWithin(t, ctx, l, key, 50*time.Millisecond); err == nil {
		unlock()
		t.Fatal("a repeated unlock released another holder's lock")
	}
	if !returnsWithin(patience, second) {
		t.Fatal("unlock blocked")
	}
	mustLock(t, l, key)()
}

// returnsWithin reports whether f returns within d, running it on another
// goroutine.
func returnsWithin(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func testLockContext(t *testing.T, l session.Locker) {
	key := newKey(t)
	defer mustLock(t, l, key)()

	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			lease, err := l.Lock(ctx, key)
			if err == nil {
				_ = lease.Unlock()
				t.Fatal("Lock succeeded while another holder has the lock")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Lock: err = %v, want it to wrap %v", err, tc.want)
			}
		})
	}
}

func testLockReleased(t *testing.T, l session.Locker) {
	ctx := t.Context()
	key := newKey(t)
	unlock := mustLock(t, l, key)

	acquired := make(chan error, 1)
	go func() {
		unlock, err := lockWithin(t, ctx, l, key, patience)
		if err == nil {
			unlock()
		}
		acquired <- err
	}()
	time.Sleep(10 * time.Millisecond) // let the waiter block
	unlock()
	if err := <-acquired; err != nil {
		t.Fatalf("waiter did not get the lock after the holder released it: %v", err)
	}

	unlock, err := lockWithin(t, ctx, l, key, patience)
	if err != nil {
		t.Fatalf("Lock after every holder released it: %v", err)
	}
	unlock()
}

func testLockKeysIndependent(t *testing.T, l session.Locker) {
	ctx := t.Context()
	defer mustLock(t, l, newKey(t))()
	unlock, err := lockWithin(t, ctx, l, newKey(t), patience)
	if err != nil {
		t.Fatalf("Lock of a second key while the first is held: %v", err)
	}
	unlock()
}

// patience bounds the waits that must succeed. It is generous because it
// costs nothing when the store is right, and a loaded database can take a
// while to hand a lock over; the waits that must fail are short.
const patience = 5 * time.Second

func mustLock(t *testing.T, l session.Locker, key string) func() {
	t.Helper()
	unlock, err := lockWithin(t, t.Context(), l, key, patience)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	return unlock
}

// lockWithin takes key's lock, waiting at most d, and returns the function
// that releases it, which reports a failed Unlock as a test error.
func lockWithin(t testing.TB, ctx context.Context, l session.Locker, key string, d time.Duration) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	lease, err := l.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	return func() {
		if err := lease.Unlock(); err != nil {
			t.Errorf("Unlock: %v", err)
		}
	}, nil
}

// testLeaseStore checks that the lease's store serves the holder: it sees
// what the plain store stored, and what it stores the plain store sees.
func (c *suite) testLeaseStore(t *testing.T, l session.Locker) {
	s := l.(session.Store)
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"n": 1}))
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	lease, err := l.Lock(ctx, key)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	ls := lease.Store()
	if got := string(mustLoad(t, ls, key).Values["n"]); got != "1" {
		t.Fatalf("n through the lease's store = %s, want 1", got)
	}
	mustUpdate(t, ls, key, &session.Change{Add: map[string]int64{"n": 1}})
	fresh := newKey(t)
	mustCreate(t, ls, fresh, c.newRecord(t, "", map[string]any{"m": 1}))
	if err := lease.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if err := lease.Unlock(); err != nil {
		t.Fatalf("second Unlock: %v", err)
	}
	if got := string(mustLoad(t, s, key).Values["n"]); got != "2" {
		t.Fatalf("n after the holder's Update = %s, want 2", got)
	}
	mustLoad(t, s, fresh)
}

// newKey returns a random key shaped like the default one, a hex SHA-256, so
// that keys of different runs against one database never meet.
func newKey(t testing.TB) string {
	return randomHex(t, 32)
}

func newOwner(t testing.TB) string {
	return "sessiontest-" + randomHex(t, 8)
}

// owner returns a fresh owner, or "" when the store keeps none.
func (c *suite) owner(t testing.TB) string {
	if !c.owners {
		return ""
	}
	return newOwner(t)
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("crypto/rand: %v", err)
	}
	return hex.EncodeToString(b)
}

// stamp gives a time the precision every store keeps.
func (c *suite) stamp(t time.Time) time.Time {
	return t.UTC().Truncate(c.Precision)
}

func encode(t testing.TB, values map[string]any) map[string]json.RawMessage {
	t.Helper()
	out := make(map[string]json.RawMessage, len(values))
	for k, v := range values {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode %q: %v", k, err)
		}
		out[k] = b
	}
	return out
}

func (c *suite) newRecord(t testing.TB, owner string, values map[string]any) *session.Record {
	now := c.stamp(time.Now())
	return &session.Record{
		Values:   encode(t, values),
		Owner:    owner,
		Created:  now,
		Expires:  now.Add(time.Hour),
		Deadline: now.Add(24 * time.Hour),
	}
}

func (c *suite) expiredRecord(t testing.TB, owner string, values map[string]any) *session.Record {
	rec := c.newRecord(t, owner, values)
	rec.Created = rec.Created.Add(-2 * time.Hour)
	rec.Expires = rec.Expires.Add(-2 * time.Hour)
	return rec
}

// cloneRecord copies rec deeply enough that neither copy can change the
// other: the store may share what it returns from Load between callers.
func cloneRecord(rec *session.Record) *session.Record {
	c := *rec
	c.Values = make(map[string]json.RawMessage, len(rec.Values))
	for k, v := range rec.Values {
		c.Values[k] = bytes.Clone(v)
	}
	return &c
}

func mustCreate(t *testing.T, s session.Store, key string, rec *session.Record) {
	t.Helper()
	if err := s.Create(t.Context(), key, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

func mustLoad(t *testing.T, s session.Store, key string) *session.Record {
	t.Helper()
	rec, err := s.Load(t.Context(), key)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if rec == nil {
		t.Fatal("Load returned a nil record and no error")
	}
	return rec
}

func mustUpdate(t *testing.T, s session.Store, key string, ch *session.Change) *session.Record {
	t.Helper()
	rec, err := s.Update(t.Context(), key, ch)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if rec == nil {
		t.Fatal("Update returned a nil record and no error")
	}
	return rec
}

func mustBeGone(t *testing.T, s session.Store, key, when string) {
	t.Helper()
	if rec, err := s.Load(t.Context(), key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load %s = %+v, %v; want ErrNotFound", when, rec, err)
	}
}

// checkRecord compares everything a store must keep; Version is the store's
// own and is checked where the contract says what it must be.
func (c *suite) checkRecord(t *testing.T, got, want *session.Record) {
	t.Helper()
	if c.NoCreatedDeadline {
		w := *want
		w.Created, w.Deadline = time.Time{}, time.Time{}
		want = &w
	}
	if diff := diffValues(got.Values, want.Values); diff != "" {
		t.Errorf("Values: %s", diff)
	}
	if got.Owner != want.Owner {
		t.Errorf("Owner = %q, want %q", got.Owner, want.Owner)
	}
	if got.IdleTimeout != want.IdleTimeout || got.Persist != want.Persist || got.Label != want.Label || got.Handle != want.Handle {
		t.Errorf("IdleTimeout, Persist, Label, Handle = %v, %d, %q, %q; want %v, %d, %q, %q",
			got.IdleTimeout, got.Persist, got.Label, got.Handle, want.IdleTimeout, want.Persist, want.Label, want.Handle)
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"Created", got.Created, want.Created},
		{"Expires", got.Expires, want.Expires},
		{"Deadline", got.Deadline, want.Deadline},
	} {
		if !f.got.Equal(f.want) {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
}

// diffValues compares values as JSON documents rather than bytes.
func diffValues(got, want map[string]json.RawMessage) string {
	if len(got) != len(want) {
		return "keys " + keysOf(got) + ", want " + keysOf(want)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			return "missing key " + k
		}
		var gv, wv any
		if err := json.Unmarshal(g, &gv); err != nil {
			return k + ": stored value is not JSON: " + err.Error()
		}
		if err := json.Unmarshal(w, &wv); err != nil {
			return k + ": " + err.Error()
		}
		if !reflect.DeepEqual(gv, wv) {
			return k + " = " + string(g) + ", want " + string(w)
		}
	}
	return ""
}

func keysOf(values map[string]json.RawMessage) string {
	return fmt.Sprint(slices.Sorted(maps.Keys(values)))
}
