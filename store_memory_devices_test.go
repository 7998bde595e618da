package session_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// TestMemoryStoreDevicesLimit: of an owner's many sessions, Devices returns
// the limit that expire last, whatever order the shards hold them in.
func TestMemoryStoreDevicesLimit(t *testing.T) {
	s := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	now := time.Now()
	for i := range 200 {
		rec := &session.Record{
			Values: map[string]json.RawMessage{"n": json.RawMessage(`1`)}, Owner: "ann", Handle: "h" + strconv.Itoa(i),
			Created: now, Expires: now.Add(time.Hour + time.Duration(i)*time.Second),
		}
		if err := s.Create(ctx, "key"+strconv.Itoa(i), rec); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Devices(ctx, "ann", 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Fatalf("%d devices, want 7", len(got))
	}
	for i, d := range got {
		if want := "h" + strconv.Itoa(199-i); d.Handle != want {
			t.Errorf("device %d = %s, want %s (the ones that expire last, latest first)", i, d.Handle, want)
		}
	}
}
