package session

// Native fuzz tests of what an attacker or a damaged store controls: the
// Cookie header, a signed cookie value, and the bytes of a stored record.
// The seed corpus lives in testdata/fuzz/<FuzzName>/ and runs with every
// `go test`; `go test -fuzz FuzzName` explores from it.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed013449c2/session/internal/jsonobj"
)

const fzName = "SESSION_ID"

// fzKeys are the signing keys the fuzz targets use; the first signs.
var fzKeys = [][]byte{
	[]byte("fuzz-signing-key-one-32-bytes!!!"),
	[]byte("fuzz-signing-key-two-32-bytes!!!"),
}

func fzIDs(keys [][]byte) *ids {
	return &ids{name: fzName, bytes: 32, chars: 43, signingKeys: keys, storeKey: hashKey}
}

// fzRefMAC computes a cookie signature from its definition, HMAC-SHA256 of
// "name=id" in unpadded base64url, without the code under test.
func fzRefMAC(key []byte, name, id string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(name + "=" + id))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// fzRefCookies returns every value sent under name, parsing the header
// lines whole as RFC 6265 describes: cookie-pairs separated by ';', with
// optional whitespace around them.
func fzRefCookies(lines []string, name string) []string {
	var out []string
	for _, line := range lines {
		for _, part := range strings.Split(line, ";") {
			n, v, ok := strings.Cut(strings.Trim(part, " \t"), "=")
			if ok && strings.TrimRight(n, " \t") == name {
				out = append(out, v)
			}
		}
	}
	return out
}

// fzSameHMACKey reports whether HMAC-SHA256 treats a and b as one key: it
// pads a key to the 64-byte block with zeros (hashing a longer one first),
// so keys that differ only by trailing zero bytes sign alike.
func fzSameHMACKey(a, b []byte) bool {
	norm := func(k []byte) [64]byte {
		var out [64]byte
		if len(k) > len(out) {
			sum := sha256.Sum256(k)
			k = sum[:]
		}
		copy(out[:], k)
		return out
	}
	return norm(a) == norm(b)
}

// fzHeaderValue reports whether s could arrive as a header value: a
// net/http server refuses control characters other than tab.
func fzHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// fzIDFrom makes a well-formed id out of arbitrary bytes.
func fzIDFrom(b string) string {
	sum := sha256.Sum256([]byte(b))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// fzStore answers every Load with ErrNotFound and records the keys it was
// asked for; any other call is a failure of the fuzz property.
type fzStore struct {
	mu     sync.Mutex
	loads  []string
	others int
}

func (s *fzStore) Load(_ context.Context, key string) (*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads = append(s.loads, key)
	return nil, ErrNotFound
}
func (s *fzStore) Create(context.Context, string, *Record) error { s.count(); return nil }
func (s *fzStore) Update(context.Context, string, *Change) (*Record, error) {
	s.count()
	return nil, ErrNotFound
}
func (s *fzStore) Touch(context.Context, string, time.Time) error {
	s.count()
	return nil
}
func (s *fzStore) Delete(context.Context, string) error { s.count(); return nil }
func (s *fzStore) DeleteOwner(context.Context, string, string) (int, error) {
	s.count()
	return 0, nil
}
func (s *fzStore) count() {
	s.mu.Lock()
	s.others++
	s.mu.Unlock()
}

func (s *fzStore) take() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	loads, others := s.loads, s.others
	s.loads, s.others = nil, 0
	return loads, others
}

// FuzzCookieHeader sends arbitrary Cookie header lines (one per line of
// the input) through the parser and the middleware, signed or not. It never
// panics; the only value that reaches the store is the one copy of the
// cookie the client sent, whole and well-formed (and correctly signed);
// and a valid signed cookie among arbitrary other cookies round-trips.
func FuzzCookieHeader(f *testing.F) {
	f.Add("", false)
	f.Add("SESSION_ID="+fzIDFrom("a"), false)
	f.Add("SESSION_ID="+fzIDFrom("a"), true)
	f.Fuzz(func(t *testing.T, header string, signed bool) {
		var keys [][]byte
		if signed {
			keys = fzKeys
		}
		x := fzIDs(keys)
		lines := strings.Split(header, "\n")
		r := &http.Request{Header: http.Header{"Cookie": lines}}
		value, found := x.cookieValue(r)
		id := x.verify(value)

		sent := fzRefCookies(lines, fzName)
		if found != (len(sent) > 0) && len(header) <= maxCookieScan {
			t.Fatalf("found=%v, but the header holds %d copies", found, len(sent))
		}
		if id != "" {
			if len(sent) != 1 || sent[0] != value {
				t.Fatalf("accepted %q, but the client sent %q", value, sent)
			}
			if !x.validID(id) {
				t.Fatalf("accepted a malformed id %q", id)
			}
			if signed && value != id+"."+fzRefMAC(fzKeys[0], fzName, id) && value != id+"."+fzRefMAC(fzKeys[1], fzName, id) {
				t.Fatalf("accepted %q, which no key signed", value)
			}
			if !signed && value != id {
				t.Fatalf("accepted %q as id %q", value, id)
			}
		}
		if len(header) <= maxCookieScan && len(sent) == 1 && fzHeaderValue(header) {
			if value != strings.TrimRight(sent[0], " \t") {
				t.Fatalf("read %q, the client sent %q", value, sent[0])
			}
		}

		// Through the middleware: exactly the accepted id's key, or nothing.
		if fzHeaderValue(header) {
			st := &fzStore{}
			m, err := New(Options{Store: st, SigningKeys: keys})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/", nil)
			req.Header["Cookie"] = lines
			m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(httptest.NewRecorder(), req)
			loads, others := st.take()
			switch {
			case others != 0:
				t.Fatalf("%d store writes for a request that changed nothing", others)
			case id == "" && len(loads) != 0:
				t.Fatalf("a refused cookie reached the store as %q", loads)
			case id != "" && (len(loads) != 1 || loads[0] != hashKey(id)):
				t.Fatalf("store loads %q for id %q", loads, id)
			}
		}

		// A genuine signed cookie among the fuzzed ones round-trips.
		if strings.Contains(header, fzName) || len(header) > maxCookieScan/2 {
			return
		}
		sx := fzIDs(fzKeys)
		want := fzIDFrom(header)
		line := header + "; " + fzName + "=" + sx.sign(want) + "; " + header
		got := sx.verify(func() string {
			v, _ := sx.cookieValue(&http.Request{Header: http.Header{"Cookie": {line}}})
			return v
		}())
		if got != want {
			t.Fatalf("a genuine signed cookie in %q was read as id %q", line, got)
		}
	})
}

// FuzzVerifySigned checks the signature on arbitrary cookie values with
// arbitrary keys: only a value that signing produced verifies, with any of
// the keys; a signed value verifies under every rotation that keeps its key
// and under no key set without it; any change to it breaks it.
func FuzzVerifySigned(f *testing.F) {
	f.Add("", []byte("k1"), []byte("k2"), uint16(0))
	f.Fuzz(func(t *testing.T, value string, k1, k2 []byte, pos uint16) {
		key := func(b []byte) []byte {
			if len(b) >= minKeyBytes {
				return b
			}
			sum := sha256.Sum256(b)
			return sum[:]
		}
		key1, key2 := key(k1), key(k2)
		both := fzIDs([][]byte{key1, key2})

		if id := both.verify(value); id != "" {
			if value != id+"."+fzRefMAC(key1, fzName, id) && value != id+"."+fzRefMAC(key2, fzName, id) {
				t.Fatalf("%q verified as %q, but neither key signed it", value, id)
			}
		}
		if id := fzIDs(nil).verify(value); id != "" && (id != value || len(id) != 43) {
			t.Fatalf("unsigned mode accepted %q as %q", value, id)
		}

		id := fzIDFrom(value)
		signed := fzIDs([][]byte{key1}).sign(id)
		if signed != id+"."+fzRefMAC(key1, fzName, id) {
			t.Fatalf("sign(%q) = %q, not id.HMAC", id, signed)
		}
		for _, ks := range [][][]byte{{key1}, {key1, key2}, {key2, key1}} {
			if got := fzIDs(ks).verify(signed); got != id {
				t.Fatalf("a genuine signature did not verify with keys %d long: %q", len(ks), got)
			}
		}
		if !fzSameHMACKey(key1, key2) && fzIDs([][]byte{key2}).verify(signed) != "" {
			t.Fatal("a signature verified without its key")
		}
		if fzIDs(nil).verify(signed) != "" {
			t.Fatal("unsigned mode accepted a signed value")
		}
		other := &ids{name: "OTHER", bytes: 32, chars: 43, signingKeys: [][]byte{key1}, storeKey: hashKey}
		if other.verify(signed) != "" {
			t.Fatal("a signature for one cookie name verified for another")
		}
		i := int(pos) % len(signed)
		for _, c := range []byte{signed[i] ^ 1, 'A', '_', '.', 0} {
			if c == signed[i] {
				continue
			}
			mutated := signed[:i] + string(c) + signed[i+1:]
			if got := both.verify(mutated); got != "" {
				t.Fatalf("changing byte %d of %q to %q still verifies as %q", i, signed, c, got)
			}
		}
		if both.verify(signed[:i]) != "" || both.verify(signed+value) != "" && value != "" {
			t.Fatal("a cut or extended signed value verified")
		}
	})
}

// FuzzStoredValues feeds arbitrary bytes where a store's data goes: the
// JSON object of a record (through jsonobj.Decode) and a single stored value
// that breaks the contract. Nothing panics; the typed getters agree with
// encoding/json; MarshalJSON of decoded values is valid JSON that decodes
// back to the same values; Add counts on from exactly the integer GetInt64
// reads, or refuses with ErrNotInteger and changes nothing.
func FuzzStoredValues(f *testing.F) {
	f.Add([]byte(`{"count":1,"user_id":"abc"}`), "count")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		values, err := jsonobj.Decode(data)
		if err == nil {
			if !json.Valid(data) {
				t.Fatalf("jsonobj.Decode accepted invalid JSON %q", data)
			}
			// A null is kept as stored and reads as absent.
			live := map[string]json.RawMessage{}
			for k, v := range values {
				if !json.Valid(v) {
					t.Fatalf("jsonobj.Decode kept invalid JSON under %q: %q", k, v)
				}
				if !isNull(v) {
					live[k] = v
				}
			}
			s := &Session{base: &Record{Values: values}}
			if s.Len() != len(live) {
				t.Fatalf("Len %d for %d non-null values", s.Len(), len(live))
			}
			keys := s.Keys()
			if !slices.IsSorted(keys) || len(keys) != len(live) {
				t.Fatalf("Keys %q", keys)
			}
			out, err := s.MarshalJSON()
			if err != nil || !json.Valid(out) {
				t.Fatalf("MarshalJSON of %q: %q, %v", data, out, err)
			}
			again, err := jsonobj.Decode(out)
			if err != nil || !reflect.DeepEqual(again, live) {
				t.Fatalf("MarshalJSON %q does not decode back to the stored values: %v", out, err)
			}
			n := 0
			for k := range values {
				if n++; n > 64 {
					break
				}
				fzCheckGetters(t, s, k)
				fzCheckAdd(t, s.base, k)
			}
			fzCheckGetters(t, s, key)
			fzCheckAdd(t, s.base, key)
		}

		// A store that breaks the contract: raw bytes as one value.
		rec := &Record{Values: map[string]json.RawMessage{key: data}}
		raw := &Session{base: rec}
		fzTouchAll(raw, key)
		raw.MarshalJSON()
		fzCheckAdd(t, rec, key)
	})
}

// fzCheckAdd adds 1 to key in a fresh request on rec: it succeeds exactly
// when the value reads as an integer below MaxInt64 (or is absent), and
// then counts on from it; a refusal wraps ErrNotInteger and changes
// nothing; either way the stored record is untouched, and a session of
// valid values still marshals to valid JSON.
func fzCheckAdd(t *testing.T, rec *Record, key string) {
	t.Helper()
	stored := rec.Values[key]
	s := &Session{base: rec}
	before, had, beforeJSON := s.GetInt64(key), s.Has(key), s.Get(key)
	wantOK := !had
	if !wantOK {
		if n, ok := decodeInt(stored); ok && n < math.MaxInt64 {
			wantOK = true
		}
	}
	n, err := s.Add(key, 1)
	switch {
	case err == nil && !wantOK:
		t.Fatalf("Add to %q counted %q on to %d", key, stored, n)
	case err == nil && (n != before+1 || s.GetInt64(key) != n || !s.Has(key)):
		t.Fatalf("Add to %q (%q, GetInt64 %d) returned %d and reads %d", key, stored, before, n, s.GetInt64(key))
	case err != nil && wantOK:
		t.Fatalf("Add to %q refused %q: %v", key, stored, err)
	case err != nil && (!errors.Is(err, ErrNotInteger) || s.GetInt64(key) != before || s.Has(key) != had || !reflect.DeepEqual(s.Get(key), beforeJSON)):
		t.Fatalf("a refused Add to %q (%q): %v, and the value changed", key, stored, err)
	}
	if !bytes.Equal(rec.Values[key], stored) {
		t.Fatalf("Add changed the stored record: %q -> %q", stored, rec.Values[key])
	}
	for _, v := range rec.Values {
		if !isNull(v) && !json.Valid(v) {
			return // a store that broke the contract: no valid JSON to expect
		}
	}
	if out, err := s.MarshalJSON(); err != nil || !json.Valid(out) {
		t.Fatalf("MarshalJSON after Add: %q, %v", out, err)
	}
}

// fzTouchAll calls every reader of key; only a panic can fail it.
func fzTouchAll(s *Session, key string) {
	s.Get(key)
	s.Has(key)
	s.GetString(key)
	s.GetInt(key)
	s.GetInt64(key)
	s.GetFloat64(key)
	s.GetBool(key)
	s.GetTime(key)
	var anyV any
	s.Decode(key, &anyV)
	var st struct{ A []map[string]float64 }
	s.Decode(key, &st)
	s.Keys()
	s.Len()
}

// fzCheckGetters compares each typed getter on key with what encoding/json
// makes of the same stored value.
func fzCheckGetters(t *testing.T, s *Session, key string) {
	t.Helper()
	fzTouchAll(s, key)
	raw := s.base.Values[key]
	has := !isNull(raw)
	if s.Has(key) != has {
		t.Fatalf("Has(%q) = %v for %q", key, !has, raw)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err == nil && has {
		if got := s.Get(key); !reflect.DeepEqual(got, v) {
			t.Fatalf("Get(%q) = %#v, encoding/json gives %#v", key, got, v)
		}
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil && has {
		if got := s.GetString(key); got != str {
			t.Fatalf("GetString(%q) = %q, encoding/json gives %q", key, got, str)
		}
	} else if got := s.GetString(key); got != "" {
		t.Fatalf("GetString(%q) = %q for the non-string %q", key, got, raw)
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil && has {
		if s.GetBool(key) != b {
			t.Fatalf("GetBool(%q) = %v for %q", key, !b, raw)
		}
	} else if s.GetBool(key) {
		t.Fatalf("GetBool(%q) = true for %q", key, raw)
	}
	var fl float64
	if err := json.Unmarshal(raw, &fl); err == nil && has {
		if got := s.GetFloat64(key); got != fl {
			t.Fatalf("GetFloat64(%q) = %v, encoding/json gives %v", key, got, fl)
		}
	}
	// An integer written out in full reads back exactly, over the whole
	// int64 range.
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		if got := s.GetInt64(key); got != n {
			t.Fatalf("GetInt64(%q) = %d for the stored integer %s", key, got, raw)
		}
	}
	if got := s.GetInt64(key); got != 0 {
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || f != math.Trunc(f) {
			t.Fatalf("GetInt64(%q) = %d for %q, which is not an integral number", key, got, raw)
		}
	}
	if got := s.GetInt(key); int64(got) != s.GetInt64(key) {
		t.Fatalf("GetInt(%q) = %d, GetInt64 %d", key, got, s.GetInt64(key))
	}
	// GetTime reads what encoding/json reads as a time.Time, and nothing
	// but an RFC 3339 string.
	var tm time.Time
	if err := json.Unmarshal(raw, &tm); err == nil && has {
		if got := s.GetTime(key); !got.Equal(tm) {
			t.Fatalf("GetTime(%q) = %v, encoding/json gives %v", key, got, tm)
		}
	}
	if got := s.GetTime(key); !got.IsZero() {
		var str string
		if json.Unmarshal(raw, &str) != nil {
			t.Fatalf("GetTime(%q) = %v for the non-string %q", key, got, raw)
		}
		if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
			t.Fatalf("GetTime(%q) = %v for %q, which is not RFC 3339", key, got, raw)
		}
	}
	// Decode is encoding/json: the same value, the same refusals.
	if has {
		var got, want any
		gerr, werr := s.Decode(key, &got), json.Unmarshal(raw, &want)
		if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q) = %#v, %v; encoding/json gives %#v, %v", key, got, gerr, want, werr)
		}
		var gs, ws struct{ A []map[string]float64 }
		gerr, werr = s.Decode(key, &gs), json.Unmarshal(raw, &ws)
		if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(gs, ws) {
			t.Fatalf("Decode(%q) into a struct = %v, %v; encoding/json gives %v, %v", key, gs, gerr, ws, werr)
		}
	} else if err := s.Decode(key, new(any)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Decode of the missing %q = %v, want ErrNotFound", key, err)
	}
}
