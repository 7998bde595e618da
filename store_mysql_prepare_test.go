package session

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session/internal/sqltest"
)

// TestMySQLPrepared: the store prepares each statement it sends through
// the pool once and from then on runs it without preparing it again (one
// round trip instead of two); a transaction's statements are prepared
// before BEGIN, never inside it, where preparing would take a second
// connection; a prepare that fails is reported as the statement's failure
// and tried again by the next call; Close closes every statement, and a
// store used after Close sends its statements unprepared.
func TestMySQLPrepared(t *testing.T) {
	db, mock := sqltest.NewMock(t)
	s, err := NewMySQLStore(db, MySQLOptions{NoCreateTable: true, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.t.Now = func() time.Time { return sqltest.MockNow }
	ctx := context.Background()
	loaded := func() *sqlmock.Rows { return mockLockedRow(sqltest.MockValuesSQL) }

	missing := &mysql.MySQLError{Number: 1146, Message: "Table 'test.sessions' doesn't exist"}
	mock.ExpectPrepare(sqlLoad).WillReturnError(missing)
	if _, err := s.Load(ctx, mockKey); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "CreateTableSQL") {
		t.Fatalf("Load with a refused prepare = %v, want the missing table reported", err)
	}

	mock.ExpectPrepare(sqlLoad).WillBeClosed()
	for range 2 {
		mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnRows(loaded())
	}
	var base *Record
	for i := range 2 {
		if base, err = s.Load(ctx, mockKey); err != nil {
			t.Fatalf("Load %d: %v", i, err)
		}
	}

	// The swap finds the row moved on twice; the first fallback
	// transaction prepares its statements before BEGIN, the second
	// prepares nothing.
	mock.ExpectPrepare(sqlSwap).WillBeClosed()
	for i := range 2 {
		mock.ExpectExec(sqlSwap).WithArgs(`{"count":2,"user_id":"k3j2"}`, "alice", mockKey, int64(7), mockNowSQL).
			WillReturnResult(sqlmock.NewResult(0, 0))
		if i == 0 {
			for _, q := range []string{sqlLockRow, sqlUpdate, sqlUpdateMeta, sqlDelete} {
				mock.ExpectPrepare(q).WillBeClosed()
			}
		}
		mock.ExpectBegin()
		mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(loaded())
		mock.ExpectExec(sqlUpdate).WithArgs(`{"count":2,"user_id":"k3j2"}`, "alice", "2025-03-01 12:30:00.000000", mockKey).
			WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectCommit()
	}
	for i := range 2 {
		rec, err := s.Update(ctx, mockKey, &Change{Add: map[string]int64{"count": 1}, Base: base})
		if err != nil || string(rec.Values["count"]) != "2" || rec.Version != 8 {
			t.Fatalf("Update %d = %+v, %v", i, rec, err)
		}
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnRows(loaded())
	if rec, err := s.Load(ctx, mockKey); err != nil || string(rec.Values["count"]) != "1" {
		t.Fatalf("Load after Close = %+v, %v", rec, err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

// TestMySQLPreparedOnLockConnection: a locked request's statements run on
// the lock's connection and prepare nothing on the pool, which a pool of
// one connection could not give while the lock holds it.
func TestMySQLPreparedOnLockConnection(t *testing.T) {
	db, mock := sqltest.NewMock(t)
	db.SetMaxOpenConns(1)
	s, err := NewMySQLStore(db, MySQLOptions{NoCreateTable: true, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.t.Now = func() time.Time { return sqltest.MockNow }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name := s.t.LockName(mockKey)
	mock.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, sqlmock.AnyArg()).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
	mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(sqltest.MockValuesSQL))
	mock.ExpectBegin()
	mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(sqltest.MockValuesSQL))
	mock.ExpectExec(sqlUpdate).WithArgs(`{"count":1,"theme":"dark","user_id":"k3j2"}`, "alice", "2025-03-01 12:30:00.000000", mockKey).
		WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	mock.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(1))
	lease, err := s.Lock(ctx, mockKey)
	if err != nil {
		t.Fatal(err)
	}
	ls := lease.Store()
	if _, err := ls.Load(ctx, mockKey); err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Update(ctx, mockKey, &Change{Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}}); err != nil {
		t.Fatal(err)
	}
	if err := lease.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

// TestMySQLRenameOntoATakenKey: Rename inserts the new row first and
// removes an expired row under the new key only when the INSERT finds the
// key taken, then inserts again; a live row there fails the rename with
// ErrExists and rolls everything back.
func TestMySQLRenameOntoATakenKey(t *testing.T) {
	const newKey = "k2"
	dup := &mysql.MySQLError{Number: 1062, Message: "Duplicate entry 'k2' for key 'PRIMARY'"}
	insert := func(m sqlmock.Sqlmock) *sqlmock.ExpectedExec {
		return m.ExpectExec(sqlInsert).WithArgs(newKey, sqltest.MockValuesSQL, "alice", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000",
			"2025-03-02 11:00:00.000000", 1, int64(0), 0, "", "")
	}
	t.Run("expired row there", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectBegin()
		mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(sqltest.MockValuesSQL))
		insert(mock).WillReturnError(dup)
		mock.ExpectExec(sqlDeleteExpKey).WithArgs(newKey, mockNowSQL).WillReturnResult(sqlmock.NewResult(0, 1))
		insert(mock).WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectExec(sqlDelete).WithArgs(mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectCommit()
		if _, err := s.Rename(context.Background(), mockKey, newKey, &Change{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("live row there", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectBegin()
		mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(sqltest.MockValuesSQL))
		insert(mock).WillReturnError(dup)
		mock.ExpectExec(sqlDeleteExpKey).WithArgs(newKey, mockNowSQL).WillReturnResult(sqlmock.NewResult(0, 0))
		insert(mock).WillReturnError(dup)
		mock.ExpectRollback()
		if _, err := s.Rename(context.Background(), mockKey, newKey, &Change{}); !errors.Is(err, ErrExists) {
			t.Fatalf("Rename onto a live row = %v, want ErrExists", err)
		}
	})
}

// TestMySQLPrepareRefused: a server that refuses to prepare a statement
// for another reason than a missing table (here its limit of prepared
// statements, shared by all its clients, is reached) does not fail the
// request: the statement is sent unprepared, and the next call tries to
// prepare it again.
func TestMySQLPrepareRefused(t *testing.T) {
	db, mock := sqltest.NewMock(t)
	s, err := NewMySQLStore(db, MySQLOptions{NoCreateTable: true, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.t.Now = func() time.Time { return sqltest.MockNow }
	ctx := context.Background()
	full := &mysql.MySQLError{Number: 1461, Message: "Can't create more than max_prepared_stmt_count statements"}
	for range 2 {
		mock.ExpectPrepare(sqlLoad).WillReturnError(full)
		mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(sqltest.MockValuesSQL))
	}
	for i := range 2 {
		if _, err := s.Load(ctx, mockKey); err != nil {
			t.Fatalf("Load %d with the prepare refused: %v", i, err)
		}
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}
