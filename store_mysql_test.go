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
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
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
	sqlSave          = "UPDATE `sessions` SET data = ?, owner = ?, created_at = ?, expires_at = ?, deadline_at = ?, version = version + 1 WHERE id = ? AND version = ? AND expires_at > ?"
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
			for _, op := range []struct {
				name string
				call func() error
			}{
				{"create", func() error { return s.Create(context.Background(), tt.key, tt.rec()) }},
				{"save", func() error { return s.Save(context.Background(), tt.key, tt.rec()) }},
			} {
				err := op.call()
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "session: mysql: "+op.name) {
					t.Errorf("%s = %v, want an error mentioning %q", op.name, err, tt.want)
				}
			}
		})
	}
}

func TestMySQLSave(t *testing.T) {
	saveArgs := []driver.Value{mockValuesSQL, "bob", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", "2025-03-02 11:00:00.000000", mockKey, 7, mockNowSQL}
	tests := []struct {
		name   string
		expect func(sqlmock.Sqlmock)
		want   error
	}{
		{"saved", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlSave).WithArgs(saveArgs...).WillReturnResult(sqlmock.NewResult(0, 1))
		}, nil},
		{"newer version stored", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlSave).WithArgs(saveArgs...).WillReturnResult(sqlmock.NewResult(0, 0))
			m.ExpectQuery(sqlExists).WithArgs(mockKey, mockNowSQL).WillReturnRows(sqlmock.NewRows([]string{"version"}).AddRow(8))
		}, ErrConflict},
		{"row deleted or expired", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlSave).WithArgs(saveArgs...).WillReturnResult(sqlmock.NewResult(0, 0))
			m.ExpectQuery(sqlExists).WithArgs(mockKey, mockNowSQL).WillReturnRows(sqlmock.NewRows([]string{"version"}))
		}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			tt.expect(mock)
			rec := &Record{Values: mockValues, Owner: "bob", Created: mockCreated, Expires: mockExpires, Deadline: mockDeadline, Version: 7}
			err := s.Save(context.Background(), mockKey, rec)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Save = %v, want %v", err, tt.want)
			}
			// The saved record carries the version the UPDATE stored.
			want := int64(7)
			if err == nil {
				want = 8
			}
			if rec.Version != want {
				t.Errorf("rec.Version = %d after Save, want %d", rec.Version, want)
			}
		})
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
			case <-s.done:
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
		name    string
		timeout time.Duration // 0: no deadline
		expect  func(sqlmock.Sqlmock)
		want    error // nil: acquired
		wantMsg string
		warn    bool // RELEASE_LOCK fails and is logged
	}{
		{"acquired, deadline rounds up", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 3).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(releaseRows(1))
		}, nil, "", false},
		{"under a second waits one", 100 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 1).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(releaseRows(1))
		}, nil, "", false},
		{"no deadline polls until acquired", 0, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 30).WillReturnRows(lockRows(0))
			m.ExpectQuery(sqlGetLock).WithArgs(name, 30).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(releaseRows(1))
		}, nil, "", false},
		{"server timeout", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 3).WillReturnRows(lockRows(0))
		}, ErrLockTimeout, "", false},
		{"NULL", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 3).WillReturnRows(lockRows(nil))
			m.ExpectClose()
		}, nil, "returned NULL", false},
		{"release fails: the connection is closed", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlGetLock).WithArgs(name, 3).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqlReleaseLock).WithArgs(name).WillReturnRows(releaseRows(0))
			m.ExpectClose()
		}, nil, "", true},
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
			unlock, err := s.Lock(ctx, mockKey)
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
				unlock()
				unlock() // only the first call releases
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
			if got := strings.Contains(logs.String(), "RELEASE_LOCK failed"); got != tt.warn {
				t.Errorf("release failure logged = %v, want %v:\n%s", got, tt.warn, logs.String())
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

// mockOp is one store method with the statement it starts with.
// sqlOp is one method of a SQL store (S), run by the error-path tests.
type sqlOp[S any] struct {
	name   string
	expect func(m sqlmock.Sqlmock, delay time.Duration, err error) // the first statement, failing
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
	{"save", func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlSave).WithArgs(mockValuesSQL, "", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", nil, mockKey, 4, mockNowSQL).
			WillDelayFor(d).WillReturnError(err)
	}, func(ctx context.Context, s *MySQLStore) error {
		return s.Save(ctx, mockKey, &Record{Values: mockValues, Created: mockCreated, Expires: mockExpires, Version: 4})
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

// TestMySQLRetryOnce: a deadlock or lock wait timeout costs one retry, and
// the retry's result is the call's.
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
		{"lock wait timeout twice", 0, func(m sqlmock.Sqlmock, op sqlOp[S]) {
			op.expect(m, 0, lockWait)
			op.expect(m, 0, lockWait)
		}, func(t *testing.T, err error) {
			if !errors.Is(err, &mysql.MySQLError{Number: 1205}) || !strings.Contains(err.Error(), "after one retry") {
				t.Errorf("error %v does not wrap the 1205 after a retry", err)
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
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.HasPrefix(err.Error(), prefix+op.name) {
					t.Errorf("error %q does not start with %q", err, prefix+op.name)
				}
				for _, sentinel := range []error{ErrNotFound, ErrExists, ErrConflict, ErrCorrupt} {
					if errors.Is(err, sentinel) {
						t.Errorf("a failure must not pass for %v: %v", sentinel, err)
					}
				}
				tt.check(t, err)
			})
		}
	}
}

// runSQLRetryOnce: for every op, a deadlock or lock wait timeout costs one
// retry, and the retry's result is the call's.
func runSQLRetryOnce[S any](t *testing.T, open func(*testing.T) (S, sqlmock.Sqlmock), ops []sqlOp[S]) {
	errRetry := errors.New("the retry's own error")
	for _, op := range ops {
		for _, number := range []uint16{1213, 1205} {
			t.Run(fmt.Sprintf("%s/%d", op.name, number), func(t *testing.T) {
				s, mock := open(t)
				op.expect(mock, 0, &mysql.MySQLError{Number: number})
				// The retry reaches the mock; an error the store does not
				// retry proves it was sent exactly once more.
				op.expect(mock, 0, errRetry)
				err := op.call(context.Background(), s)
				if !errors.Is(err, errRetry) || errors.Is(err, &mysql.MySQLError{Number: number}) {
					t.Fatalf("%v after %d: want the retry's own error", err, number)
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
