package session

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session/internal/sqltest"
)

// The statements below are written out in full, not built from the
// store's own strings, so that a change to the SQL fails here first.
const (
	mockKey = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

	sqlCreateSessions = "CREATE TABLE IF NOT EXISTS `sessions` (\n" +
		"  id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n" +
		"  data MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n" +
		"  owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',\n" +
		"  handle VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',\n" +
		"  label VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',\n" +
		"  created_at DATETIME(6) NOT NULL,\n" +
		"  expires_at DATETIME(6) NOT NULL,\n" +
		"  deadline_at DATETIME(6) NULL,\n" +
		"  idle_ms BIGINT NOT NULL DEFAULT 0,\n" +
		"  persist TINYINT UNSIGNED NOT NULL DEFAULT 0,\n" +
		"  version BIGINT NOT NULL,\n" +
		"  PRIMARY KEY (id),\n" +
		"  KEY owner_idx (owner, handle),\n" +
		"  KEY expires_at_idx (expires_at)\n" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
	sqlHasColumns = "SELECT handle, label, idle_ms, persist FROM `sessions` LIMIT 0"
	sqlUpgrade    = "ALTER TABLE `sessions`\n" +
		"  ADD COLUMN handle VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '' AFTER owner,\n" +
		"  ADD COLUMN label VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '' AFTER handle,\n" +
		"  ADD COLUMN idle_ms BIGINT NOT NULL DEFAULT 0 AFTER deadline_at,\n" +
		"  ADD COLUMN persist TINYINT UNSIGNED NOT NULL DEFAULT 0 AFTER idle_ms,\n" +
		"  DROP KEY owner_idx,\n" +
		"  ADD KEY owner_idx (owner, handle)"
	sqlLoad          = "SELECT data, owner, created_at, expires_at, deadline_at, version, idle_ms, persist, label, handle FROM `sessions` WHERE id = ? AND expires_at > ?"
	sqlExists        = "SELECT version FROM `sessions` WHERE id = ? AND expires_at > ?"
	sqlInsert        = "INSERT INTO `sessions` (id, data, owner, created_at, expires_at, deadline_at, version, idle_ms, persist, label, handle) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	sqlDeleteExpKey  = "DELETE FROM `sessions` WHERE id = ? AND expires_at <= ?"
	sqlLockRow       = "SELECT data, owner, created_at, expires_at, deadline_at, version, idle_ms, persist, label, handle FROM `sessions` WHERE id = ? AND expires_at > ? FOR UPDATE"
	sqlUpdate        = "UPDATE `sessions` SET data = ?, owner = ?, expires_at = ?, version = version + 1 WHERE id = ?"
	sqlSwap          = "UPDATE `sessions` SET data = ?, owner = ?, version = version + 1 WHERE id = ? AND version = ? AND expires_at > ?"
	sqlSwapExpires   = "UPDATE `sessions` SET data = ?, owner = ?, expires_at = ?, version = version + 1 WHERE id = ? AND version = ? AND expires_at > ?"
	sqlUpdateMeta    = "UPDATE `sessions` SET data = ?, owner = ?, expires_at = ?, deadline_at = ?, idle_ms = ?, persist = ?, label = ?, version = version + 1 WHERE id = ?"
	sqlSwapMeta      = "UPDATE `sessions` SET data = ?, owner = ?, expires_at = ?, deadline_at = ?, idle_ms = ?, persist = ?, label = ?, version = version + 1 WHERE id = ? AND version = ? AND expires_at > ?"
	sqlTouch         = "UPDATE `sessions` SET expires_at = ? WHERE id = ? AND expires_at > ?"
	sqlDelete        = "DELETE FROM `sessions` WHERE id = ?"
	sqlDeleteOwner   = "DELETE FROM `sessions` WHERE owner = ? AND LENGTH(owner) = ? AND id <> ?"
	sqlDevices       = "SELECT handle, label, created_at, expires_at, idle_ms FROM `sessions` WHERE owner = ? AND LENGTH(owner) = ? AND expires_at > ? ORDER BY expires_at DESC LIMIT ?"
	sqlDeleteDevice  = "DELETE FROM `sessions` WHERE owner = ? AND LENGTH(owner) = ? AND handle = ? AND LENGTH(handle) = ? AND expires_at > ?"
	sqlDeleteExpired = "DELETE FROM `sessions` WHERE expires_at <= ? LIMIT ?"
)

// mockNowSQL is sqltest.MockNow as the store sends it.
const mockNowSQL = "2025-03-01 12:00:00.123456"

var mockLoadCols = []string{"data", "owner", "created_at", "expires_at", "deadline_at", "version", "idle_ms", "persist", "label", "handle"}

// sqlErrs are the sentinels the shared SQL checks test errors against.
var sqlErrs = sqltest.Errors{
	NotFound: ErrNotFound, Exists: ErrExists, Conflict: ErrConflict, Corrupt: ErrCorrupt,
	LockLost: ErrLockLost, TooLarge: ErrTooLarge, NotInteger: ErrNotInteger,
}

// newMockStore returns a store on a sqlmock pool that matches SQL exactly,
// whose clock reads sqltest.MockNow, and checks on cleanup that every
// expected statement ran.
func newMockStore(t *testing.T, opts MySQLOptions) (*MySQLStore, sqlmock.Sqlmock) {
	t.Helper()
	s, mock, _ := newMockStoreDB(t, opts)
	return s, mock
}

// newMockStoreDB is newMockStore, with the pool.
func newMockStoreDB(t *testing.T, opts MySQLOptions) (*MySQLStore, sqlmock.Sqlmock, *sql.DB) {
	t.Helper()
	db, mock := sqltest.NewMock(t)
	if opts.CleanupInterval == 0 {
		opts.CleanupInterval = -1
	}
	if !opts.NoCreateTable {
		mock.ExpectExec(sqlCreateSessions).WillReturnResult(sqlmock.NewResult(0, 0))
		mock.ExpectQuery(sqlHasColumns).WithoutArgs().WillReturnRows(sqlmock.NewRows([]string{"handle", "label", "idle_ms", "persist"}))
	}
	s, err := NewMySQLStore(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.t.Now = func() time.Time { return sqltest.MockNow }
	s.t.NoPrepare() // the statements' text is the point here; TestMySQLPrepared covers the prepare step
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
	})
	return s, mock, db
}

func TestMySQLCreateTable(t *testing.T) {
	sqltest.RunCreateTable(t, []string{"", "app_Sessions2"}, func(table string) string {
		if table == "" {
			return sqlCreateSessions
		}
		return strings.Replace(sqlCreateSessions, "`sessions`", "`"+table+"`", 1)
	}, func(db *sql.DB, table string) (*MySQLStore, error) {
		return NewMySQLStore(db, MySQLOptions{Table: table, CleanupInterval: -1})
	}, func(m sqlmock.Sqlmock, table string) {
		if table == "" {
			table = "sessions"
		}
		m.ExpectQuery(strings.Replace(sqlHasColumns, "`sessions`", "`"+table+"`", 1)).WithoutArgs().
			WillReturnRows(sqlmock.NewRows([]string{"handle", "label", "idle_ms", "persist"}))
	})
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
			sqltest.CheckRefused(t, func(db *sql.DB) (*MySQLStore, error) { return NewMySQLStore(db, tt.opts) }, "session: mysql: ", tt.want)
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
		{"parseTime=false", []byte("2025-03-01 11:00:00.000005"), []byte("2025-03-01 12:30:00.000000"), []byte("2025-03-02 11:00:00.000000"), sqltest.MockDeadline},
		{"parseTime=false no deadline", []byte("2025-03-01 11:00:00.000005"), []byte("2025-03-01 12:30:00.000000"), nil, time.Time{}},
		{"parseTime=false string", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00", nil, time.Time{}},
		{"parseTime=true loc=UTC", sqltest.MockCreated, sqltest.MockExpires, sqltest.MockDeadline, sqltest.MockDeadline},
		{"parseTime=true loc=+05:00", wallClock(sqltest.MockCreated, plus5), wallClock(sqltest.MockExpires, plus5), wallClock(sqltest.MockDeadline, plus5), sqltest.MockDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnRows(
				sqlmock.NewRows(mockLoadCols).AddRow(sqltest.MockValuesSQL, "alice", tt.created, tt.expires, tt.deadline, 7, 0, 0, "", ""))
			rec, err := s.Load(context.Background(), mockKey)
			if err != nil {
				t.Fatal(err)
			}
			want := Record{Values: sqltest.MockValues, Owner: "alice", Created: sqltest.MockCreated, Expires: sqltest.MockExpires, Deadline: tt.wantDeadline, Version: 7}
			checkRecord(t, rec, &want)
		})
	}
}

func checkRecord(t *testing.T, got, want *Record) {
	t.Helper()
	sqltest.CheckRecord(t, sqltest.RecordOf(got), sqltest.RecordOf(want))
}

// TestMySQLLoadMissOrExpired proves that expiry is filtered by the query
// itself: the store sends its clock's now with "expires_at > ?", so a row
// the server leaves out reads as not found whatever cleanup has done.
func TestMySQLLoadMissOrExpired(t *testing.T) {
	for _, now := range []time.Time{sqltest.MockNow, time.Date(2031, 12, 31, 23, 59, 59, 999999000, time.FixedZone("-03:00", -3*3600))} {
		t.Run(now.String(), func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			s.t.Now = func() time.Time { return now }
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
		{"data not JSON", []driver.Value{"{count:1", "", "2025-03-01 11:00:00", "2025-03-01 12:30:00", nil, 1, 0, 0, "", ""}, "not a JSON object"},
		{"data an array", []driver.Value{"[1]", "", "2025-03-01 11:00:00", "2025-03-01 12:30:00", nil, 1, 0, 0, "", ""}, "not a JSON object"},
		{"zero date", []driver.Value{"{}", "", "0000-00-00 00:00:00", "2025-03-01 12:30:00", nil, 1, 0, 0, "", ""}, "stored time"},
		{"NULL created", []driver.Value{"{}", "", nil, "2025-03-01 12:30:00", nil, 1, 0, 0, "", ""}, "NULL time"},
		{"time of another type", []driver.Value{"{}", "", int64(5), "2025-03-01 12:30:00", nil, 1, 0, 0, "", ""}, "as a time"},
		{"persist out of range", []driver.Value{"{}", "", "2025-03-01 11:00:00", "2025-03-01 12:30:00", nil, 1, 0, 300, "", ""}, "persist"},
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
		{"with deadline", sqltest.MockDeadline, "2025-03-02 11:00:00.000000"},
		{"no deadline", time.Time{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectExec(sqlInsert).
				WithArgs(mockKey, data, "alice", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", tt.arg, 1, 0, 0, "", "").
				WillReturnResult(sqlmock.NewResult(0, 1))
			rec := &Record{Values: values, Owner: "alice", Created: sqltest.MockCreated, Expires: sqltest.MockExpires, Deadline: tt.deadline, Version: 42}
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
	sqltest.RunCreateTakenKey(t, sqlErrs, sqltest.CreateTaken{
		Prefix:        "session: mysql: create",
		Insert:        sqlInsert,
		InsertArgs:    []driver.Value{mockKey, sqltest.MockValuesSQL, "", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", nil, 1, 0, 0, "", ""},
		DeleteExpired: sqlDeleteExpKey,
		DeleteArgs:    []driver.Value{mockKey, mockNowSQL},
		Open: func(t *testing.T) (sqlmock.Sqlmock, func() error) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			return mock, func() error {
				return s.Create(context.Background(), mockKey, &Record{Values: sqltest.MockValues, Created: sqltest.MockCreated, Expires: sqltest.MockExpires})
			}
		},
	})
}

// TestMySQLBadRecord: input the columns cannot hold exactly is refused
// before any statement is sent.
func TestMySQLBadRecord(t *testing.T) {
	good := func() *Record {
		return &Record{Values: sqltest.MockValues, Owner: "alice", Created: sqltest.MockCreated, Expires: sqltest.MockExpires}
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
// (sqltest.MockValuesSQL unless a test says otherwise), owned by alice, version 7.
func mockLockedRow(data string) *sqlmock.Rows {
	return sqlmock.NewRows(mockLoadCols).AddRow(data, "alice", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", "2025-03-02 11:00:00.000000", 7, 0, 0, "", "")
}

// TestMySQLUpdate: Update is one transaction, BEGIN, the row read with its
// lock, the change applied in Go to what is stored now, the row written
// back (or deleted when no value is left), COMMIT; the record it returns is
// the one stored.
func TestMySQLUpdate(t *testing.T) {
	bob := "bob"
	later := sqltest.MockExpires.Add(time.Hour)
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
			Owner:  "bob", Created: sqltest.MockCreated, Expires: later, Deadline: sqltest.MockDeadline, Version: 8,
		}},
		// Owner and expiry stay as stored when the change leaves them.
		{"cleared first", &Change{Clear: true, Values: map[string]json.RawMessage{"a": json.RawMessage(`1`)}}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlUpdate).WithArgs(`{"a":1}`, "alice", "2025-03-01 12:30:00.000000", mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		}, &Record{Values: map[string]json.RawMessage{"a": json.RawMessage(`1`)}, Owner: "alice", Created: sqltest.MockCreated, Expires: sqltest.MockExpires, Deadline: sqltest.MockDeadline, Version: 8}},
		{"JSON null deletes a value", &Change{Values: map[string]json.RawMessage{"user_id": json.RawMessage(`null`)}}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlUpdate).WithArgs(`{"count":1}`, "alice", "2025-03-01 12:30:00.000000", mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		}, &Record{Values: map[string]json.RawMessage{"count": json.RawMessage(`1`)}, Owner: "alice", Created: sqltest.MockCreated, Expires: sqltest.MockExpires, Deadline: sqltest.MockDeadline, Version: 8}},
		{"emptied: the row is deleted", &Change{Values: map[string]json.RawMessage{"user_id": nil, "count": json.RawMessage(`null`)}}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlDelete).WithArgs(mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		}, &Record{Values: map[string]json.RawMessage{}, Owner: "alice", Created: sqltest.MockCreated, Expires: sqltest.MockExpires, Deadline: sqltest.MockDeadline, Version: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectBegin()
			mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(sqltest.MockValuesSQL))
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
// TestMySQLUpdateSwap: a change whose Base (the record the request read) is
// given is first tried as one UPDATE that matches only that version: the
// commit of an uncontended request costs one statement, as a plain write
// would. When the row moved on (or is gone), the transaction decides on the
// fresh row; a change the base refuses goes straight to the transaction,
// which judges the fresh row.
func TestMySQLUpdateSwap(t *testing.T) {
	base := &Record{
		Values:  map[string]json.RawMessage{"count": json.RawMessage(`1`), "user_id": json.RawMessage(`"k3j2"`)},
		Owner:   "alice",
		Created: sqltest.MockCreated, Expires: sqltest.MockExpires, Deadline: sqltest.MockDeadline, Version: 7,
	}
	later := sqltest.MockExpires.Add(time.Hour)
	t.Run("swapped", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectExec(sqlSwap).WithArgs(`{"count":2,"user_id":"k3j2"}`, "alice", mockKey, int64(7), mockNowSQL).
			WillReturnResult(sqlmock.NewResult(0, 1))
		rec, err := s.Update(context.Background(), mockKey, &Change{Add: map[string]int64{"count": 1}, Base: base})
		if err != nil || rec.Version != 8 || string(rec.Values["count"]) != "2" {
			t.Fatalf("Update = %+v, %v", rec, err)
		}
	})
	t.Run("swapped with a new expiry", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectExec(sqlSwapExpires).WithArgs(`{"count":1,"theme":"dark","user_id":"k3j2"}`, "alice", "2025-03-01 13:30:00.000000", mockKey, int64(7), mockNowSQL).
			WillReturnResult(sqlmock.NewResult(0, 1))
		rec, err := s.Update(context.Background(), mockKey, &Change{Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}, Expires: later, Base: base})
		if err != nil || !rec.Expires.Equal(later) {
			t.Fatalf("Update = %+v, %v", rec, err)
		}
	})
	t.Run("row moved on: the transaction decides", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectExec(sqlSwap).WithArgs(`{"count":2,"user_id":"k3j2"}`, "alice", mockKey, int64(7), mockNowSQL).
			WillReturnResult(sqlmock.NewResult(0, 0))
		mock.ExpectBegin()
		mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(
			sqlmock.NewRows(mockLoadCols).AddRow(`{"count":5,"user_id":"k3j2"}`, "alice", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", "2025-03-02 11:00:00.000000", 9, 0, 0, "", ""))
		mock.ExpectExec(sqlUpdate).WithArgs(`{"count":6,"user_id":"k3j2"}`, "alice", "2025-03-01 12:30:00.000000", mockKey).
			WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectCommit()
		rec, err := s.Update(context.Background(), mockKey, &Change{Add: map[string]int64{"count": 1}, Base: base})
		if err != nil || string(rec.Values["count"]) != "6" || rec.Version != 10 {
			t.Fatalf("Update = %+v, %v", rec, err)
		}
	})
	t.Run("refused by the base: the transaction judges the fresh row", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectBegin()
		mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(
			sqlmock.NewRows(mockLoadCols).AddRow(`{"count":1,"user_id":7}`, "alice", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", "2025-03-02 11:00:00.000000", 9, 0, 0, "", ""))
		mock.ExpectExec(sqlUpdate).WithArgs(`{"count":1,"user_id":8}`, "alice", "2025-03-01 12:30:00.000000", mockKey).
			WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectCommit()
		rec, err := s.Update(context.Background(), mockKey, &Change{Add: map[string]int64{"user_id": 1}, Base: base})
		if err != nil || string(rec.Values["user_id"]) != "8" {
			t.Fatalf("Update = %+v, %v", rec, err)
		}
	})
	t.Run("a failed swap is reported", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectExec(sqlSwap).WillReturnError(errors.New("connection refused"))
		if _, err := s.Update(context.Background(), mockKey, &Change{Add: map[string]int64{"count": 1}, Base: base}); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("Update = %v, want the error", err)
		}
	})
}

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
		{"too large", mockLockedRow(sqltest.MockValuesSQL), &Change{Values: map[string]json.RawMessage{"big": json.RawMessage(`"0123456789"`)}, MaxSize: 40}, ErrTooLarge, "limit 40"},
		{"add to a string", mockLockedRow(sqltest.MockValuesSQL), &Change{Add: map[string]int64{"user_id": 1}}, ErrNotInteger, `"user_id"`},
		{"sum overflows", mockLockedRow(sqltest.MockValuesSQL), &Change{Add: map[string]int64{"count": math.MaxInt64}}, ErrNotInteger, "overflows"},
		{"value not JSON", mockLockedRow(sqltest.MockValuesSQL), &Change{Values: map[string]json.RawMessage{"a": json.RawMessage(`{`)}}, nil, "not valid UTF-8 JSON"},
		{"name not UTF-8", mockLockedRow(sqltest.MockValuesSQL), &Change{Values: map[string]json.RawMessage{"\xff": json.RawMessage(`1`)}}, nil, "not valid UTF-8"},
		{"owner too long", mockLockedRow(sqltest.MockValuesSQL), &Change{Owner: &long}, nil, "owner"},
		{"owner not UTF-8", mockLockedRow(sqltest.MockValuesSQL), &Change{Owner: &notUTF8}, nil, "owner"},
		{"expiry past DATETIME", mockLockedRow(sqltest.MockValuesSQL), &Change{Expires: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil, "DATETIME range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectBegin()
			mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(tt.row)
			mock.ExpectRollback()
			rec, err := s.Update(context.Background(), mockKey, tt.ch)
			sqltest.CheckRefusedUpdate(t, sqlErrs, "session: mysql: update", rec, err, tt.is, tt.want)
		})
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
			sqltest.CheckRefusedUpdate(t, sqlErrs, "session: mysql: update", rec, err, nil, tt.want)
		})
	}
}

// TestMySQLUpdateSteps runs the transaction into a failure at each step.
func TestMySQLUpdateSteps(t *testing.T) {
	sqltest.RunUpdateSteps(t, sqlErrs, sqltest.UpdateTx[*MySQLStore, Record]{
		Prefix: "session: mysql: update",
		Open: func(t *testing.T) (*MySQLStore, sqlmock.Sqlmock) {
			return newMockStore(t, MySQLOptions{NoCreateTable: true})
		},
		Lock: func(m sqlmock.Sqlmock) *sqlmock.ExpectedQuery {
			return m.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL)
		},
		Row: func() *sqlmock.Rows { return mockLockedRow(sqltest.MockValuesSQL) },
		Write: func(m sqlmock.Sqlmock) *sqlmock.ExpectedExec {
			return m.ExpectExec(sqlUpdate).WithArgs(`{"count":1,"theme":"dark","user_id":"k3j2"}`, "alice", "2025-03-01 12:30:00.000000", mockKey)
		},
		Update: func(ctx context.Context, s *MySQLStore) (*Record, error) {
			return s.Update(ctx, mockKey, &Change{Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}})
		},
		Applied: func(rec *Record) bool { return string(rec.Values["theme"]) == `"dark"` },
	})
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
			err := s.Touch(context.Background(), mockKey, sqltest.MockExpires.In(time.FixedZone("+09:00", 9*3600)))
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
	sqltest.RunDeleteExpiredBatches(t, func(t *testing.T, batch int) (*MySQLStore, sqlmock.Sqlmock) {
		return newMockStore(t, MySQLOptions{NoCreateTable: true, CleanupBatch: batch})
	}, func(m sqlmock.Sqlmock, limit int) *sqlmock.ExpectedExec {
		return m.ExpectExec(sqlDeleteExpired).WithArgs(mockNowSQL, limit)
	})
}

// cleanupGoroutines counts the cleanup loops started by the named function
// of this package (a loop not yet scheduled shows only that).
func cleanupGoroutines(creator string) int {
	return sqltest.Goroutines("github.com/seed013449c2/session." + creator)
}

// TestMySQLCleanupLogsAndCloseStops: a failing cleanup is logged and the
// loop keeps going; Close stops the goroutine and waits for it.
func TestMySQLCleanupLogsAndCloseStops(t *testing.T) {
	sqltest.RunCleanupLogs(t, sqltest.Cleanup{
		Creator:       "github.com/seed013449c2/session.newMySQLStore",
		DeleteExpired: sqlDeleteExpired,
		Table:         "test.sessions",
		Open: func(db *sql.DB, l *slog.Logger) (func() error, error) {
			s, err := NewMySQLStore(db, MySQLOptions{NoCreateTable: true, CleanupInterval: time.Millisecond, Logger: l})
			if err != nil {
				return nil, err
			}
			return s.Close, nil
		},
		Logs: []string{"level=ERROR", "session: mysql: cleanup failed", "table `sessions` does not exist", "MySQLStore.CreateTableSQL", "MySQLOptions.NoCreateTable"},
	})
}

// mockOps are the store's methods, each with the statement it starts with.
var mockOps = []sqltest.Op[*MySQLStore]{
	{Name: "load", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *MySQLStore) error { _, err := s.Load(ctx, mockKey); return err }},
	{Name: "create", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlInsert).WithArgs(mockKey, sqltest.MockValuesSQL, "", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", nil, 1, 0, 0, "", "").
			WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *MySQLStore) error {
		return s.Create(ctx, mockKey, &Record{Values: sqltest.MockValues, Created: sqltest.MockCreated, Expires: sqltest.MockExpires})
	}},
	// Update's first statement after BEGIN is the row read; its failure
	// rolls the transaction back.
	{Name: "update", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectBegin()
		m.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillDelayFor(d).WillReturnError(err)
		m.ExpectRollback()
	}, Call: func(ctx context.Context, s *MySQLStore) error {
		_, err := s.Update(ctx, mockKey, &Change{Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}})
		return err
	}},
	{Name: "touch", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlTouch).WithArgs("2025-03-01 12:30:00.000000", mockKey, mockNowSQL).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *MySQLStore) error { return s.Touch(ctx, mockKey, sqltest.MockExpires) }},
	{Name: "delete", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlDelete).WithArgs(mockKey).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *MySQLStore) error { return s.Delete(ctx, mockKey) }},
	{Name: "delete owner", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlDeleteOwner).WithArgs("alice", 5, "").WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *MySQLStore) error { _, err := s.DeleteOwner(ctx, "alice", ""); return err }},
	{Name: "devices", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectQuery(sqlDevices).WithArgs("alice", 5, mockNowSQL, 10).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *MySQLStore) error { _, err := s.Devices(ctx, "alice", 10); return err }},
	{Name: "delete device", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlDeleteDevice).WithArgs("alice", 5, "h1", 2, mockNowSQL).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *MySQLStore) error {
		_, err := s.DeleteDevice(ctx, "alice", "h1")
		return err
	}},
	{Name: "delete expired", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlDeleteExpired).WithArgs(mockNowSQL, 1000).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *MySQLStore) error { _, err := s.DeleteExpired(ctx); return err }},
}

// TestMySQLErrors runs every method into every kind of failure.
func TestMySQLErrors(t *testing.T) {
	sqltest.RunErrors(t, sqlErrs, "session: mysql: ", "test.sessions",
		[]string{"table `sessions` does not exist", "MySQLStore.CreateTableSQL", "MySQLOptions.NoCreateTable"},
		func(t *testing.T) (*MySQLStore, sqlmock.Sqlmock) {
			return newMockStore(t, MySQLOptions{NoCreateTable: true})
		}, mockOps)
}

// TestMySQLRetryOnce: a deadlock costs one retry, whose result is the
// call's; a lock wait timeout none.
func TestMySQLRetryOnce(t *testing.T) {
	sqltest.RunRetryOnce(t, func(t *testing.T) (*MySQLStore, sqlmock.Sqlmock) {
		return newMockStore(t, MySQLOptions{NoCreateTable: true})
	}, mockOps)
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
