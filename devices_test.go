package session_test

// "Your devices": the live sessions of an owner, listed and ended through
// real HTTP (the routes are accountRoutes, in remember_test.go), on the
// memory store and on MySQL.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
)

// deviceStores are the stores of this module that implement DeviceStore,
// each opened fresh for a test.
var deviceStores = []struct {
	name string
	open func(t *testing.T) session.Store
}{
	{"memory", func(t *testing.T) session.Store { return newMemory(t) }},
	{"mysql", func(t *testing.T) session.Store {
		cfg, table := sqltest.Table(t)
		return newMySQLTestStore(t, sqltest.OpenDB(t, cfg), table)
	}},
}

// forDeviceStores runs test once on each store that lists devices.
func forDeviceStores(t *testing.T, test func(t *testing.T, st session.Store)) {
	for _, ds := range deviceStores {
		t.Run(ds.name, func(t *testing.T) {
			t.Parallel()
			test(t, ds.open(t))
		})
	}
}

// login logs u in with a browser of its own, which it returns.
func login(t *testing.T, srv *server, u, label string) *http.Client {
	t.Helper()
	b := newBrowser(t)
	q := url.Values{"u": {u}, "label": {label}}
	if res, body := fetch(t, b, srv.URL+"/login?"+q.Encode()); res.StatusCode != http.StatusOK || body != u {
		t.Fatalf("login of %s: %d %q", u, res.StatusCode, body)
	}
	return b
}

// devicesOf returns the device list that the session with cookie value id
// sees.
func devicesOf(t *testing.T, srv *server, id string) []session.Device {
	t.Helper()
	res, body := srv.sendID("/devices", id)
	return decodeDevices(t, res, body)
}

// browserDevices is devicesOf for a browser.
func browserDevices(t *testing.T, srv *server, b *http.Client) []session.Device {
	t.Helper()
	res, body := fetch(t, b, srv.URL+"/devices")
	return decodeDevices(t, res, body)
}

func decodeDevices(t *testing.T, res *http.Response, body string) []session.Device {
	t.Helper()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/devices: %d %s", res.StatusCode, body)
	}
	var list []session.Device
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("/devices: %v: %s", err, body)
	}
	return list
}

// byLabel finds the device labelled label.
func byLabel(t *testing.T, list []session.Device, label string) session.Device {
	t.Helper()
	for _, d := range list {
		if d.Label == label {
			return d
		}
	}
	t.Fatalf("no device labelled %q in %+v", label, list)
	panic("unreachable")
}

func who(t *testing.T, srv *server, b *http.Client) string {
	t.Helper()
	_, body := fetch(t, b, srv.URL+"/who")
	return body
}

// TestDevicesListAndEnd: a user sees their live sessions with the labels
// the app gave them, this one marked current, and ends one by its handle,
// all but this one, or this one; nobody else's session is listed or can be
// ended.
func TestDevicesListAndEnd(t *testing.T) {
	t.Parallel()
	forDeviceStores(t, func(t *testing.T, st session.Store) {
		srv := newServer(t, session.Options{Store: st}, accountRoutes())
		start := time.Now().Add(-time.Second)
		laptop := login(t, srv, "ann", "Laptop")
		phone := login(t, srv, "ann", "Phone")
		tablet := login(t, srv, "ann", "Tablet")
		bob := login(t, srv, "bob", "Bob's PC")
		fetch(t, newBrowser(t), srv.URL+"/label?l=anonymous") // no owner: listed nowhere

		list := browserDevices(t, srv, laptop)
		if len(list) != 3 {
			t.Fatalf("ann's devices = %+v, want her 3 sessions", list)
		}
		for _, d := range list {
			if d.Handle == "" || d.Created.Before(start) || d.Created.After(time.Now()) || d.LastSeen.Before(d.Created) || d.LastSeen.After(time.Now()) {
				t.Errorf("device %+v: want a handle, and created and last seen during the test", d)
			}
			if d.Current != (d.Label == "Laptop") {
				t.Errorf("device %q: Current = %v; only the laptop asked", d.Label, d.Current)
			}
		}
		if got := browserDevices(t, srv, bob); len(got) != 1 || got[0].Label != "Bob's PC" || !got[0].Current {
			t.Fatalf("bob's devices = %+v, want his one session", got)
		}

		// One device, by its handle: that session ends everywhere.
		end := func(b *http.Client, handle string, want int) {
			t.Helper()
			if res, body := fetch(t, b, srv.URL+"/end?h="+url.QueryEscape(handle)); res.StatusCode != want {
				t.Fatalf("/end: %d %s, want %d", res.StatusCode, body, want)
			}
		}
		phoneHandle, tabletHandle := byLabel(t, list, "Phone").Handle, byLabel(t, list, "Tablet").Handle
		end(laptop, phoneHandle, http.StatusOK)
		if got := who(t, srv, phone); got != "" {
			t.Fatalf("the phone after the laptop ended it: %q, want logged out", got)
		}
		end(laptop, phoneHandle, http.StatusNotFound) // gone already
		end(laptop, "", http.StatusNotFound)
		end(bob, tabletHandle, http.StatusNotFound) // not bob's
		if got := who(t, srv, tablet); got != "ann" {
			t.Fatalf("the tablet after bob tried to end it: %q, want ann", got)
		}
		if got := browserDevices(t, srv, laptop); len(got) != 2 {
			t.Fatalf("ann's devices after ending the phone = %+v, want 2", got)
		}

		// All but this one.
		if _, body := fetch(t, laptop, srv.URL+"/others"); strings.TrimSpace(body) != "1" {
			t.Fatalf("/others ended %s sessions, want 1 (the tablet)", body)
		}
		if got := who(t, srv, tablet); got != "" {
			t.Fatalf("the tablet after 'log out other devices': %q", got)
		}
		list = browserDevices(t, srv, laptop)
		if len(list) != 1 || !list[0].Current || who(t, srv, laptop) != "ann" || who(t, srv, bob) != "bob" {
			t.Fatalf("after 'log out other devices': %+v; want only the laptop, still logged in, and bob untouched", list)
		}

		// This one: a logout, cookie expired.
		res, _ := fetch(t, laptop, srv.URL+"/end?h="+url.QueryEscape(list[0].Handle))
		if ck := cookieIn(res, cookieName); ck == nil || ck.MaxAge >= 0 {
			t.Fatalf("ending the current device: Set-Cookie %q, want the cookie expired", res.Header.Values("Set-Cookie"))
		}
		if got := who(t, srv, laptop); got != "" {
			t.Fatalf("after ending its own device: %q, want logged out", got)
		}
		srv.noErr()
	})
}

// TestDevicesLeakNoID: nothing a device list holds is a session id, a
// store key, or part of one: no 8 characters in a row of any of ann's ids
// or keys appear anywhere in the list as served, and no handle is a
// prefix of one.
func TestDevicesLeakNoID(t *testing.T) {
	t.Parallel()
	forDeviceStores(t, func(t *testing.T, st session.Store) {
		srv := newServer(t, session.Options{Store: st}, accountRoutes())
		var secrets []string
		var browsers []*http.Client
		for _, label := range []string{"Laptop", "Phone", "Tablet"} {
			b := login(t, srv, "ann", label)
			id := jarCookie(b, srv.URL, cookieName)
			browsers = append(browsers, b)
			secrets = append(secrets, id, hashedKey(id))
		}
		for _, b := range browsers {
			_, body := fetch(t, b, srv.URL+"/devices")
			for _, secret := range secrets {
				for i := 0; i+8 <= len(secret); i++ {
					if strings.Contains(body, secret[i:i+8]) {
						t.Fatalf("the device list %s holds %q, part of an id or store key", body, secret[i:i+8])
					}
				}
			}
			for _, d := range decodeDevices(t, &http.Response{StatusCode: http.StatusOK}, body) {
				for _, secret := range secrets {
					if len(d.Handle) < 8 || strings.HasPrefix(secret, d.Handle[:8]) {
						t.Fatalf("handle %q is empty or a prefix of an id or key", d.Handle)
					}
				}
			}
		}
	})
}

// TestHandleNeverLogsIn: a handle is not an id: sent as the session
// cookie, raw or stretched to an id's length, it is refused (the raw one
// before any store call) and logs no one in; nor is it a store key.
func TestHandleNeverLogsIn(t *testing.T) {
	t.Parallel()
	forDeviceStores(t, func(t *testing.T, st session.Store) {
		srv := newServer(t, session.Options{Store: st}, accountRoutes())
		b := login(t, srv, "ann", "Laptop")
		list := browserDevices(t, srv, b)
		if len(list) != 1 || len(list[0].Handle) != 22 {
			t.Fatalf("devices = %+v, want one with a 22-character handle", list)
		}
		h := list[0].Handle
		rejected := srv.m.Stats().RejectedIDs
		for _, v := range []string{h, h + h[:21], strings.Repeat(h, 2)[:43]} {
			res, body := srv.sendID("/who", v)
			if body != "" || res.StatusCode != http.StatusOK {
				t.Fatalf("cookie %q (a handle): %d %q, want an anonymous visitor", v, res.StatusCode, body)
			}
			if ck := cookieIn(res, cookieName); ck != nil && ck.MaxAge >= 0 {
				t.Fatalf("cookie %q (a handle) was answered with a session cookie", v)
			}
		}
		if got := srv.m.Stats().RejectedIDs - rejected; got != 1 {
			t.Errorf("RejectedIDs grew by %d, want 1: the raw handle, refused by its form", got)
		}
		for _, key := range []string{h, hashedKey(h)} {
			if _, err := st.Load(context.Background(), key); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("Load(%q) = %v, want ErrNotFound: a handle names no record", key, err)
			}
		}
		if got := who(t, srv, b); got != "ann" {
			t.Fatalf("ann after the attempts: %q", got)
		}
	})
}

// TestDevicesLastSeen: LastSeen is the last request to within a tenth of
// the idle timeout, by each session's own idle timeout; the most recently
// seen comes first.
func TestDevicesLastSeen(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := newServerAt(t, clk, session.Options{IdleTimeout: 10 * time.Hour}, accountRoutes())
	t0 := clk.now()
	laptop := login(t, srv, "ann", "Laptop")
	phone := login(t, srv, "ann", "Phone")
	remembered := login(t, srv, "ann", "Tablet")
	fetch(t, remembered, srv.URL+"/remember?d=48h,240h")

	clk.advance(5 * time.Hour)
	who(t, srv, laptop) // a refresh is due: an hour is a tenth of the idle timeout
	list := browserDevices(t, srv, phone)
	if got := []string{list[0].Label, list[1].Label, list[2].Label}; !slices.Equal(got, []string{"Laptop", "Tablet", "Phone"}) &&
		!slices.Equal(got, []string{"Laptop", "Phone", "Tablet"}) {
		t.Errorf("order %v, want the laptop, seen last, first", got)
	}
	for label, want := range map[string]time.Time{"Laptop": t0.Add(5 * time.Hour), "Phone": t0, "Tablet": t0} {
		if got := byLabel(t, list, label).LastSeen; !got.Equal(want) {
			t.Errorf("%s last seen %v, want %v", label, got.Sub(t0), want.Sub(t0))
		}
	}
	clk.advance(30 * time.Minute) // no refresh due: last seen stays, within a tenth
	who(t, srv, laptop)
	if got := byLabel(t, browserDevices(t, srv, phone), "Laptop").LastSeen; !got.Equal(t0.Add(5 * time.Hour)) {
		t.Errorf("laptop last seen %v after an unrefreshed visit, want 5h", got.Sub(t0))
	}
}

// TestSetLabel: a label from any header is safe to pass: cut to 255
// characters, invalid UTF-8 replaced, and listed as set.
func TestSetLabel(t *testing.T) {
	t.Parallel()
	srv := newServer(t, session.Options{}, accountRoutes())
	b := login(t, srv, "ann", "first")
	for _, c := range []struct{ set, want string }{
		{strings.Repeat("é", 300), strings.Repeat("é", 255)},
		{"Firefox \xff on Linux", "Firefox \uFFFD on Linux"},
		{"Safari on iOS", "Safari on iOS"},
	} {
		res, body := fetch(t, b, srv.URL+"/label?l="+url.QueryEscape(c.set))
		if res.StatusCode != http.StatusOK || body != c.want {
			t.Fatalf("SetLabel: Label() = %q, want %q", body, c.want)
		}
		if got := browserDevices(t, srv, b); len(got) != 1 || got[0].Label != c.want {
			t.Fatalf("listed label %+v, want %q", got, c.want)
		}
	}
}

// TestDevicesNeedDeviceStore: a session without an owner has no devices
// and ends none; a store that does not implement DeviceStore says so with
// errors.ErrUnsupported, and new sessions on it get no handle.
func TestDevicesNeedDeviceStore(t *testing.T) {
	t.Parallel()
	srv := newServer(t, session.Options{}, accountRoutes())
	anon := newBrowser(t)
	fetch(t, anon, srv.URL+"/label?l=x")
	if got := browserDevices(t, srv, anon); len(got) != 0 {
		t.Errorf("devices of a session without an owner = %+v, want none", got)
	}
	if res, _ := fetch(t, anon, srv.URL+"/end?h=q2JvYXJkLWhhbmRsZS0xMg"); res.StatusCode != http.StatusNotFound {
		t.Errorf("EndDevice without an owner: %d, want ErrNotFound", res.StatusCode)
	}

	st := &countingStore{Store: newMemory(t)} // an OwnerStore, not a DeviceStore
	plain := newServer(t, session.Options{Store: st}, accountRoutes())
	b := login(t, plain, "ann", "")
	for _, path := range []string{"/devices", "/end?h=q2JvYXJkLWhhbmRsZS0xMg"} {
		res, body := fetch(t, b, plain.URL+path)
		if res.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "session.DeviceStore") || !strings.Contains(body, errors.ErrUnsupported.Error()) {
			t.Errorf("%s on a store without DeviceStore: %d %q", path, res.StatusCode, body)
		}
	}
	rec, err := st.Load(context.Background(), st.created()[0])
	if err != nil || rec.Handle != "" {
		t.Errorf("record on a store without DeviceStore: %+v, %v; want no handle", rec, err)
	}
}

// TestDeviceEvents: listing and ending devices are store calls like the
// others, and ending another session of the owner is reported as a
// revoke of one.
func TestDeviceEvents(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var ops []string
	var revoked []string
	ev := &session.Events{
		StoreCall: func(_ context.Context, op string, _ time.Duration, _ error) {
			mu.Lock()
			ops = append(ops, op)
			mu.Unlock()
		},
		Revoked: func(_ context.Context, owner string, n int) {
			mu.Lock()
			revoked = append(revoked, owner+":"+strings.Repeat("x", n))
			mu.Unlock()
		},
	}
	srv := newServer(t, session.Options{Events: ev}, accountRoutes())
	laptop := login(t, srv, "ann", "Laptop")
	login(t, srv, "ann", "Phone")
	h := byLabel(t, browserDevices(t, srv, laptop), "Phone").Handle
	fetch(t, laptop, srv.URL+"/end?h="+h)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(ops, "Devices") || !slices.Contains(ops, "DeleteDevice") {
		t.Errorf("store calls %v, want Devices and DeleteDevice among them", ops)
	}
	if !slices.Equal(revoked, []string{"ann:x"}) {
		t.Errorf("Revoked events %v, want one of ann's sessions", revoked)
	}
}
