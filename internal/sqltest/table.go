package sqltest

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
)

// What every SQL store does with its table: create it, delete its expired
// rows in batches, and clean up in the background.

// RunCreateTable: for each table (the default when ""), the constructor
// sends exactly the store's CREATE TABLE, as want gives it, and what then
// expects, CreateTableSQL returns the same, and Close leaves the caller's
// pool open.
func RunCreateTable[S interface {
	Close() error
	CreateTableSQL() string
}](t *testing.T, tables []string, want func(table string) string, open func(db *sql.DB, table string) (S, error), then ...func(m sqlmock.Sqlmock, table string)) {
	for _, table := range tables {
		t.Run(table, func(t *testing.T) {
			db, mock := NewMock(t)
			mock.ExpectExec(want(table)).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
			for _, f := range then {
				f(mock, table)
			}
			s, err := open(db, table)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CreateTableSQL(); got != want(table) {
				t.Errorf("CreateTableSQL() =\n%s\nwant\n%s", got, want(table))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := db.Ping(); err != nil {
				t.Errorf("caller's pool after Close: %v", err)
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
		})
	}
}

// RunDeleteExpiredBatches: DeleteExpired repeats its DELETE ... LIMIT of
// the batch size (1000 by default) until one deletes fewer rows, and
// reports the sum. open opens a store with the CleanupBatch option batch;
// expect sets up one DELETE with that LIMIT.
func RunDeleteExpiredBatches[S interface {
	DeleteExpired(context.Context) (int64, error)
}](t *testing.T, open func(t *testing.T, batch int) (S, sqlmock.Sqlmock), expect func(m sqlmock.Sqlmock, limit int) *sqlmock.ExpectedExec) {
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
			s, mock := open(t, tt.batch)
			var want int64
			for _, n := range tt.results {
				expect(mock, tt.limit).WillReturnResult(sqlmock.NewResult(0, n))
				want += n
			}
			got, err := s.DeleteExpired(context.Background())
			if err != nil || got != want {
				t.Fatalf("DeleteExpired = %d, %v, want %d", got, err, want)
			}
		})
	}
}

// Cleanup describes one SQL store's cleanup to RunCleanupLogs.
type Cleanup struct {
	// Creator names the function that starts the cleanup goroutine in
	// full ("github.com/seed013449c2/session.newMySQLStore").
	Creator string
	// DeleteExpired is the cleanup's DELETE, on table (database.table).
	DeleteExpired, Table string
	// Open opens the store with a 1ms CleanupInterval, logging to l, and
	// returns its Close.
	Open func(db *sql.DB, l *slog.Logger) (closer func() error, err error)
	// Logs are what the log of a failed cleanup must say.
	Logs []string
}

// RunCleanupLogs: a failing cleanup is logged and the loop keeps going;
// Close stops the goroutine and waits for it, and a second Close returns
// the first one's result.
func RunCleanupLogs(t *testing.T, c Cleanup) {
	db, mock := NewMock(t)
	missing := &mysql.MySQLError{Number: 1146, Message: "Table '" + c.Table + "' doesn't exist"}
	// The server refuses to prepare a statement of a missing table; once
	// it is there, the statement is prepared and run.
	mock.ExpectPrepare(c.DeleteExpired).WillReturnError(missing)
	mock.ExpectPrepare(c.DeleteExpired)
	mock.ExpectExec(c.DeleteExpired).WithArgs(sqlmock.AnyArg(), 1000).WillReturnResult(sqlmock.NewResult(0, 5))
	var logs SyncBuffer
	before := Goroutines(c.Creator)
	closeStore, err := c.Open(db, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := Goroutines(c.Creator); got != before+1 {
		t.Fatalf("%d cleanup goroutines after %s, want %d", got, c.Creator, before+1)
	}
	deadline := time.Now().Add(10 * time.Second)
	for mock.ExpectationsWereMet() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("cleanup did not run twice: %v", mock.ExpectationsWereMet())
		}
		time.Sleep(time.Millisecond)
	}
	if err := closeStore(); err != nil {
		t.Fatal(err)
	}
	// Counted at once: Close must have waited for the goroutine to end.
	if got := Goroutines(c.Creator); got != before {
		t.Errorf("%d cleanup goroutines after Close, want %d", got, before)
	}
	if err := closeStore(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	out := logs.String()
	for _, want := range c.Logs {
		if !strings.Contains(out, want) {
			t.Errorf("cleanup failure log lacks %q:\n%s", want, out)
		}
	}
}
