package koa

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
)

// TestKoaPrepared: the Koa store prepares each statement it sends through
// the pool once, its transaction's statements before BEGIN, and runs them
// from then on without preparing again; Close closes them.
func TestKoaPrepared(t *testing.T) {
	db, mock := sqltest.NewMock(t)
	s, err := NewStore(db, Options{NoCreateTable: true, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.t.Now = func() time.Time { return sqltest.MockNow }
	ctx := context.Background()
	sum := md5.Sum([]byte(sqltest.MockValuesSQL))
	hash := hex.EncodeToString(sum[:])[:16]

	mock.ExpectPrepare(sqlKoaLoad).WillBeClosed()
	for range 2 {
		mock.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(
			sqlmock.NewRows(koaLoadCols).AddRow([]byte(koaMockKey), sqltest.MockValuesSQL, koaExpiresMS, hash))
	}
	for i := range 2 {
		if _, err := s.Load(ctx, koaMockKey); err != nil {
			t.Fatalf("Load %d: %v", i, err)
		}
	}
	for i := range 2 {
		if i == 0 {
			for _, q := range []string{sqlKoaLockRow, sqlKoaUpdate, sqlKoaDelete} {
				mock.ExpectPrepare(q).WillBeClosed()
			}
		}
		mock.ExpectBegin()
		mock.ExpectQuery(sqlKoaLockRow).WithArgs(koaMockKey, koaNowMS).WillReturnRows(koaLockedRow(sqltest.MockValuesSQL))
		mock.ExpectExec(sqlKoaUpdate).WithArgs(`{"count":1,"theme":"dark","user_id":"k3j2"}`, koaExpiresMS, koaMockKey).
			WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectCommit()
	}
	for i := range 2 {
		if _, err := s.Update(ctx, koaMockKey, &session.Change{Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}}); err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}
