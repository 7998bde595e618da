package sessiontest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// The checks of a session's own lifetime and label (Record.IdleTimeout,
// Persist, Label, Handle), and of session.DeviceStore.

// namedTest is one store test of RunWith.
type namedTest struct {
	name string
	run  func(*testing.T, session.Store)
}

// lifetimeDeviceTests are the checks that apply to s. A session.DeviceStore
// keeps a session's own lifetime, label and handle, and lists and ends
// devices; a store that RunOptions says keeps none of them refuses them.
// Other stores are not checked for them.
func (c *suite) lifetimeDeviceTests(s session.Store) []namedTest {
	if c.NoLifetimeLabel {
		return []namedTest{{"LifetimeLabelRefused", c.testLifetimeLabelRefused}}
	}
	if _, ok := s.(session.DeviceStore); !ok {
		return nil
	}
	return []namedTest{
		{"LifetimeLabelRoundTrip", c.testLifetimeLabelRoundTrip},
		{"Devices", c.testDevices},
		{"DeleteDevice", c.testDeleteDevice},
	}
}

// newHandle returns a handle shaped like the middleware's: 22 characters
// of base64url.
func newHandle(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("crypto/rand: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// remembered returns a record with its own lifetime, label and handle.
func (c *suite) remembered(t testing.TB, owner string, values map[string]any) *session.Record {
	rec := c.newRecord(t, owner, values)
	rec.IdleTimeout, rec.Persist = 36*time.Hour, session.CookiePersistent
	rec.Label, rec.Handle = "Firefox on macOS é ✓", newHandle(t)
	return rec
}

// testLifetimeLabelRoundTrip checks that a store keeps the fields that
// session.Session.Remember and SetLabel set, and the handle: through
// Create, an Update that changes them and one that does not, Touch and
// Rename (Regenerate keeps them).
func (c *suite) testLifetimeLabelRoundTrip(t *testing.T, s session.Store) {
	key := newKey(t)
	rec := c.remembered(t, c.owner(t), map[string]any{"n": 1})
	want := cloneRecord(rec)
	mustCreate(t, s, key, rec)
	c.checkRecord(t, mustLoad(t, s, key), want)

	label := "Safari on iOS"
	life := &session.Lifetime{IdleTimeout: 90 * time.Minute, Deadline: c.stamp(time.Now().Add(48 * time.Hour)), Persist: session.CookieBrowserSession}
	want.Label, want.IdleTimeout, want.Deadline, want.Persist = label, life.IdleTimeout, life.Deadline, life.Persist
	want.Values = encode(t, map[string]any{"n": 2})
	c.checkRecord(t, mustUpdate(t, s, key, &session.Change{Add: map[string]int64{"n": 1}, Label: &label, Lifetime: life}), want)
	c.checkRecord(t, mustLoad(t, s, key), want)

	// A change that leaves them, with or without a base, keeps them.
	base := mustLoad(t, s, key)
	want.Values = encode(t, map[string]any{"n": 3})
	c.checkRecord(t, mustUpdate(t, s, key, &session.Change{Add: map[string]int64{"n": 1}, Base: base}), want)
	want.Values = encode(t, map[string]any{"n": 4})
	want.Expires = c.stamp(time.Now().Add(2 * time.Hour))
	c.checkRecord(t, mustUpdate(t, s, key, &session.Change{Add: map[string]int64{"n": 1}, Expires: want.Expires}), want)
	c.checkRecord(t, mustLoad(t, s, key), want)

	want.Expires = c.stamp(time.Now().Add(3 * time.Hour))
	if err := s.Touch(t.Context(), key, want.Expires); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	c.checkRecord(t, mustLoad(t, s, key), want)

	if r, ok := s.(session.Renamer); ok {
		to := newKey(t)
		got, err := r.Rename(t.Context(), key, to, &session.Change{})
		if err != nil {
			t.Fatalf("Rename: %v", err)
		}
		c.checkRecord(t, got, want)
		c.checkRecord(t, mustLoad(t, s, to), want)
	}
}

// testLifetimeLabelRefused checks that a store that keeps none of the
// fields refuses them loudly and changes nothing, rather than dropping
// them: a "remember me" that silently ends after a day, or a label that
// vanishes, would be worse than an error.
func (c *suite) testLifetimeLabelRefused(t *testing.T, s session.Store) {
	ctx := t.Context()
	for name, set := range map[string]func(*session.Record){
		"IdleTimeout": func(r *session.Record) { r.IdleTimeout = time.Hour },
		"Persist":     func(r *session.Record) { r.Persist = session.CookiePersistent },
		"Label":       func(r *session.Record) { r.Label = "Firefox" },
		"Handle":      func(r *session.Record) { r.Handle = newHandle(t) },
	} {
		key := newKey(t)
		rec := c.newRecord(t, "", map[string]any{"n": 1})
		set(rec)
		if err := s.Create(ctx, key, rec); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("Create with %s set: err = %v, want errors.ErrUnsupported", name, err)
		}
		mustBeGone(t, s, key, "after a refused Create")
	}
	key := newKey(t)
	mustCreate(t, s, key, c.newRecord(t, "", map[string]any{"n": 1}))
	want := cloneRecord(mustLoad(t, s, key))
	label := "Firefox"
	for name, ch := range map[string]*session.Change{
		"Lifetime": {Add: map[string]int64{"n": 1}, Lifetime: &session.Lifetime{IdleTimeout: time.Hour, Persist: session.CookiePersistent}},
		"Label":    {Add: map[string]int64{"n": 1}, Label: &label},
	} {
		if _, err := s.Update(ctx, key, ch); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("Update with a %s: err = %v, want errors.ErrUnsupported", name, err)
		}
		c.checkRecord(t, mustLoad(t, s, key), want)
	}
}

// testDevices checks session.DeviceStore.Devices: an owner's live records,
// with what a list of devices shows, the latest to expire first when
// limited, and nobody else's.
func (c *suite) testDevices(t *testing.T, s session.Store) {
	ctx := t.Context()
	d := s.(session.DeviceStore)
	alice, bob := newOwner(t), newOwner(t)
	laptop := c.remembered(t, alice, map[string]any{"n": 1})
	phone := c.newRecord(t, alice, map[string]any{"n": 2})
	phone.Label, phone.Handle = "phone", newHandle(t)
	phone.Expires = phone.Expires.Add(30 * time.Minute) // expires last
	gone := c.expiredRecord(t, alice, map[string]any{"n": 3})
	gone.Handle = newHandle(t)
	other := c.remembered(t, bob, map[string]any{"n": 4})
	for _, rec := range []*session.Record{laptop, phone, gone, other, c.newRecord(t, "", map[string]any{"n": 5})} {
		mustCreate(t, s, newKey(t), rec)
	}
	byHandle := func(list []session.DeviceRecord) map[string]session.DeviceRecord {
		m := make(map[string]session.DeviceRecord, len(list))
		for _, r := range list {
			m[r.Handle] = r
		}
		return m
	}
	got, err := d.Devices(ctx, alice, 10)
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("Devices of an owner with two live records and an expired one = %+v", got)
	}
	m := byHandle(got)
	for _, want := range []*session.Record{laptop, phone} {
		g, ok := m[want.Handle]
		switch {
		case !ok:
			t.Errorf("Devices left out the record labelled %q", want.Label)
		case g.Label != want.Label || !g.Created.Equal(want.Created) || !g.Expires.Equal(want.Expires) || g.IdleTimeout != want.IdleTimeout:
			t.Errorf("Devices = %+v, want handle %q, label %q, created %v, expires %v, idle timeout %v",
				g, want.Handle, want.Label, want.Created, want.Expires, want.IdleTimeout)
		}
	}
	if got, err := d.Devices(ctx, alice, 1); err != nil || len(got) != 1 || got[0].Handle != phone.Handle {
		t.Errorf("Devices with limit 1 = %+v, %v; want the record that expires last", got, err)
	}
	for _, owner := range []string{"", newOwner(t), alice + " ", strings.ToUpper(alice)} {
		if got, err := d.Devices(ctx, owner, 10); err != nil || len(got) != 0 {
			t.Errorf("Devices(%q) = %+v, %v; want none", owner, got, err)
		}
	}

	// The list follows the owner a record has now.
	key := newKey(t)
	mustCreate(t, s, key, c.remembered(t, "", map[string]any{"n": 6}))
	mustUpdate(t, s, key, &session.Change{Owner: &bob})
	if got, err := d.Devices(ctx, bob, 10); err != nil || len(got) != 2 {
		t.Errorf("Devices after an Update gave a record its owner = %+v, %v; want 2", got, err)
	}
}

// testDeleteDevice checks session.DeviceStore.DeleteDevice: it ends one
// live record of the owner by its handle, exactly, and nothing else.
func (c *suite) testDeleteDevice(t *testing.T, s session.Store) {
	ctx := t.Context()
	d := s.(session.DeviceStore)
	alice, bob := newOwner(t), newOwner(t)
	keys := map[string]string{}
	recs := map[string]*session.Record{
		"laptop":    c.remembered(t, alice, map[string]any{"n": 1}),
		"phone":     c.remembered(t, alice, map[string]any{"n": 2}),
		"nohandle":  c.newRecord(t, alice, map[string]any{"n": 3}),
		"expired":   c.expiredRecord(t, alice, map[string]any{"n": 4}),
		"bobs":      c.remembered(t, bob, map[string]any{"n": 5}),
		"anonymous": c.remembered(t, "", map[string]any{"n": 6}),
	}
	recs["expired"].Handle = newHandle(t)
	handles := map[string]string{}
	for name, rec := range recs {
		keys[name], handles[name] = newKey(t), rec.Handle
		mustCreate(t, s, keys[name], rec)
	}
	deleteDevice := func(owner, handle string, want bool) {
		t.Helper()
		if got, err := d.DeleteDevice(ctx, owner, handle); err != nil || got != want {
			t.Fatalf("DeleteDevice(%q, %q) = %v, %v; want %v", owner, handle, got, err, want)
		}
	}
	live := func(names ...string) {
		t.Helper()
		for _, name := range names {
			if _, err := s.Load(ctx, keys[name]); err != nil {
				t.Fatalf("Load of %s: %v, want it kept", name, err)
			}
		}
	}
	// Another owner's handle, a handle almost right, an empty one (which
	// must not match a record without a handle), an expired record's, an
	// anonymous record's: nothing.
	deleteDevice(bob, handles["laptop"], false)
	deleteDevice(alice, handles["laptop"]+" ", false)
	deleteDevice(alice, strings.ToUpper(handles["laptop"]), false)
	deleteDevice(alice, handles["laptop"][:10], false)
	deleteDevice(alice, "", false)
	deleteDevice("", handles["anonymous"], false)
	deleteDevice(alice, handles["expired"], false)
	deleteDevice(alice+" ", handles["laptop"], false)
	live("laptop", "phone", "nohandle", "bobs", "anonymous")

	deleteDevice(alice, handles["laptop"], true)
	mustBeGone(t, s, keys["laptop"], "after DeleteDevice")
	live("phone", "nohandle", "bobs", "anonymous")
	deleteDevice(alice, handles["laptop"], false)
	if got, err := d.Devices(ctx, alice, 10); err != nil || len(got) != 2 {
		t.Fatalf("Devices after DeleteDevice = %+v, %v; want the phone and the record without a handle", got, err)
	}

	// DeleteOwner still finds what is left.
	if n, err := d.DeleteOwner(ctx, alice, keys["phone"]); err != nil || n < 1 {
		t.Fatalf("DeleteOwner after DeleteDevice = %d, %v", n, err)
	}
	live("phone")
	mustBeGone(t, s, keys["nohandle"], "after DeleteOwner")
}
