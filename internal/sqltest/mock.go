package sqltest

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
)

// What the stores' mock tests store and read: the statements they expect
// carry these values, written out in each test file.
var (
	MockNow       = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	MockCreated   = time.Date(2025, 3, 1, 11, 0, 0, 5000, time.UTC)
	MockExpires   = time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)
	MockDeadline  = time.Date(2025, 3, 2, 11, 0, 0, 0, time.UTC)
	MockValues    = map[string]json.RawMessage{"user_id": json.RawMessage(`"k3j2"`), "count": json.RawMessage(`1`)}
	MockValuesSQL = `{"count":1,"user_id":"k3j2"}`
)

// The session lock's statements, the same for every SQL store.
const (
	SQLGetLock     = "SELECT GET_LOCK(?, ?)"
	SQLReleaseLock = "SELECT RELEASE_LOCK(?)"
)

// NewMock returns a sqlmock pool that matches SQL exactly, closed when the
// test ends.
func NewMock(t testing.TB) (*sql.DB, sqlmock.Sqlmock) {
	t.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, mock
}

// WaitMet waits until every expected statement has run: database/sql may
// roll back a transaction whose context was cancelled from a goroutine of
// its own, just after the call returned.
func WaitMet(t testing.TB, mock sqlmock.Sqlmock) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := mock.ExpectationsWereMet()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}

// CheckRefused opens a store with options it must refuse, on a pool that
// expects no statement: the error starts with prefix and mentions want.
func CheckRefused[S interface{ Close() error }](t *testing.T, open func(*sql.DB) (S, error), prefix, want string) {
	t.Helper()
	db, mock := NewMock(t)
	s, err := open(db)
	if err == nil {
		s.Close()
		t.Fatal("the store accepted the options")
	}
	if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("error %q does not start with %q and mention %q", err, prefix, want)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

// Record has the fields of session.Record, which [RecordOf] copies into
// it.
type Record struct {
	Values                     map[string]json.RawMessage
	Owner                      string
	Created, Expires, Deadline time.Time
	IdleTimeout                time.Duration
	Persist                    uint8
	Label, Handle              string
	Version                    int64
}

// RecordOf copies a session.Record, or a pointer to one, into a Record,
// field by field by name.
func RecordOf(rec any) Record {
	v := reflect.Indirect(reflect.ValueOf(rec))
	var out Record
	o := reflect.ValueOf(&out).Elem()
	for i := range o.NumField() {
		o.Field(i).Set(v.FieldByName(o.Type().Field(i).Name).Convert(o.Field(i).Type()))
	}
	return out
}

// CheckRecord compares two records field by field; times must be equal
// and in UTC.
func CheckRecord(t testing.TB, got, want Record) {
	t.Helper()
	if len(got.Values) != len(want.Values) {
		t.Errorf("Values = %s, want %s", got.Values, want.Values)
	}
	for k, v := range want.Values {
		if !bytes.Equal(got.Values[k], v) {
			t.Errorf("Values[%q] = %s, want %s", k, got.Values[k], v)
		}
	}
	if got.Owner != want.Owner || got.Version != want.Version {
		t.Errorf("Owner, Version = %q, %d, want %q, %d", got.Owner, got.Version, want.Owner, want.Version)
	}
	if got.IdleTimeout != want.IdleTimeout || got.Persist != want.Persist || got.Label != want.Label || got.Handle != want.Handle {
		t.Errorf("IdleTimeout, Persist, Label, Handle = %v, %d, %q, %q, want %v, %d, %q, %q",
			got.IdleTimeout, got.Persist, got.Label, got.Handle, want.IdleTimeout, want.Persist, want.Label, want.Handle)
	}
	for _, tm := range []struct {
		name      string
		got, want time.Time
	}{{"Created", got.Created, want.Created}, {"Expires", got.Expires, want.Expires}, {"Deadline", got.Deadline, want.Deadline}} {
		if !tm.got.Equal(tm.want) || tm.got.Location() != time.UTC {
			t.Errorf("%s = %v, want %v in UTC", tm.name, tm.got, tm.want)
		}
	}
}

// SyncBuffer collects log output written from other goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Goroutines counts the goroutines started by the function named in full,
// such as "github.com/seed013449c2/session/koa.NewStore" (one not yet
// scheduled shows only that).
func Goroutines(creator string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by "+creator+" in goroutine")
		}
		buf = make([]byte, 2*len(buf))
	}
}
