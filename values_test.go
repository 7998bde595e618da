package session_test

// The Session value API through real requests: what a value set in one
// request reads as in the next (typed getters, Decode, Pop, MarshalJSON),
// and Add, alone and mixed with the other changes of a request.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// Values of every JSON type round-trip through the store: each typed getter
// reads what was set, Decode fills a struct, and a key set to nil is gone.
func TestRoundTripTypes(t *testing.T) {
	t.Parallel()
	type profile struct {
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
	}
	when := time.Date(2026, 11, 26, 1, 2, 3, 456789000, time.UTC)
	srv := newServer(t, session.Options{}, routes{
		"/set": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("int", 42)
			s.Set("int64", int64(1)<<60)
			s.Set("float", 2.5)
			s.Set("bool", true)
			s.Set("str", "héllo \"world\" <b>")
			s.Set("plain", "k3j2")
			s.Set("time", when)
			s.Set("profile", profile{Name: "ann", Roles: []string{"admin"}})
			s.Set("gone", "x")
			s.Set("gone", nil)
		},
		"/get": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			if s.IsNew() {
				t.Error("session not found on the second request")
			}
			var p profile
			if err := s.Decode("profile", &p); err != nil || p.Name != "ann" || p.Roles[0] != "admin" {
				t.Errorf("Decode: %v %+v", err, p)
			}
			checks := []struct {
				name string
				got  any
				want any
			}{
				{"GetInt", s.GetInt("int"), 42},
				{"GetInt64", s.GetInt64("int64"), int64(1) << 60},
				{"GetFloat64", s.GetFloat64("float"), 2.5},
				{"GetFloat64 of int", s.GetFloat64("int"), 42.0},
				{"GetBool", s.GetBool("bool"), true},
				{"GetString", s.GetString("str"), "héllo \"world\" <b>"},
				{"GetString plain", s.GetString("plain"), "k3j2"},
				{"GetTime", s.GetTime("time").Equal(when), true},
				{"Get number", s.Get("int"), 42.0},
				{"GetInt of string", s.GetInt("str"), 0},
				{"GetString of int", s.GetString("int"), ""},
				{"Has gone", s.Has("gone"), false},
				{"Has int", s.Has("int"), true},
				{"Len", s.Len(), 8},
				{"Keys", strings.Join(s.Keys(), ","), "bool,float,int,int64,plain,profile,str,time"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
			if err := s.Decode("gone", &p); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("Decode of a missing key: %v, want ErrNotFound", err)
			}
		},
	})
	srv.get("/set")
	srv.get("/get")
}

// An int64 reads back exactly, in the request that set it and in the next,
// including the 19-digit values past 2^53 that a float64 cannot hold and
// the extremes of the range.
func TestGetInt64WholeRange(t *testing.T) {
	t.Parallel()
	values := []int64{
		0, -1, 1 << 53, 1<<53 + 1, 999_999_999_999_999_999,
		1_000_000_000_000_000_001, 1<<60 + 1, -(1<<60 + 1),
		math.MaxInt64, math.MaxInt64 - 1, math.MinInt64, math.MinInt64 + 1,
	}
	check := func(s *session.Session, when string) {
		for i, n := range values {
			k := strconv.Itoa(i)
			if got := s.GetInt64(k); got != n {
				t.Errorf("%s: Set(%d) then GetInt64 = %d", when, n, got)
			}
			if got, want := s.GetInt(k), int(n); got != want {
				t.Errorf("%s: Set(%d) then GetInt = %d", when, n, got)
			}
		}
	}
	srv := newServer(t, session.Options{}, routes{
		"/set": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			for i, n := range values {
				s.Set(strconv.Itoa(i), n)
			}
			check(s, "same request")
		},
		"/": func(w http.ResponseWriter, r *http.Request) { check(session.FromContext(r.Context()), "next request") },
	})
	srv.get("/set")
	srv.get("/")
}

// Pop reads a value and deletes it (a flash message); MarshalJSON is the
// session's values as one JSON object.
func TestPopAndMarshalJSON(t *testing.T) {
	t.Parallel()
	srv := newServer(t, session.Options{}, routes{
		"/flash": setRoute("flash", "saved!"),
		"/pop": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Set("keep", 1)
			v, _ := s.Pop("flash").(string)
			fmt.Fprint(w, v)
		},
		"/": showRoute,
	})
	srv.get("/flash")
	if _, body := srv.get("/pop"); body != "saved!" {
		t.Fatalf("Pop = %q", body)
	}
	if _, body := srv.get("/pop"); body != "" {
		t.Fatalf("second Pop = %q, want nothing", body)
	}
	if _, body := srv.get("/"); strings.TrimSpace(body) != `{"keep":1}` {
		t.Fatalf("session JSON %s", body)
	}
}

// Add in one request, alone and mixed with Set, Delete and Clear,
// on a stored session and on a new one: what it returns, what the request
// reads afterwards, and what is stored. An Add that fails (not an integer,
// or past the int64 range) wraps ErrNotInteger and changes nothing.
func TestAdd(t *testing.T) {
	t.Parallel()
	type step struct {
		key   string
		delta int64
		want  int64 // Add's result
		err   error // or its error
	}
	cases := []struct {
		name   string
		seed   map[string]any // nil: no session yet
		before func(s *session.Session)
		steps  []step
		after  func(s *session.Session)
		stored string // the session as the next request reads it
		writes bool   // whether the request writes to the store
	}{
		{name: "stored counter", seed: map[string]any{"count": 5},
			steps:  []step{{"count", 1, 6, nil}, {"count", 2, 8, nil}, {"count", -10, -2, nil}},
			stored: `{"count":-2}`, writes: true},
		{name: "missing key counts from 0", seed: map[string]any{"user": "ann"},
			steps:  []step{{"count", 3, 3, nil}},
			stored: `{"count":3,"user":"ann"}`, writes: true},
		{name: "new session", steps: []step{{"count", 1, 1, nil}},
			stored: `{"count":1}`, writes: true},
		{name: "Set then Add", seed: map[string]any{"count": 5},
			before: func(s *session.Session) { s.Set("count", 10) },
			steps:  []step{{"count", 1, 11, nil}},
			stored: `{"count":11}`, writes: true},
		{name: "Add then Set", seed: map[string]any{"count": 5},
			steps:  []step{{"count", 1, 6, nil}},
			after:  func(s *session.Session) { s.Set("count", 100) },
			stored: `{"count":100}`, writes: true},
		{name: "Add then Delete", seed: map[string]any{"count": 5, "user": "ann"},
			steps:  []step{{"count", 1, 6, nil}},
			after:  func(s *session.Session) { s.Delete("count") },
			stored: `{"user":"ann"}`, writes: true},
		{name: "Delete then Add", seed: map[string]any{"count": 5},
			before: func(s *session.Session) { s.Delete("count") },
			steps:  []step{{"count", 2, 2, nil}},
			stored: `{"count":2}`, writes: true},
		{name: "Clear then Add", seed: map[string]any{"count": 5, "user": "ann"},
			before: func(s *session.Session) { s.Clear() },
			steps:  []step{{"count", 2, 2, nil}},
			stored: `{"count":2}`, writes: true},
		{name: "string value", seed: map[string]any{"name": "ann"},
			steps:  []step{{"name", 1, 0, session.ErrNotInteger}},
			stored: `{"name":"ann"}`},
		{name: "object value", seed: map[string]any{"obj": map[string]int{"a": 1}},
			steps:  []step{{"obj", 1, 0, session.ErrNotInteger}},
			stored: `{"obj":{"a":1}}`},
		{name: "integral float", seed: map[string]any{"n": json.RawMessage(`2.0`)},
			steps:  []step{{"n", 1, 3, nil}},
			stored: `{"n":3}`, writes: true},
		{name: "overflow at MaxInt64", seed: map[string]any{"count": int64(math.MaxInt64 - 1)},
			steps:  []step{{"count", 1, math.MaxInt64, nil}, {"count", 1, 0, session.ErrNotInteger}},
			stored: `{"count":9223372036854775807}`, writes: true},
		{name: "overflow alone changes nothing", seed: map[string]any{"count": int64(math.MaxInt64)},
			steps:  []step{{"count", 1, 0, session.ErrNotInteger}, {"count", math.MaxInt64, 0, session.ErrNotInteger}},
			stored: `{"count":9223372036854775807}`},
		{name: "underflow at MinInt64", seed: map[string]any{"count": int64(math.MinInt64)},
			steps:  []step{{"count", -1, 0, session.ErrNotInteger}, {"count", 1, math.MinInt64 + 1, nil}},
			stored: `{"count":-9223372036854775807}`, writes: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			st := &countingStore{Store: newMemory(t)}
			srv := newServer(t, session.Options{Store: st}, routes{
				"/seed": func(w http.ResponseWriter, r *http.Request) {
					s := session.FromContext(r.Context())
					for k, v := range c.seed {
						s.Set(k, v)
					}
				},
				"/run": func(w http.ResponseWriter, r *http.Request) {
					s := session.FromContext(r.Context())
					if c.before != nil {
						c.before(s)
					}
					for _, sp := range c.steps {
						before, beforeInt := fmt.Sprint(s.Get(sp.key)), s.GetInt64(sp.key)
						got, err := s.Add(sp.key, sp.delta)
						switch {
						case sp.err != nil && !errors.Is(err, sp.err):
							t.Errorf("Add(%q, %d) = %d, %v; want an error wrapping %v", sp.key, sp.delta, got, err, sp.err)
						case sp.err != nil && (fmt.Sprint(s.Get(sp.key)) != before || s.GetInt64(sp.key) != beforeInt):
							t.Errorf("a failed Add(%q, %d) changed the value from %v to %v", sp.key, sp.delta, before, s.Get(sp.key))
						case sp.err == nil && (err != nil || got != sp.want):
							t.Errorf("Add(%q, %d) = %d, %v; want %d", sp.key, sp.delta, got, err, sp.want)
						case sp.err == nil && s.GetInt64(sp.key) != got:
							t.Errorf("after Add(%q, %d) = %d the request reads %d", sp.key, sp.delta, got, s.GetInt64(sp.key))
						}
					}
					if c.after != nil {
						c.after(s)
					}
				},
				"/": showRoute,
			})
			if c.seed != nil {
				srv.get("/seed")
			}
			writes := st.writes()
			res, _ := srv.get("/run")
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %v", res.StatusCode, srv.err())
			}
			if wrote := st.writes() != writes; wrote != c.writes {
				t.Errorf("the request wrote to the store: %v, want %v", wrote, c.writes)
			}
			if _, body := srv.get("/"); strings.TrimSpace(body) != c.stored {
				t.Fatalf("stored %s, want %s", strings.TrimSpace(body), c.stored)
			}
		})
	}
}
