package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed013449c2/session"
)

// deviceServer is one app server of TestHTTPDevices: its own client and
// store on the shared Redis, under prefix.
func deviceServer(t *testing.T, topo topology, prefix string, lock bool) *httptest.Server {
	t.Helper()
	st := newStore(t, topo.client(t), Options{Prefix: prefix})
	m, err := session.New(session.Options{Store: st, Lock: lock,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t.Errorf("%s %s: %v", r.Method, r.URL, err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		u := r.URL.Query().Get("u")
		s.Regenerate()
		s.SetOwner(u)
		s.Set("user", u)
		s.SetLabel(r.URL.Query().Get("label"))
		io.WriteString(w, u)
	})
	mux.HandleFunc("/who", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, session.FromContext(r.Context()).GetString("user"))
	})
	mux.HandleFunc("/regen", func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Regenerate()
	})
	mux.HandleFunc("/devices", func(w http.ResponseWriter, r *http.Request) {
		list, err := session.FromContext(r.Context()).Devices()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("/end", func(w http.ResponseWriter, r *http.Request) {
		err := session.FromContext(r.Context()).EndDevice(r.URL.Query().Get("h"))
		switch {
		case errors.Is(err, session.ErrNotFound):
			http.Error(w, err.Error(), http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := httptest.NewServer(m.Handler(mux))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { m.Close() })
	return srv
}

// browser is a client with a cookie jar of its own.
type browser struct {
	t   *testing.T
	c   *http.Client
	jar *cookiejar.Jar
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}, jar: jar}
}

func (b *browser) get(u string) (int, string) {
	b.t.Helper()
	res, err := b.c.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// cookies returns the values of the cookies the browser holds for srv.
func (b *browser) cookies(srv *httptest.Server) []string {
	u, _ := url.Parse(srv.URL)
	var out []string
	for _, c := range b.jar.Cookies(u) {
		out = append(out, c.Value)
	}
	return out
}

func (b *browser) devices(srv *httptest.Server) ([]session.Device, string) {
	b.t.Helper()
	code, body := b.get(srv.URL + "/devices")
	if code != http.StatusOK {
		b.t.Fatalf("/devices: %d %s", code, body)
	}
	var list []session.Device
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		b.t.Fatalf("/devices: %v: %s", err, body)
	}
	return list, body
}

// TestHTTPDevices: one user logged in with two browsers on two app
// servers that share Redis (a standalone server, then the cluster; with
// and without Options.Lock) sees both sessions in either server's list,
// with their labels, the asking one marked current, and a handle that
// survives Regenerate; ending the other one by its handle on one server
// logs it out on the other. Another user sees neither and can end
// neither, and no list holds a cookie value or a store key.
func TestHTTPDevices(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		for _, lock := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/Lock=%v", topo.name, lock), func(t *testing.T) {
				t.Parallel()
				prefix := testPrefix(t)
				a := deviceServer(t, topo, prefix, lock)
				b := deviceServer(t, topo, prefix, lock)
				ann := "ann-" + prefix
				login := func(srv *httptest.Server, u, label string) *browser {
					br := newBrowser(t)
					q := url.Values{"u": {u}, "label": {label}}
					if code, body := br.get(srv.URL + "/login?" + q.Encode()); code != http.StatusOK || body != u {
						t.Fatalf("login of %s: %d %q", u, code, body)
					}
					return br
				}
				laptop := login(a, ann, "Firefox on Linux")
				phone := login(b, ann, "Safari on iOS")
				bob := login(b, "bob-"+prefix, "Bob's PC")

				byLabel := func(list []session.Device, label string) session.Device {
					t.Helper()
					for _, d := range list {
						if d.Label == label {
							return d
						}
					}
					t.Fatalf("no device labelled %q in %+v", label, list)
					panic("unreachable")
				}
				list, body := laptop.devices(a)
				if len(list) != 2 {
					t.Fatalf("ann's devices on server a = %s, want her 2 sessions", body)
				}
				for _, d := range list {
					if len(d.Handle) != 22 || d.Created.IsZero() || d.LastSeen.Before(d.Created) || d.LastSeen.After(time.Now()) {
						t.Errorf("device %+v: want a 22-character handle, created and last seen during the test", d)
					}
					if d.Current != (d.Label == "Firefox on Linux") {
						t.Errorf("device %q: Current = %v on the laptop", d.Label, d.Current)
					}
				}
				phoneHandle := byLabel(list, "Safari on iOS").Handle
				if list, body := phone.devices(b); len(list) != 2 || !byLabel(list, "Safari on iOS").Current || byLabel(list, "Firefox on Linux").Current {
					t.Fatalf("ann's devices on server b, from the phone = %s", body)
				}

				// The phone gets a new id: same handle, same list.
				if code, _ := phone.get(b.URL + "/regen"); code != http.StatusOK {
					t.Fatalf("/regen: %d", code)
				}
				list, body = laptop.devices(a)
				if len(list) != 2 || byLabel(list, "Safari on iOS").Handle != phoneHandle {
					t.Fatalf("ann's devices after the phone regenerated its id = %s, want the same handle %q", body, phoneHandle)
				}
				// Nothing listed is a cookie, an id's key or a part of one.
				keys, err := scanKeys(t.Context(), topo.client(t), prefix+"{*}")
				if err != nil || len(keys) < 3 {
					t.Fatalf("session keys %v, %v", keys, err)
				}
				var secrets []string
				for _, k := range keys {
					secrets = append(secrets, k[strings.Index(k, "{")+1:strings.Index(k, "}")])
				}
				secrets = append(secrets, laptop.cookies(a)...)
				secrets = append(secrets, phone.cookies(b)...)
				for _, sec := range secrets {
					for i := 0; i+12 <= len(sec); i++ {
						if strings.Contains(body, sec[i:i+12]) {
							t.Fatalf("the device list %s holds %q, part of a key or cookie", body, sec[i:i+12])
						}
					}
				}

				// Bob sees only his, and cannot end ann's phone.
				if list, body := bob.devices(b); len(list) != 1 || list[0].Label != "Bob's PC" {
					t.Fatalf("bob's devices = %s", body)
				}
				if code, _ := bob.get(b.URL + "/end?h=" + url.QueryEscape(phoneHandle)); code != http.StatusNotFound {
					t.Fatalf("bob ending ann's phone: %d, want 404", code)
				}
				if _, who := phone.get(b.URL + "/who"); who != ann {
					t.Fatalf("the phone after bob tried to end it: %q, want %q", who, ann)
				}

				// The laptop, on server a, ends the phone: logged out on b.
				if code, body := laptop.get(a.URL + "/end?h=" + url.QueryEscape(phoneHandle)); code != http.StatusOK {
					t.Fatalf("ending the phone: %d %s", code, body)
				}
				if _, who := phone.get(b.URL + "/who"); who != "" {
					t.Fatalf("the phone after the laptop ended it: %q, want logged out", who)
				}
				if code, _ := laptop.get(a.URL + "/end?h=" + url.QueryEscape(phoneHandle)); code != http.StatusNotFound {
					t.Fatalf("ending the phone again: %d, want 404", code)
				}
				if list, body := laptop.devices(b); len(list) != 1 || !list[0].Current || list[0].Label != "Firefox on Linux" {
					t.Fatalf("ann's devices after ending the phone = %s, want the laptop alone", body)
				}
				if _, who := laptop.get(b.URL + "/who"); who != ann {
					t.Fatalf("the laptop: %q, want still %q", who, ann)
				}
				if _, who := bob.get(a.URL + "/who"); who != "bob-"+prefix {
					t.Fatalf("bob: %q, want untouched", who)
				}
			})
		}
	}
}

// scanKeys lists the keys that match pattern, on every node.
func scanKeys(ctx context.Context, c redis.UniversalClient, pattern string) ([]string, error) {
	scan := func(ctx context.Context, c redis.Cmdable) ([]string, error) {
		var keys []string
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		return keys, iter.Err()
	}
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return scan(ctx, c)
	}
	var mu sync.Mutex
	var all []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		keys, err := scan(ctx, node)
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return err
	})
	return all, err
}

// TestDevicesMany: an owner with more sessions than one pipeline reads,
// in every slot range of the cluster, some ended, some given to another
// owner, one not a hash: Devices lists the live ones, the latest to
// expire first, and with a limit the ones that expire last; when the
// index says no record left unread can expire later, it stops reading.
func TestDevicesMany(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			c := topo.client(t)
			hook := &countingHook{}
			c.AddHook(hook)
			s := newStore(t, c, Options{})
			ctx := t.Context()
			owner, other := "many-"+testPrefix(t), "other-"+testPrefix(t)
			const n = 3*devicePage + 17
			now := time.Now().UTC().Truncate(time.Microsecond)
			var want []string // handles of live records, latest expiry first
			for i := range n {
				rec := freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`1`)})
				// Record i expires i seconds after the first; its
				// deadline (the index's score) is its expiry.
				rec.Expires = now.Add(time.Hour + time.Duration(i)*time.Second)
				rec.Deadline = rec.Expires
				rec.Owner, rec.Handle, rec.Label = owner, fmt.Sprintf("h%04d", i), fmt.Sprintf("device %d", i)
				key := fmt.Sprintf("k%04d", i)
				if err := s.Create(ctx, key, rec); err != nil {
					t.Fatal(err)
				}
				switch {
				case i%50 == 7:
					if err := s.Delete(ctx, key); err != nil {
						t.Fatal(err)
					}
				case i%50 == 8:
					if _, err := s.Update(ctx, key, &session.Change{Owner: &other}); err != nil {
						t.Fatal(err)
					}
				case i == 9:
					c.Del(ctx, s.recordKey(key))
					c.Set(ctx, s.recordKey(key), "not a hash", 0)
				default:
					want = append([]string{rec.Handle}, want...)
				}
			}
			handles := func(list []session.DeviceRecord) []string {
				var out []string
				for _, d := range list {
					out = append(out, d.Handle)
				}
				return out
			}
			all, err := s.Devices(ctx, owner, 10000)
			if err != nil {
				t.Fatal(err)
			}
			if got := handles(all); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("Devices listed %d: %v\nwant %d: %v", len(got), got, len(want), want)
			}
			for _, d := range all {
				if !strings.HasPrefix(d.Label, "device ") || d.Created.IsZero() || d.IdleTimeout != 0 {
					t.Fatalf("device %+v", d)
				}
			}
			before := hook.trips.Load()
			top, err := s.Devices(ctx, owner, 5)
			if err != nil {
				t.Fatal(err)
			}
			if got := handles(top); strings.Join(got, ",") != strings.Join(want[:5], ",") {
				t.Fatalf("Devices with limit 5 = %v, want %v", got, want[:5])
			}
			// The index read, then one page: every record after it ends
			// no later than the fifth found.
			if trips := hook.trips.Load() - before; trips != 2 {
				t.Errorf("Devices with limit 5 took %d round trips, want 2 (one page)", trips)
			}
			if other, err := s.Devices(ctx, other, 10000); err != nil || len(other) != (n+41)/50 {
				t.Errorf("Devices of the other owner: %d, %v; want %d", len(other), err, (n+41)/50)
			}
			// DeleteOwner passes over the key that is not a hash, as
			// Devices does, and ends every live session of the owner.
			if ended, err := s.DeleteOwner(ctx, owner, ""); err != nil || ended != len(want) {
				t.Errorf("DeleteOwner = %d, %v; want %d", ended, err, len(want))
			}
			if left, err := s.Devices(ctx, owner, 10000); err != nil || len(left) != 0 {
				t.Errorf("Devices after DeleteOwner: %d, %v; want none", len(left), err)
			}
		})
	}
}

// TestDeleteDeviceBothCopies: while a session regenerates its id without
// Rename (a new record with the same handle, then the old one deleted),
// two live records share its handle for a moment; DeleteDevice ends both,
// so the device is logged out whichever id it ends up with.
func TestDeleteDeviceBothCopies(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, topo.client(t), Options{})
			ctx := t.Context()
			owner := "ann-" + testPrefix(t)
			for _, key := range []string{"old", "new", "laptop"} {
				rec := freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`1`)})
				rec.Owner, rec.Handle = owner, "phone-handle"
				if key == "laptop" {
					rec.Handle = "laptop-handle"
				}
				if err := s.Create(ctx, key, rec); err != nil {
					t.Fatal(err)
				}
			}
			if found, err := s.DeleteDevice(ctx, owner, "phone-handle"); err != nil || !found {
				t.Fatalf("DeleteDevice = %v, %v", found, err)
			}
			for _, key := range []string{"old", "new"} {
				if _, err := s.Load(ctx, key); !errors.Is(err, session.ErrNotFound) {
					t.Errorf("Load of %s after DeleteDevice: %v, want ErrNotFound", key, err)
				}
			}
			if _, err := s.Load(ctx, "laptop"); err != nil {
				t.Errorf("Load of the laptop: %v", err)
			}
			// Their index entries are gone too.
			if entries, err := s.indexed(ctx, owner, time.Now().UnixMicro()); err != nil || len(entries) != 1 {
				t.Errorf("index after DeleteDevice: %v, %v; want the laptop's entry alone", entries, err)
			}
		})
	}
}

// TestDeleteDeviceChecksOwner: a session that changed owner is still in
// its old owner's index until its end; the script on its key checks the
// owner it has now, so the old owner can neither list it nor end it.
func TestDeleteDeviceChecksOwner(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, topo.client(t), Options{})
			ctx := t.Context()
			ann, bob := "ann-"+testPrefix(t), "bob-"+testPrefix(t)
			rec := freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`1`)})
			rec.Owner, rec.Handle = ann, "shared-pc"
			if err := s.Create(ctx, "k", rec); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Update(ctx, "k", &session.Change{Owner: &bob}); err != nil {
				t.Fatal(err)
			}
			if entries, err := s.indexed(ctx, ann, time.Now().UnixMicro()); err != nil || len(entries) != 1 {
				t.Fatalf("ann's index: %v, %v; want the old entry still there", entries, err)
			}
			if list, err := s.Devices(ctx, ann, 10); err != nil || len(list) != 0 {
				t.Errorf("ann's devices = %+v, %v; want none", list, err)
			}
			if found, err := s.DeleteDevice(ctx, ann, "shared-pc"); err != nil || found {
				t.Fatalf("DeleteDevice by the old owner = %v, %v; want false", found, err)
			}
			if _, err := s.Load(ctx, "k"); err != nil {
				t.Fatalf("Load after the old owner's DeleteDevice: %v", err)
			}
			if found, err := s.DeleteDevice(ctx, bob, "shared-pc"); err != nil || !found {
				t.Fatalf("DeleteDevice by the owner = %v, %v; want true", found, err)
			}
		})
	}
}
