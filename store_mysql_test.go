package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
)

// The statements below are written out in full, not built from the
// store's own strings, so that a change to the SQL fails here first.
const (
	mockKey = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

	sqlCreateSessions = "CREATE TABLE IF NOT EXISTS `sessions` (\n" +
		"  id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n" +
		"  data MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n" +
		"  owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',\n" +
		"  created_at DATETIME(6) NOT NULL,\n" +
		"  expires_at DATETIME(6) NOT NULL,\n" +
		"  deadline_at DATETIME(6) NULL,\n" +
		"  version BIGINT NOT NULL,\n" +
		"  PRIMARY KEY (id),\n" +
		"  KEY owner_idx (owner),\n" +
		"  KEY expires_at_idx (expires_at)\n" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
	sqlLoad          = "SELECT data, owner, created_at, expires_at, deadline_at, version FROM `sessions` WHERE id = ? AND expires_at > ?"
	sqlExists        = "SELECT version FROM `sessions` WHERE id = ? AND expires_at > ?"
	sqlInsert        = "INSERT INTO `sessions` (id, data, owner, created_at, expires_at, deadline_at, version) VALUES (?, ?, ?, ?, ?, ?, ?)"
	sqlDeleteExpKey  = "DELETE FROM `sessions` WHERE id = ? AND expires_at <= ?"
	sqlLockRow       = "SELECT data, owner, created_at, expires_at, deadline_at, version FROM `sessions` WHERE id = ? AND expires_at > ? FOR UPDATE"
	sqlUpdate        = "UPDATE `sessions` SET data = ?, owner = ?, expires_at = ?, version = version + 1 WHERE id = ?"
	sqlTouch         = "UPDATE `sessions` SET expires_at = ? WHERE id = ? AND expires_at > ?"
	sqlDelete        = "DELETE FROM `sessions` WHERE id = ?"
	sqlDeleteOwner   = "DELETE FROM `sessions` WHERE owner = ? AND LENGTH(owner) = ? AND id <> ?"
	sqlDeleteExpired = "DELETE FROM `sessions` WHERE expires_at <= ? LIMIT ?"
	sqlGetLock       = "SELECT GET_LOCK(?, ?)"
	sqlReleaseLock   = "SELECT RELEASE_LOCK(?)"
)

var (
	mockNow       = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	mockNowSQL    = "2025-03-01 12:00:00.123456"
	mockCreated   = time.Date(2025, 3, 1, 11, 0, 0, 5000, time.UTC)
	mockExpires   = time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)
	mockDeadline  = time.Date(2025, 3, 2, 11, 0, 0, 0, time.UTC)
	mockLoadCols  = []string{"data", "owner", "created_at", "expires_at", "deadline_at", "version"}
	mockValues    = map[string]json.RawMessage{"user_id": json.RawMessage(`"k3j2"`), "count": json.RawMessage(`1`)}
	mockValuesSQL = `{"count":1,"user_id":"k3j2"}`
)

// newMockStore returns a store on a sqlmock pool that matches SQL exactly,
// whose clock reads mockNow, and checks on cleanup that every expected
// statement ran.
func newMockStore(t *testing.T, opts MySQLOptions) (*MySQLStore, sqlmock.Sqlmock) {
	t.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	if opts.CleanupInterval == 0 {
		opts.CleanupInterval = -1
	}
	if !opts.NoCreateTable {
		mock.ExpectExec(sqlCreateSessions).WillReturnResult(sqlmock.NewResult(0, 0))
	}
	s, err := NewMySQLStore(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return mockNow }
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
		db.Close()
	})
	return s, mock
}

func TestMySQLCreateTable(t *testing.T) {
	tests := []struct {
		table, want string
	}{
		{"", sqlCreateSessions},
		{"app_Sessions2", strings.Replace(sqlCreateSessions, "`sessions`", "`app_Sessions2`", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.table, func(t *testing.T) {
			db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			mock.ExpectExec(tt.want).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
			s, err := NewMySQLStore(db, MySQLOptions{Table: tt.table, CleanupInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CreateTableSQL(); got != tt.want {
				t.Errorf("CreateTableSQL() =\n%s\nwant\n%s", got, tt.want)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestMySQLNoCreateTableSendsNothing(t *testing.T) {
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := NewMySQLStore(db, MySQLOptions{NoCreateTable: true, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close must leave the caller's pool open.
	if err := db.Ping(); err != nil {
		t.Errorf("caller's pool after Close: %v", err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

// checkRefused opens a store with options it must refuse, on a pool that
// expects no statement: the error starts with prefix and mentions want.
func checkRefused[S interface{ Close() error }](t *testing.T, open func(*sql.DB) (S, error), prefix, want string) {
	t.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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

func TestMySQLBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts MySQLOptions
		want string
	}{
		{"dash", MySQLOptions{Table: "my-sessions"}, "plain identifier"},
		{"space", MySQLOptions{Table: "my sessions"}, "plain identifier"},
		{"backtick", MySQLOptions{Table: "s`; DROP TABLE users; --"}, "plain identifier"},
		{"qualified", MySQLOptions{Table: "db.sessions"}, "plain identifier"},
		{"leading digit", MySQLOptions{Table: "1sessions"}, "plain identifier"},
		{"non-ASCII", MySQLOptions{Table: "sessión"}, "plain identifier"},
		{"65 characters", MySQLOptions{Table: strings.Repeat("s", 65)}, "plain identifier"},
		{"negative batch", MySQLOptions{CleanupBatch: -1}, "CleanupBatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRefused(t, func(db *sql.DB) (*MySQLStore, error) { return NewMySQLStore(db, tt.opts) }, "session: mysql: ", tt.want)
		})
	}
	if _, err := NewMySQLStore(nil, MySQLOptions{}); err == nil {
		t.Error("NewMySQLStore(nil) gave no error")
	}
	if _, err := OpenMySQLStore(nil, MySQLOptions{}); err == nil {
		t.Error("OpenMySQLStore(nil) gave no error")
	}
	// 64 characters is MySQL's limit and must be accepted.
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := NewMySQLStore(db, MySQLOptions{Table: "_" + strings.Repeat("a", 63), NoCreateTable: true, CleanupInterval: -1})
	if err != nil {
		t.Fatalf("64-character table: %v", err)
	}
	s.Close()
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

func TestMySQLLoad(t *testing.T) {
	plus5 := time.FixedZone("+05:00", 5*3600)
	// wallClock is what the driver returns with parseTime=true and a loc
	// other than UTC: the stored UTC wall clock labelled with loc.
	wallClock := func(t time.Time, loc *time.Location) time.Time {
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
	}
	tests := []struct {
		name                       string
		created, expires, deadline driver.Value
		wantDeadline               time.Time
	}{
		{"parseTime=false", []byte("2025-03-01 11:00:00.000005"), []byte("2025-03-01 12:30:00.000000"), []byte("2025-03-02 11:00:00.000000"), mockDeadline},
		{"parseTime=false no deadline", []byte("2025-03-01 11:00:00.000005"), []byte("2025-03-01 12:30:00.000000"), nil, time.Time{}},
		{"parseTime=false string", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00", nil, time.Time{}},
		{"parseTime=true loc=UTC", mockCreated, mockExpires, mockDeadline, mockDeadline},
		{"parseTime=true loc=+05:00", wallClock(mockCreated, plus5), wallClock(mockExpires, plus5), wallClock(mockDeadline, plus5), mockDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnRows(
				sqlmock.NewRows(mockLoadCols).AddRow(mockValuesSQL, "alice", tt.created, tt.expires, tt.deadline, 7))
			rec, err := s.Load(context.Background(), mockKey)
			if err != nil {
				t.Fatal(err)
			}
			want := Record{Values: mockValues, Owner: "alice", Created: mockCreated, Expires: mockExpires, Deadline: tt.wantDeadline, Version: 7}
			checkRecord(t, rec, &want)
		})
	}
}

func checkRecord(t *testing.T, got, want *Record) {
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
	for _, tm := range []struct {
		name      string
		got, want time.Time
	}{{"Created", got.Created, want.Created}, {"Expires", got.Expires, want.Expires}, {"Deadline", got.Deadline, want.Deadline}} {
		if !tm.got.Equal(tm.want) || tm.got.Location() != time.UTC {
			t.Errorf("%s = %v, want %v in UTC", tm.name, tm.got, tm.want)
		}
	}
}

// TestMySQLLoadMissOrExpired proves that expiry is filtered by the query
// itself: the store sends its clock's now with "expires_at > ?", so a row
// the server leaves out reads as not found whatever cleanup has done.
func TestMySQLLoadMissOrExpired(t *testing.T) {
	for _, now := range []time.Time{mockNow, time.Date(2031, 12, 31, 23, 59, 59, 999999000, time.FixedZone("-03:00", -3*3600))} {
		t.Run(now.String(), func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			s.now = func() time.Time { return now }
			mock.ExpectQuery(sqlLoad).WithArgs(mockKey, now.UTC().Format("2006-01-02 15:04:05.000000")).
				WillReturnRows(sqlmock.NewRows(mockLoadCols))
			_, err := s.Load(context.Background(), mockKey)
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Load = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestMySQLLoadBadRow(t *testing.T) {
	tests := []struct {
		name string
		row  []driver.Value
		want string
	}{
		{"data not JSON", []driver.Value{"{count:1", "", "2025-03-01 11:00:00", "2025-03-01 12:30:00", nil, 1}, "not a JSON object"},
		{"data an array", []driver.Value{"[1]", "", "2025-03-01 11:00:00", "2025-03-01 12:30:00", nil, 1}, "not a JSON object"},
		{"zero date", []driver.Value{"{}", "", "0000-00-00 00:00:00", "2025-03-01 12:30:00", nil, 1}, "stored time"},
		{"NULL created", []driver.Value{"{}", "", nil, "2025-03-01 12:30:00", nil, 1}, "NULL time"},
		{"time of another type", []driver.Value{"{}", "", int64(5), "2025-03-01 12:30:00", nil, 1}, "as a time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).
				WillReturnRows(sqlmock.NewRows(mockLoadCols).AddRow(tt.row...))
			rec, err := s.Load(context.Background(), mockKey)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, %v; want an error mentioning %q", rec, err, tt.want)
			}
			if errors.Is(err, ErrNotFound) {
				t.Errorf("a corrupt row must not read as missing: %v", err)
			}
		})
	}
}

func TestMySQLCreate(t *testing.T) {
	// Values keep their bytes, spaces included: the store does not
	// re-encode them. Keys are sorted and escaped.
	values := map[string]json.RawMessage{
		"z":       json.RawMessage(`{ "nested": [1, 2] }`),
		"count":   json.RawMessage(`1`),
		`a"b<`:    json.RawMessage(`"é"`),
		"deleted": nil,
	}
	const data = `{"a\"b\u003c":"é","count":1,"z":{ "nested": [1, 2] }}`
	tests := []struct {
		name     string
		deadline time.Time
		arg      driver.Value
	}{
		{"with deadline", mockDeadline, "2025-03-02 11:00:00.000000"},
		{"no deadline", time.Time{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectExec(sqlInsert).
				WithArgs(mockKey, data, "alice", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", tt.arg, 1).
				WillReturnResult(sqlmock.NewResult(0, 1))
			rec := &Record{Values: values, Owner: "alice", Created: mockCreated, Expires: mockExpires, Deadline: tt.deadline, Version: 42}
			if err := s.Create(context.Background(), mockKey, rec); err != nil {
				t.Fatal(err)
			}
			if rec.Version != 1 {
				t.Errorf("rec.Version = %d after Create, want the stored 1", rec.Version)
			}
		})
	}
}

func TestMySQLCreateTakenKey(t *testing.T) {
	runCreateTakenKey(t, "session: mysql: create",
		sqlInsert, []driver.Value{mockKey, mockValuesSQL, "", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", nil, 1},
		sqlDeleteExpKey, []driver.Value{mockKey, mockNowSQL},
		func(t *testing.T) (sqlmock.Sqlmock, func() error) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			return mock, func() error {
				return s.Create(context.Background(), mockKey, &Record{Values: mockValues, Created: mockCreated, Expires: mockExpires})
			}
		})
}

// runCreateTakenKey: a Create whose INSERT finds the key taken deletes the
// row only if it is expired (deleteSQL) and inserts once more, whatever
// that DELETE found (the cleanup may have removed the row meanwhile); a
// second duplicate is a live row: ErrExists, starting with prefix, with the
// driver's 1062 kept.
func runCreateTakenKey(t *testing.T, prefix, insertSQL string, insertArgs []driver.Value, deleteSQL string, deleteArgs []driver.Value,
	open func(*testing.T) (sqlmock.Sqlmock, func() error)) {
	dup := &mysql.MySQLError{Number: 1062, Message: "Duplicate entry for key 'PRIMARY'"}
	tests := []struct {
		name      string
		deleted   int64 // rows the conditional DELETE removes
		secondDup bool  // the second INSERT finds the key taken too
	}{
		{"live row", 0, true},
		{"expired row removed by the cleanup meanwhile", 0, false},
		{"expired row", 1, false},
		{"expired row replaced by a live one meanwhile", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mock, create := open(t)
			mock.ExpectExec(insertSQL).WithArgs(insertArgs...).WillReturnError(dup)
			mock.ExpectExec(deleteSQL).WithArgs(deleteArgs...).WillReturnResult(sqlmock.NewResult(0, tt.deleted))
			second := mock.ExpectExec(insertSQL).WithArgs(insertArgs...)
			if tt.secondDup {
				second.WillReturnError(dup)
			} else {
				second.WillReturnResult(sqlmock.NewResult(0, 1))
			}
			err := create()
			if !tt.secondDup {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrExists) || !errors.Is(err, &mysql.MySQLError{Number: 1062}) || !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("Create = %v, want ErrExists with the driver's 1062 kept", err)
			}
		})
	}
}

// TestMySQLBadRecord: input the columns cannot hold exactly is refused
// before any statement is sent.
func TestMySQLBadRecord(t *testing.T) {
	good := func() *Record {
		return &Record{Values: mockValues, Owner: "alice", Created: mockCreated, Expires: mockExpires}
	}
	tests := []struct {
		name string
		key  string
		rec  func() *Record
		want string
	}{
		{"nil record", mockKey, func() *Record { return nil }, "nil record"},
		{"empty key", "", good, "invalid key"},
		{"key too long", strings.Repeat("a", 256), good, "invalid key"},
		{"key with space", "abc ", good, "invalid key"},
		{"key not ASCII", "clé", good, "invalid key"},
		{"value not JSON", mockKey, func() *Record {
			r := good()
			r.Values = map[string]json.RawMessage{"a": json.RawMessage(`{`)}
			return r
		}, "not valid UTF-8 JSON"},
		{"value not UTF-8", mockKey, func() *Record {
			r := good()
			r.Values = map[string]json.RawMessage{"a": json.RawMessage("\"\xff\"")}
			return r
		}, "not valid UTF-8 JSON"},
		{"name not UTF-8", mockKey, func() *Record {
			r := good()
			r.Values = map[string]json.RawMessage{"\xff": json.RawMessage(`1`)}
			return r
		}, "not valid UTF-8"},
		{"owner too long", mockKey, func() *Record { r := good(); r.Owner = strings.Repeat("é", 256); return r }, "owner"},
		{"owner not UTF-8", mockKey, func() *Record { r := good(); r.Owner = "\xff"; return r }, "owner"},
		{"zero expires", mockKey, func() *Record { r := good(); r.Expires = time.Time{}; return r }, "DATETIME range"},
		{"zero created", mockKey, func() *Record { r := good(); r.Created = time.Time{}; return r }, "DATETIME range"},
		{"year 10000 deadline", mockKey, func() *Record { r := good(); r.Deadline = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC); return r }, "DATETIME range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newMockStore(t, MySQLOptions{NoCreateTable: true})
			err := s.Create(context.Background(), tt.key, tt.rec())
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "session: mysql: create") {
				t.Errorf("Create = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// mockLockedRow is the row an Update's SELECT ... FOR UPDATE reads: data
// (mockValuesSQL unless a test says otherwise), owned by alice, version 7.
func mockLockedRow(data string) *sqlmock.Rows {
	return sqlmock.NewRows(mockLoadCols).AddRow(data, "alice", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", "2025-03-02 11:00:00.000000", 7)
}

// TestMySQLUpdate: Update is one transaction, BEGIN, the row read with its
// lock, the change applied in Go to what is stored now, the row written
// back (or deleted when no value is left), COMMIT; the record it returns is
// the one stored.
func TestMySQLUpdate(t *testing.T) {
	bob := "bob"
	later := mockExpires.Add(time.Hour)
	tests := []struct {
		name  string
		ch    *Change
		write func(m sqlmock.Sqlmock)
		want  *Record
	}{
		{"merged onto the stored row", &Change{
			Values:  map[string]json.RawMessage{"user_id": nil, "theme": json.RawMessage(`"dark"`)},
			Add:     map[string]int64{"count": 2, "visits": 1},
			Owner:   &bob,
			Expires: later,
		}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlUpdate).WithArgs(`{"count":3,"theme":"dark","visits":1}`, "bob", "2025-03-01 13:30:00.000000", mockKey).
				WillReturnResult(sqlmock.NewResult(0, 1))
		}, &Record{
			Values: map[string]json.RawMessage{"count": json.RawMessage(`3`), "theme": json.RawMessage(`"dark"`), "visits": json.RawMessage(`1`)},
			Owner:  "bob", Created: mockCreated, Expires: later, Deadline: mockDeadline, Version: 8,
		}},
		// Owner and expiry stay as stored when the change leaves them.
		{"cleared first", &Change{Clear: true, Values: map[string]json.RawMessage{"a": json.RawMessage(`1`)}}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlUpdate).WithArgs(`{"a":1}`, "alice", "2025-03-01 12:30:00.000000", mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		}, &Record{Values: map[string]json.RawMessage{"a": json.RawMessage(`1`)}, Owner: "alice", Created: mockCreated, Expires: mockExpires, Deadline: mockDeadline, Version: 8}},
		{"JSON null deletes a value", &Change{Values: map[string]json.RawMessage{"user_id": json.RawMessage(`null`)}}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlUpdate).WithArgs(`{"count":1}`, "alice", "2025-03-01 12:30:00.000000", mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		}, &Record{Values: map[string]json.RawMessage{"count": json.RawMessage(`1`)}, Owner: "alice", Created: mockCreated, Expires: mockExpires, Deadline: mockDeadline, Version: 8}},
		{"emptied: the row is deleted", &Change{Values: map[string]json.RawMessage{"user_id": nil, "count": json.RawMessage(`null`)}}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlDelete).WithArgs(mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		}, &Record{Values: map[string]json.RawMessage{}, Owner: "alice", Created: mockCreated, Expires: mockExpires, Deadline: mockDeadline, Version: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectBegin()
			mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(mockValuesSQL))
			tt.write(mock)
			mock.ExpectCommit()
			rec, err := s.Update(context.Background(), mockKey, tt.ch)
			if err != nil {
				t.Fatal(err)
			}
			checkRecord(t, rec, tt.want)
		})
	}
}

// TestMySQLUpdateRolledBack: a change that cannot apply to the stored row
// writes nothing: the transaction is rolled back and the row stays as it
// was, with an error that says why.
func TestMySQLUpdateRolledBack(t *testing.T) {
	long, notUTF8 := strings.Repeat("é", 256), "\xff"
	tests := []struct {
		name string
		row  *sqlmock.Rows
		ch   *Change
		is   error
		want string
	}{
		{"no live row", sqlmock.NewRows(mockLoadCols), &Change{Values: map[string]json.RawMessage{"a": json.RawMessage(`1`)}}, ErrNotFound, ""},
		{"corrupt row", mockLockedRow("[1]"), &Change{Values: map[string]json.RawMessage{"a": json.RawMessage(`1`)}}, ErrCorrupt, "not a JSON object"},
		{"too large", mockLockedRow(mockValuesSQL), &Change{Values: map[string]json.RawMessage{"big": json.RawMessage(`"0123456789"`)}, MaxSize: 40}, ErrTooLarge, "limit 40"},
		{"add to a string", mockLockedRow(mockValuesSQL), &Change{Add: map[string]int64{"user_id": 1}}, ErrNotInteger, `"user_id"`},
		{"sum overflows", mockLockedRow(mockValuesSQL), &Change{Add: map[string]int64{"count": math.MaxInt64}}, ErrNotInteger, "overflows"},
		{"value not JSON", mockLockedRow(mockValuesSQL), &Change{Values: map[string]json.RawMessage{"a": json.RawMessage(`{`)}}, nil, "not valid UTF-8 JSON"},
		{"name not UTF-8", mockLockedRow(mockValuesSQL), &Change{Values: map[string]json.RawMessage{"\xff": json.RawMessage(`1`)}}, nil, "not valid UTF-8"},
		{"owner too long", mockLockedRow(mockValuesSQL), &Change{Owner: &long}, nil, "owner"},
		{"owner not UTF-8", mockLockedRow(mockValuesSQL), &Change{Owner: &notUTF8}, nil, "owner"},
		{"expiry past DATETIME", mockLockedRow(mockValuesSQL), &Change{Expires: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil, "DATETIME range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectBegin()
			mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(tt.row)
			mock.ExpectRollback()
			rec, err := s.Update(context.Background(), mockKey, tt.ch)
			checkRefusedUpdate(t, "session: mysql: update", rec, err, tt.is, tt.want)
		})
	}
}

// checkRefusedUpdate: an Update that applied nothing returns no record and
// an error starting with prefix that wraps is (when set), mentions want,
// and passes for no other sentinel.
func checkRefusedUpdate(t *testing.T, prefix string, rec *Record, err error, is error, want string) {
	t.Helper()
	if rec != nil || err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Update = %+v, %v; want no record and an error starting with %q mentioning %q", rec, err, prefix, want)
	}
	for _, sentinel := range []error{ErrNotFound, ErrCorrupt, ErrTooLarge, ErrNotInteger, errors.ErrUnsupported, ErrConflict, ErrLockLost} {
		if got := errors.Is(err, sentinel); got != (sentinel == is) {
			t.Errorf("errors.Is(%v, %v) = %v", err, sentinel, got)
		}
	}
}

// TestMySQLUpdateNoStatement: a key the id column cannot hold, or no change
// at all, is refused before the transaction starts.
func TestMySQLUpdateNoStatement(t *testing.T) {
	ch := &Change{Values: map[string]json.RawMessage{"a": json.RawMessage(`1`)}}
	for _, tt := range []struct {
		name, key string
		ch        *Change
		want      string
	}{
		{"empty key", "", ch, "invalid key"},
		{"key too long", strings.Repeat("a", 256), ch, "invalid key"},
		{"key with space", "abc ", ch, "invalid key"},
		{"key not ASCII", "clé", ch, "invalid key"},
		{"nil change", mockKey, nil, "nil change"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newMockStore(t, MySQLOptions{NoCreateTable: true})
			rec, err := s.Update(context.Background(), tt.key, tt.ch)
			checkRefusedUpdate(t, "session: mysql: update", rec, err, nil, tt.want)
		})
	}
}

// TestMySQLUpdateSteps runs the transaction into a failure at each step.
func TestMySQLUpdateSteps(t *testing.T) {
	runUpdateSteps(t, updateTx[*MySQLStore]{
		prefix: "session: mysql: update",
		open: func(t *testing.T) (*MySQLStore, sqlmock.Sqlmock) {
			return newMockStore(t, MySQLOptions{NoCreateTable: true})
		},
		lock: func(m sqlmock.Sqlmock) *sqlmock.ExpectedQuery {
			return m.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL)
		},
		row: func() *sqlmock.Rows { return mockLockedRow(mockValuesSQL) },
		write: func(m sqlmock.Sqlmock) *sqlmock.ExpectedExec {
			return m.ExpectExec(sqlUpdate).WithArgs(`{"count":1,"theme":"dark","user_id":"k3j2"}`, "alice", "2025-03-01 12:30:00.000000", mockKey)
		},
		update: func(ctx context.Context, s *MySQLStore) (*Record, error) {
			return s.Update(ctx, mockKey, &Change{Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}})
		},
	})
}

// updateTx describes one SQL store's Update transaction to runUpdateSteps.
type updateTx[S any] struct {
	prefix string
	open   func(*testing.T) (S, sqlmock.Sqlmock)
	lock   func(m sqlmock.Sqlmock) *sqlmock.ExpectedQuery // the SELECT ... FOR UPDATE
	row    func() *sqlmock.Rows                           // the row it reads
	write  func(m sqlmock.Sqlmock) *sqlmock.ExpectedExec  // the UPDATE it then sends
	update func(ctx context.Context, s S) (*Record, error)
}

// txStep is one statement of an Update transaction, and how it ends.
type txStep struct {
	stmt  string // begin, select, update, commit or rollback
	err   error
	delay time.Duration
}

// runUpdateSteps: whichever step of Update's transaction fails, a failure
// after BEGIN rolls it back (a failed COMMIT has ended it already), the
// error says what failed and passes for no sentinel; a deadlock at any step
// runs the whole transaction once more, and its second try decides; a lock
// wait timeout is not repeated; a cancelled context stops it.
func runUpdateSteps[S any](t *testing.T, tx updateTx[S]) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}
	lockWait := &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded; try restarting transaction"}
	rollbackErr := errors.New("rollback failed too")
	ok := func(stmt string) txStep { return txStep{stmt: stmt} }
	fail := func(stmt string, err error) txStep { return txStep{stmt: stmt, err: err} }
	begin, sel, upd, commit, rollback := ok("begin"), ok("select"), ok("update"), ok("commit"), ok("rollback")
	wraps := func(want error, words ...string) func(t *testing.T, err error) {
		return func(t *testing.T, err error) {
			if !errors.Is(err, want) {
				t.Errorf("error %v does not wrap %v", err, want)
			}
			for _, w := range words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		}
	}
	tests := []struct {
		name   string
		steps  []txStep
		cancel time.Duration // > 0: cancel ctx this long into the call; < 0: before it
		check  func(t *testing.T, err error)
	}{
		{"begin fails", []txStep{fail("begin", refused)}, 0, wraps(syscall.ECONNREFUSED)},
		{"select fails", []txStep{begin, fail("select", refused), rollback}, 0, wraps(syscall.ECONNREFUSED)},
		{"update fails", []txStep{begin, sel, fail("update", refused), rollback}, 0, wraps(syscall.ECONNREFUSED)},
		{"commit fails", []txStep{begin, sel, upd, fail("commit", refused)}, 0, wraps(syscall.ECONNREFUSED)},
		{"rollback fails too", []txStep{begin, fail("select", refused), fail("rollback", rollbackErr)}, 0, func(t *testing.T, err error) {
			if !errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, rollbackErr) {
				t.Errorf("error %v: want the statement's, not the rollback's", err)
			}
		}},
		{"deadlock at select: all again", []txStep{begin, fail("select", deadlock), rollback, begin, sel, upd, commit}, 0, nil},
		{"deadlock at update: all again", []txStep{begin, sel, fail("update", deadlock), rollback, begin, sel, upd, commit}, 0, nil},
		{"deadlock at commit: all again", []txStep{begin, sel, upd, fail("commit", deadlock), begin, sel, upd, commit}, 0, nil},
		{"deadlock twice", []txStep{begin, sel, fail("update", deadlock), rollback, begin, fail("select", deadlock), rollback}, 0,
			wraps(&mysql.MySQLError{Number: 1213}, "after one retry")},
		{"lock wait timeout at select: not retried", []txStep{begin, fail("select", lockWait), rollback}, 0,
			wraps(&mysql.MySQLError{Number: 1205}, "not retried")},
		{"lock wait timeout at update: not retried", []txStep{begin, sel, fail("update", lockWait), rollback}, 0,
			wraps(&mysql.MySQLError{Number: 1205}, "not retried")},
		{"cancelled before", nil, -1, wraps(context.Canceled)},
		{"cancelled in the row lock wait", []txStep{begin, {stmt: "select", err: errors.New("unreachable"), delay: time.Minute}, rollback}, 20 * time.Millisecond,
			wraps(context.Canceled)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := tx.open(t)
			for _, step := range tt.steps {
				switch step.stmt {
				case "begin":
					mock.ExpectBegin().WillReturnError(step.err)
				case "select":
					if q := tx.lock(mock).WillDelayFor(step.delay); step.err != nil {
						q.WillReturnError(step.err)
					} else {
						q.WillReturnRows(tx.row())
					}
				case "update":
					if e := tx.write(mock); step.err != nil {
						e.WillReturnError(step.err)
					} else {
						e.WillReturnResult(sqlmock.NewResult(0, 1))
					}
				case "commit":
					mock.ExpectCommit().WillReturnError(step.err)
				case "rollback":
					mock.ExpectRollback().WillReturnError(step.err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			switch {
			case tt.cancel < 0:
				cancel()
			case tt.cancel > 0:
				time.AfterFunc(tt.cancel, cancel)
			}
			rec, err := tx.update(ctx, s)
			waitMet(t, mock)
			if tt.check == nil {
				if err != nil || rec == nil || string(rec.Values["theme"]) != `"dark"` {
					t.Fatalf("Update = %+v, %v; want the change applied", rec, err)
				}
				return
			}
			if rec != nil || err == nil {
				t.Fatalf("Update = %+v, %v; want an error", rec, err)
			}
			if !strings.HasPrefix(err.Error(), tx.prefix) {
				t.Errorf("error %q does not start with %q", err, tx.prefix)
			}
			for _, sentinel := range []error{ErrNotFound, ErrExists, ErrConflict, ErrCorrupt, ErrLockLost} {
				if errors.Is(err, sentinel) {
					t.Errorf("a failure must not pass for %v: %v", sentinel, err)
				}
			}
			tt.check(t, err)
		})
	}
}

// waitMet waits until every expected statement has run: database/sql may
// roll back a transaction whose context was cancelled from a goroutine of
// its own, just after the call returned.
func waitMet(t *testing.T, mock sqlmock.Sqlmock) {
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

func TestMySQLTouch(t *testing.T) {
	const exp = "2025-03-01 12:30:00.000000"
	tests := []struct {
		name   string
		expect func(sqlmock.Sqlmock)
		want   error
	}{
		{"moved", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlTouch).WithArgs(exp, mockKey, mockNowSQL).WillReturnResult(sqlmock.NewResult(0, 1))
		}, nil},
		{"already at that expiry", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlTouch).WithArgs(exp, mockKey, mockNowSQL).WillReturnResult(sqlmock.NewResult(0, 0))
			m.ExpectQuery(sqlExists).WithArgs(mockKey, mockNowSQL).WillReturnRows(sqlmock.NewRows([]string{"version"}).AddRow(3))
		}, nil},
		{"missing or expired", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlTouch).WithArgs(exp, mockKey, mockNowSQL).WillReturnResult(sqlmock.NewResult(0, 0))
			m.ExpectQuery(sqlExists).WithArgs(mockKey, mockNowSQL).WillReturnRows(sqlmock.NewRows([]string{"version"}))
		}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			tt.expect(mock)
			err := s.Touch(context.Background(), mockKey, mockExpires.In(time.FixedZone("+09:00", 9*3600)))
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Touch = %v, want %v", err, tt.want)
			}
		})
	}
	s, _ := newMockStore(t, MySQLOptions{NoCreateTable: true})
	if err := s.Touch(context.Background(), mockKey, time.Time{}); err == nil || !strings.Contains(err.Error(), "DATETIME range") {
		t.Errorf("Touch(zero time) = %v, want a range error and no statement", err)
	}
}

func TestMySQLDelete(t *testing.T) {
	s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
	mock.ExpectExec(sqlDelete).WithArgs(mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(sqlDelete).WithArgs(mockKey).WillReturnResult(sqlmock.NewResult(0, 0))
	for range 2 { // the second finds nothing, which is no error
		if err := s.Delete(context.Background(), mockKey); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMySQLDeleteOwner(t *testing.T) {
	tests := []struct {
		name, owner, except string
		expect              func(sqlmock.Sqlmock)
		want                int
	}{
		{"all", "alice", "", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlDeleteOwner).WithArgs("alice", 5, "").WillReturnResult(sqlmock.NewResult(0, 3))
		}, 3},
		{"all but one", "zoë", mockKey, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlDeleteOwner).WithArgs("zoë", 4, mockKey).WillReturnResult(sqlmock.NewResult(0, 2))
		}, 2},
		{"empty owner sends nothing", "", mockKey, func(sqlmock.Sqlmock) {}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			tt.expect(mock)
			n, err := s.DeleteOwner(context.Background(), tt.owner, tt.except)
			if err != nil || n != tt.want {
				t.Fatalf("DeleteOwner = %d, %v, want %d", n, err, tt.want)
			}
		})
	}
}

func TestMySQLDeleteExpiredBatches(t *testing.T) {
	tests := []struct {
		name    string
		batch   int
		limit   int
		results []int64
	}{
		{"default batch", 0, 1000, []int64{1000, 1000, 12}},
		{"exact multiple ends with an empty batch", 0, 1000, []int64{1000, 0}},
		{"nothing expired", 0, 1000, []int64{0}},
		{"batch of 2", 2, 2, []int64{2, 2, 2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true, CleanupBatch: tt.batch})
			var want int64
			for _, n := range tt.results {
				mock.ExpectExec(sqlDeleteExpired).WithArgs(mockNowSQL, tt.limit).WillReturnResult(sqlmock.NewResult(0, n))
				want += n
			}
			got, err := s.DeleteExpired(context.Background())
			if err != nil || got != want {
				t.Fatalf("DeleteExpired = %d, %v, want %d", got, err, want)
			}
		})
	}
}

// syncBuffer collects log output written from the cleanup goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// cleanupGoroutines counts the cleanup loops started by the named function
// (a loop not yet scheduled shows only that).
func cleanupGoroutines(creator string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by github.com/seed013449c2/session."+creator+" in goroutine")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestCleanupLogsAndCloseStops: for both SQL stores, a failing cleanup is
// logged and the loop keeps going; Close stops the goroutine and waits for
// it.
func TestCleanupLogsAndCloseStops(t *testing.T) {
	cases := []struct {
		name, creator, deleteSQL, table string
		open                            func(*sql.DB, *slog.Logger) (*mysqlTable, error)
		wantLogs                        []string
	}{
		{"MySQL", "newMySQLStore", sqlDeleteExpired, "test.sessions",
			func(db *sql.DB, l *slog.Logger) (*mysqlTable, error) {
				s, err := NewMySQLStore(db, MySQLOptions{NoCreateTable: true, CleanupInterval: time.Millisecond, Logger: l})
				if err != nil {
					return nil, err
				}
				return &s.mysqlTable, nil
			},
			[]string{"level=ERROR", "cleanup failed", "does not exist"}},
		{"Koa", "NewKoaStore", sqlKoaDeleteExpired, "test._mysql_session_store",
			func(db *sql.DB, l *slog.Logger) (*mysqlTable, error) {
				s, err := NewKoaStore(db, KoaOptions{NoCreateTable: true, CleanupInterval: time.Millisecond, Logger: l})
				if err != nil {
					return nil, err
				}
				return &s.mysqlTable, nil
			},
			[]string{"level=ERROR", "session: koa: cleanup failed", "table `_mysql_session_store` does not exist", "KoaStore.CreateTableSQL", "KoaOptions.NoCreateTable"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			missing := &mysql.MySQLError{Number: 1146, Message: "Table '" + c.table + "' doesn't exist"}
			mock.ExpectExec(c.deleteSQL).WithArgs(sqlmock.AnyArg(), 1000).WillReturnError(missing)
			mock.ExpectExec(c.deleteSQL).WithArgs(sqlmock.AnyArg(), 1000).WillReturnResult(sqlmock.NewResult(0, 5))
			var logs syncBuffer
			before := cleanupGoroutines(c.creator)
			s, err := c.open(db, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if got := cleanupGoroutines(c.creator); got != before+1 {
				t.Fatalf("%d cleanup goroutines after %s, want %d", got, c.creator, before+1)
			}
			deadline := time.Now().Add(10 * time.Second)
			for mock.ExpectationsWereMet() != nil {
				if time.Now().After(deadline) {
					t.Fatalf("cleanup did not run twice: %v", mock.ExpectationsWereMet())
				}
				time.Sleep(time.Millisecond)
			}
			if err := s.close(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-s.life.done:
			default:
				t.Fatal("Close returned before the cleanup goroutine ended")
			}
			if got := cleanupGoroutines(c.creator); got != before {
				t.Errorf("%d cleanup goroutines after Close, want %d", got, before)
			}
			if err := s.close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			out := logs.String()
			for _, want := range c.wantLogs {
				if !strings.Contains(out, want) {
					t.Errorf("cleanup failure log lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func lockNameFor(table, key string) string {
	sum := sha256.Sum256([]byte(table + "\x00" + key))
	return "session:" + hex.EncodeToString(sum[:])[:56]
}

func TestMySQLLockName(t *testing.T) {
	s, _ := newMockStore(t, MySQLOptions{NoCreateTable: true})
	other, _ := newMockStore(t, MySQLOptions{NoCreateTable: true, Table: "other"})
	long := strings.Repeat("k", 255)
	names := map[string]bool{}
	for _, n := range []string{s.lockName(mockKey), s.lockName(long), other.lockName(mockKey)} {
		if len(n) > 64 {
			t.Errorf("lock name %q has %d characters, MySQL allows 64", n, len(n))
		}
		names[n] = true
	}
	if len(names) != 3 {
		t.Errorf("lock names collide across keys or tables: %v", names)
	}
	if got, want := s.lockName(mockKey), lockNameFor("sessions", mockKey); got != want {
		t.Errorf("lockName = %q, want %q", got, want)
	}
}

func TestMySQLLock(t *testing.T) {
	name := lockNameFor("sessions", mockKey)
	lockRows := func(v driver.Value) *sqlmock.Rows { return sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(v) }
	releaseRows := func(v driver.Value) *sqlmock.Rows { return sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(v) }
	tests := []struct {
		name      string
		timeout   time.Duration // 0: no deadline
		expect    func(sqlmock.Sqlmock)
		want      error // nil: acquired
		wantMsg   string
		unlockErr error // what Unlock reports
		warn      bool  // RELEASE_LOCK fails and is logged
	}{
		{"acquired, deadline rounds up", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 3).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(releaseRows(1))
		}, nil, "", nil, false},
		{"under a second waits one", 100 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 1).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(releaseRows(1))
		}, nil, "", nil, false},
		{"no deadline polls until acquired", 0, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 30).WillReturnRows(lockRows(0))
			m.ExpectQuery(sqlGetLock).WithArgs(name, 30).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(releaseRows(1))
		}, nil, "", nil, false},
		{"server timeout", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 3).WillReturnRows(lockRows(0))
		}, ErrLockTimeout, "", nil, false},
		{"NULL", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 3).WillReturnRows(lockRows(nil))
			m.ExpectClose()
		}, nil, "returned NULL", nil, false},
		// RELEASE_LOCK answers 0 (another connection holds the lock) or
		// NULL (nobody does): this connection had lost it. The connection
		// is closed all the same.
		{"released by someone else: lost", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 3).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(releaseRows(0))
			m.ExpectClose()
		}, nil, "", ErrLockLost, false},
		{"held by nobody: lost", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 3).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(releaseRows(nil))
			m.ExpectClose()
		}, nil, "", ErrLockLost, false},
		// A RELEASE_LOCK that fails on a live connection is logged, and the
		// connection closed, which frees the lock on the server.
		{"release fails: the connection is closed", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 3).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnError(&mysql.MySQLError{Number: 1290, Message: "read only"})
			m.ExpectClose()
		}, nil, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			tt.expect(mock)
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			lease, err := s.Lock(ctx, mockKey)
			switch {
			case tt.wantMsg != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) || errors.Is(err, ErrLockTimeout) {
					t.Fatalf("Lock = %v, want an error mentioning %q", err, tt.wantMsg)
				}
			case tt.want != nil:
				if !errors.Is(err, tt.want) {
					t.Fatalf("Lock = %v, want %v", err, tt.want)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				// The lease's store is a copy bound to the lock's
				// connection, sharing the store's life.
				if ls, ok := lease.Store().(*MySQLStore); !ok || ls == s || ls.lease == nil || ls.run == s.run || ls.life != s.life {
					t.Errorf("lease.Store() = %T %p, want a *MySQLStore bound to the lock's connection", lease.Store(), lease.Store())
				}
				for i := range 2 { // only the first call releases; both report
					if err := lease.Unlock(); !errors.Is(err, tt.unlockErr) || (tt.unlockErr == nil) != (err == nil) {
						t.Errorf("Unlock #%d = %v, want %v", i+1, err, tt.unlockErr)
					}
				}
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
			if got := strings.Contains(logs.String(), "RELEASE_LOCK failed"); got != tt.warn {
				t.Errorf("release failure logged = %v, want %v:\n%s", got, tt.warn, logs.String())
			}
			if s.life.locks.locks[lockNameFor("sessions", mockKey)] != nil {
				t.Error("the in-process queue still holds the key after the lock ended")
			}
		})
	}
}

// TestMySQLLockCancelled: a wait cut short by ctx reports ctx's error, and
// a deadline also reports ErrLockTimeout.
func TestMySQLLockCancelled(t *testing.T) {
	name := lockNameFor("sessions", mockKey)
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want []error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, []error{ErrLockTimeout, context.DeadlineExceeded}},
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, []error{context.Canceled}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectQuery(sqlGetLock).WithArgs(name, sqlmock.AnyArg()).WillDelayFor(time.Minute).
				WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
			mock.ExpectClose()
			ctx, cancel := tt.ctx()
			defer cancel()
			_, err := s.Lock(ctx, mockKey)
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("Lock = %v, want it to wrap %v", err, want)
				}
			}
		})
	}
}

// queued reports how many callers hold or wait for the in-process lock of
// the lock name.
func queued(b *mysqlTable, name string) int {
	l := &b.life.locks
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := l.locks[name]; k != nil {
		return k.refs
	}
	return 0
}

// waitQueued waits until n callers hold or wait for name's in-process lock.
func waitQueued(t *testing.T, b *mysqlTable, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for queued(b, name) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d callers queued for the lock, want %d", queued(b, name), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMySQLLockQueuesInProcess: callers that want a lock this process
// already holds queue in the process: they send nothing and hold or wait
// for no connection (the pool here has one, which the holder has); a
// deadline or a cancellation ends their wait there; once the holder
// unlocks, they take the lock one at a time, each on the pool's one
// connection.
func TestMySQLLockQueuesInProcess(t *testing.T) {
	name := lockNameFor("sessions", mockKey)
	s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
	s.db.SetMaxOpenConns(1)
	lockRows := sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1)
	mock.ExpectQuery(sqlGetLock).WithArgs(name, sqlmock.AnyArg()).WillReturnRows(lockRows)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := s.Lock(ctx, mockKey)
	if err != nil {
		t.Fatal(err)
	}

	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := s.Lock(short, mockKey); !errors.Is(err, ErrLockTimeout) || !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "session: mysql: lock") {
		t.Errorf("Lock past its deadline in the queue = %v, want ErrLockTimeout and DeadlineExceeded", err)
	}
	gone, leave := context.WithCancel(ctx)
	left := make(chan error, 1)
	go func() {
		_, err := s.Lock(gone, mockKey)
		left <- err
	}()
	waitQueued(t, &s.mysqlTable, name, 2)
	leave()
	if err := <-left; !errors.Is(err, context.Canceled) || errors.Is(err, ErrLockTimeout) {
		t.Errorf("Lock cancelled in the queue = %v, want context.Canceled and no ErrLockTimeout", err)
	}

	const waiters = 4
	mock.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(1))
	for range waiters {
		mock.ExpectQuery(sqlGetLock).WithArgs(name, sqlmock.AnyArg()).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
		mock.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(1))
	}
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease, err := s.Lock(ctx, mockKey)
			if err != nil {
				t.Errorf("queued Lock: %v", err)
				return
			}
			if inside.Add(1) > 1 {
				overlaps.Add(1)
			}
			inside.Add(-1)
			if err := lease.Unlock(); err != nil {
				t.Errorf("Unlock: %v", err)
			}
		}()
	}
	waitQueued(t, &s.mysqlTable, name, 1+waiters)
	if st := s.db.Stats(); st.InUse != 1 || st.WaitCount != 0 {
		t.Errorf("with %d callers queued: %d connections in use, %d waits for one; want 1 (the holder's) and 0", waiters, st.InUse, st.WaitCount)
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d times two callers held the lock at once", n)
	}
	if n := queued(&s.mysqlTable, name); n != 0 || len(s.life.locks.locks) != 0 {
		t.Errorf("the in-process queue keeps %d entries after every lock ended", len(s.life.locks.locks))
	}
}

// TestMySQLLeaseOneConnection: every method of a lease's store runs on the
// lock's connection, so a locked request needs no second one: here the
// pool has one connection, which the lock holds, and a statement that
// asked the pool would wait out its deadline.
func TestMySQLLeaseOneConnection(t *testing.T) {
	name := lockNameFor("sessions", mockKey)
	s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
	s.db.SetMaxOpenConns(1)
	mock.ExpectQuery(sqlGetLock).WithArgs(name, 5).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
	ctx, cancel := context.WithTimeout(context.Background(), 4500*time.Millisecond)
	defer cancel()
	lease, err := s.Lock(ctx, mockKey)
	if err != nil {
		t.Fatal(err)
	}
	ls := lease.Store()
	mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnRows(
		sqlmock.NewRows(mockLoadCols).AddRow(mockValuesSQL, "alice", mockCreated, mockExpires, mockDeadline, 7))
	mock.ExpectBegin()
	mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(mockValuesSQL))
	mock.ExpectExec(sqlUpdate).WithArgs(`{"count":2,"user_id":"k3j2"}`, "alice", "2025-03-01 12:30:00.000000", mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	mock.ExpectExec(sqlTouch).WithArgs("2025-03-01 12:30:00.000000", mockKey, mockNowSQL).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(sqlInsert).WithArgs("k2", mockValuesSQL, "", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", nil, 1).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(sqlDelete).WithArgs("k2").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(sqlDeleteOwner).WithArgs("alice", 5, mockKey).WillReturnResult(sqlmock.NewResult(0, 0))
	mock.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(1))
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"load", func(ctx context.Context) error { _, err := ls.Load(ctx, mockKey); return err }},
		{"update", func(ctx context.Context) error {
			_, err := ls.Update(ctx, mockKey, &Change{Add: map[string]int64{"count": 1}})
			return err
		}},
		{"touch", func(ctx context.Context) error { return ls.Touch(ctx, mockKey, mockExpires) }},
		{"create", func(ctx context.Context) error {
			return ls.Create(ctx, "k2", &Record{Values: mockValues, Created: mockCreated, Expires: mockExpires})
		}},
		{"delete", func(ctx context.Context) error { return ls.Delete(ctx, "k2") }},
		{"delete owner", func(ctx context.Context) error {
			_, err := ls.(OwnerStore).DeleteOwner(ctx, "alice", mockKey)
			return err
		}},
	}
	for _, c := range calls {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := c.call(cctx)
		cancel()
		if err != nil {
			t.Errorf("%s through the lease's store: %v", c.name, err)
		}
	}
	if st := s.db.Stats(); st.WaitCount != 0 || st.OpenConnections != 1 {
		t.Errorf("%d waits for a connection, %d open; want 0 and the lock's 1", st.WaitCount, st.OpenConnections)
	}
	if err := lease.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// TestMySQLLeaseLost: when a statement of the lease's store finds the
// lock's connection dead, the lock died with it: the call fails with
// ErrLockLost (and the driver's error), so a holder never writes after
// another took the lock, and Unlock reports the loss without a
// RELEASE_LOCK and closes the connection. A failure that leaves the
// connection alive is not a loss.
func TestMySQLLeaseLost(t *testing.T) {
	name := lockNameFor("sessions", mockKey)
	lost := []struct {
		name string
		err  error
	}{
		{"connection killed (1927)", &mysql.MySQLError{Number: 1927, Message: "Connection was killed"}},
		{"server shutdown (1053)", &mysql.MySQLError{Number: 1053, Message: "Server shutdown in progress"}},
		{"bad connection", driver.ErrBadConn},
		{"invalid connection", mysql.ErrInvalidConn},
		{"unexpected EOF", io.ErrUnexpectedEOF},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}},
	}
	for _, op := range mockOps {
		for _, l := range lost {
			t.Run(op.name+"/"+l.name, func(t *testing.T) {
				s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
				mock.ExpectQuery(sqlGetLock).WithArgs(name, sqlmock.AnyArg()).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
				op.expect(mock, 0, l.err)
				mock.ExpectClose()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				lease, err := s.Lock(ctx, mockKey)
				if err != nil {
					t.Fatal(err)
				}
				err = op.call(ctx, lease.Store().(*MySQLStore))
				if !errors.Is(err, ErrLockLost) || !errors.Is(err, l.err) || !strings.HasPrefix(err.Error(), "session: mysql: "+op.name) {
					t.Errorf("%s on a dead lock connection = %v, want ErrLockLost wrapping %v", op.name, err, l.err)
				}
				if err := lease.Unlock(); !errors.Is(err, ErrLockLost) {
					t.Errorf("Unlock after the loss = %v, want ErrLockLost", err)
				}
				waitMet(t, mock)
			})
		}
	}
	t.Run("a failure on a live connection", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectQuery(sqlGetLock).WithArgs(name, sqlmock.AnyArg()).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
		mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnError(&mysql.MySQLError{Number: 1146, Message: "Table 'test.sessions' doesn't exist"})
		mock.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(1))
		lease, err := s.Lock(context.Background(), mockKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lease.Store().Load(context.Background(), mockKey); err == nil || errors.Is(err, ErrLockLost) {
			t.Errorf("Load = %v, want the 1146 and no ErrLockLost", err)
		}
		if err := lease.Unlock(); err != nil {
			t.Errorf("Unlock = %v, want the lock released", err)
		}
	})
}

// sqlOp is one method of a SQL store (S), run by the error-path tests.
type sqlOp[S any] struct {
	name string
	// expect sets up the method's first statement, failing with err
	// after delay, and what must follow its failure (a ROLLBACK).
	expect func(m sqlmock.Sqlmock, delay time.Duration, err error)
	call   func(ctx context.Context, s S) error
}

type mockOp = sqlOp[*MySQLStore]

var mockOps = []mockOp{
	{"load", func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillDelayFor(d).WillReturnError(err)
	}, func(ctx context.Context, s *MySQLStore) error { _, err := s.Load(ctx, mockKey); return err }},
	{"create", func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlInsert).WithArgs(mockKey, mockValuesSQL, "", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", nil, 1).
			WillDelayFor(d).WillReturnError(err)
	}, func(ctx context.Context, s *MySQLStore) error {
		return s.Create(ctx, mockKey, &Record{Values: mockValues, Created: mockCreated, Expires: mockExpires})
	}},
	// Update's first statement after BEGIN is the row read; its failure
	// rolls the transaction back.
	{"update", func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectBegin()
		m.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillDelayFor(d).WillReturnError(err)
		m.ExpectRollback()
	}, func(ctx context.Context, s *MySQLStore) error {
		_, err := s.Update(ctx, mockKey, &Change{Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}})
		return err
	}},
	{"touch", func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlTouch).WithArgs("2025-03-01 12:30:00.000000", mockKey, mockNowSQL).WillDelayFor(d).WillReturnError(err)
	}, func(ctx context.Context, s *MySQLStore) error { return s.Touch(ctx, mockKey, mockExpires) }},
	{"delete", func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlDelete).WithArgs(mockKey).WillDelayFor(d).WillReturnError(err)
	}, func(ctx context.Context, s *MySQLStore) error { return s.Delete(ctx, mockKey) }},
	{"delete owner", func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlDeleteOwner).WithArgs("alice", 5, "").WillDelayFor(d).WillReturnError(err)
	}, func(ctx context.Context, s *MySQLStore) error { _, err := s.DeleteOwner(ctx, "alice", ""); return err }},
	{"delete expired", func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlDeleteExpired).WithArgs(mockNowSQL, 1000).WillDelayFor(d).WillReturnError(err)
	}, func(ctx context.Context, s *MySQLStore) error { _, err := s.DeleteExpired(ctx); return err }},
}

// TestMySQLErrors runs every method into every kind of failure.
func TestMySQLErrors(t *testing.T) {
	runSQLErrors(t, "session: mysql: ", "test.sessions", []string{"table `sessions` does not exist", "CreateTableSQL", "NoCreateTable"},
		func(t *testing.T) (*MySQLStore, sqlmock.Sqlmock) {
			return newMockStore(t, MySQLOptions{NoCreateTable: true})
		}, mockOps)
}

// TestMySQLRetryOnce: a deadlock costs one retry, whose result is the
// call's; a lock wait timeout none.
func TestMySQLRetryOnce(t *testing.T) {
	runSQLRetryOnce(t, func(t *testing.T) (*MySQLStore, sqlmock.Sqlmock) {
		return newMockStore(t, MySQLOptions{NoCreateTable: true})
	}, mockOps)
}

// runSQLErrors runs every op of a SQL store into every kind of failure:
// each gives an error that starts with prefix and the operation's name,
// wraps what went wrong (for a missing table: with hints that name the
// table and the fix), passes for none of the store sentinels, and sends no
// statement beyond the expected ones (the mock fails on any other).
func runSQLErrors[S any](t *testing.T, prefix, table string, hints []string, open func(*testing.T) (S, sqlmock.Sqlmock), ops []sqlOp[S]) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}
	lockWait := &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded; try restarting transaction"}
	missing := &mysql.MySQLError{Number: 1146, Message: "Table '" + table + "' doesn't exist"}
	tests := []struct {
		name   string
		cancel time.Duration // > 0: cancel ctx this long into the statement; < 0: before the call
		expect func(m sqlmock.Sqlmock, op sqlOp[S])
		check  func(t *testing.T, err error)
	}{
		{"connection refused", 0, func(m sqlmock.Sqlmock, op sqlOp[S]) { op.expect(m, 0, refused) }, func(t *testing.T, err error) {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("error %v does not wrap ECONNREFUSED", err)
			}
		}},
		{"deadlock twice", 0, func(m sqlmock.Sqlmock, op sqlOp[S]) {
			op.expect(m, 0, deadlock)
			op.expect(m, 0, deadlock)
		}, func(t *testing.T, err error) {
			if !errors.Is(err, &mysql.MySQLError{Number: 1213}) || !strings.Contains(err.Error(), "after one retry") {
				t.Errorf("error %v does not wrap the 1213 after a retry", err)
			}
		}},
		// Sent once: a second try would find no expectation, and fail
		// with the mock's own error instead of the 1205.
		{"lock wait timeout", 0, func(m sqlmock.Sqlmock, op sqlOp[S]) { op.expect(m, 0, lockWait) }, func(t *testing.T, err error) {
			if !errors.Is(err, &mysql.MySQLError{Number: 1205}) || !strings.Contains(err.Error(), "not retried") || strings.Contains(err.Error(), "after one retry") {
				t.Errorf("error %v does not wrap the 1205 as not retried", err)
			}
		}},
		{"missing table", 0, func(m sqlmock.Sqlmock, op sqlOp[S]) { op.expect(m, 0, missing) }, func(t *testing.T, err error) {
			if !errors.Is(err, &mysql.MySQLError{Number: 1146}) {
				t.Errorf("error %v does not wrap the 1146", err)
			}
			for _, hint := range hints {
				if !strings.Contains(err.Error(), hint) {
					t.Errorf("error %q does not say %q", err, hint)
				}
			}
		}},
		{"cancelled before", -1, func(sqlmock.Sqlmock, sqlOp[S]) {}, func(t *testing.T, err error) {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v does not wrap context.Canceled", err)
			}
		}},
		{"cancelled during", 20 * time.Millisecond, func(m sqlmock.Sqlmock, op sqlOp[S]) { op.expect(m, time.Minute, errors.New("unreachable")) },
			func(t *testing.T, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("error %v does not wrap context.Canceled", err)
				}
			}},
	}
	for _, op := range ops {
		for _, tt := range tests {
			t.Run(op.name+"/"+tt.name, func(t *testing.T) {
				s, mock := open(t)
				tt.expect(mock, op)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				switch {
				case tt.cancel < 0:
					cancel()
				case tt.cancel > 0:
					time.AfterFunc(tt.cancel, cancel)
				}
				err := op.call(ctx, s)
				waitMet(t, mock)
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.HasPrefix(err.Error(), prefix+op.name) {
					t.Errorf("error %q does not start with %q", err, prefix+op.name)
				}
				for _, sentinel := range []error{ErrNotFound, ErrExists, ErrConflict, ErrCorrupt, ErrLockLost} {
					if errors.Is(err, sentinel) {
						t.Errorf("a failure must not pass for %v: %v", sentinel, err)
					}
				}
				tt.check(t, err)
			})
		}
	}
}

// runSQLRetryOnce: for every op, a deadlock (1213) costs one retry, and the
// retry's result is the call's; a lock wait timeout (1205) is not retried,
// which would double a wait that already ran its course.
func runSQLRetryOnce[S any](t *testing.T, open func(*testing.T) (S, sqlmock.Sqlmock), ops []sqlOp[S]) {
	errRetry := errors.New("the retry's own error")
	for _, op := range ops {
		for _, tt := range []struct {
			number  uint16
			retried bool
		}{{1213, true}, {1205, false}} {
			t.Run(fmt.Sprintf("%s/%d", op.name, tt.number), func(t *testing.T) {
				s, mock := open(t)
				op.expect(mock, 0, &mysql.MySQLError{Number: tt.number})
				if tt.retried {
					// The retry reaches the mock; an error the store does
					// not retry proves it was sent exactly once more.
					op.expect(mock, 0, errRetry)
				}
				err := op.call(context.Background(), s)
				switch {
				case tt.retried && (!errors.Is(err, errRetry) || errors.Is(err, &mysql.MySQLError{Number: tt.number})):
					t.Fatalf("%v after %d: want the retry's own error", err, tt.number)
				case !tt.retried && !errors.Is(err, &mysql.MySQLError{Number: tt.number}):
					t.Fatalf("%v after %d: want the %d itself, not retried", err, tt.number, tt.number)
				}
			})
		}
	}
}

// TestMySQLOpenConnectionRefused uses the real driver against a loopback
// port nobody listens on.
func TestMySQLOpenConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.DBName = "tcp", addr, "root", "test"
	before := cleanupGoroutines("newMySQLStore")
	s, err := OpenMySQLStore(cfg, MySQLOptions{})
	if err == nil {
		s.Close()
		t.Fatal("OpenMySQLStore succeeded without a server")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.HasPrefix(err.Error(), "session: mysql: create table") {
		t.Errorf("OpenMySQLStore = %v, want a create table error wrapping ECONNREFUSED", err)
	}
	if got := cleanupGoroutines("newMySQLStore"); got != before {
		t.Errorf("a failed constructor left %d cleanup goroutines running", got-before)
	}
}
