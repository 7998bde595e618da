package session

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session/internal/sqltest"
)

// The session lock of the MySQL store on sqlmock: GET_LOCK and
// RELEASE_LOCK, the in-process queue in front of them, and the lease's
// store bound to the lock's connection.

func TestMySQLLockName(t *testing.T) {
	s, _ := newMockStore(t, MySQLOptions{NoCreateTable: true})
	other, _ := newMockStore(t, MySQLOptions{NoCreateTable: true, Table: "other"})
	long := strings.Repeat("k", 255)
	names := map[string]bool{}
	for _, n := range []string{s.t.LockName(mockKey), s.t.LockName(long), other.t.LockName(mockKey)} {
		if len(n) > 64 {
			t.Errorf("lock name %q has %d characters, MySQL allows 64", n, len(n))
		}
		names[n] = true
	}
	if len(names) != 3 {
		t.Errorf("lock names collide across keys or tables: %v", names)
	}
	if got, want := s.t.LockName(mockKey), sqltest.LockName("sessions", mockKey); got != want {
		t.Errorf("lockName = %q, want %q", got, want)
	}
}

func TestMySQLLock(t *testing.T) {
	name := sqltest.LockName("sessions", mockKey)
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
			m.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 3).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(releaseRows(1))
		}, nil, "", nil, false},
		{"under a second waits one", 100 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 1).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(releaseRows(1))
		}, nil, "", nil, false},
		{"no deadline polls until acquired", 0, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 30).WillReturnRows(lockRows(0))
			m.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 30).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(releaseRows(1))
		}, nil, "", nil, false},
		{"server timeout", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 3).WillReturnRows(lockRows(0))
		}, ErrLockTimeout, "", nil, false},
		{"NULL", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 3).WillReturnRows(lockRows(nil))
			m.ExpectClose()
		}, nil, "returned NULL", nil, false},
		// RELEASE_LOCK answers 0 (another connection holds the lock) or
		// NULL (nobody does): this connection had lost it. The connection
		// is closed all the same.
		{"released by someone else: lost", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 3).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(releaseRows(0))
			m.ExpectClose()
		}, nil, "", ErrLockLost, false},
		{"held by nobody: lost", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 3).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(releaseRows(nil))
			m.ExpectClose()
		}, nil, "", ErrLockLost, false},
		// A RELEASE_LOCK that fails on a live connection is logged, and the
		// connection closed, which frees the lock on the server.
		{"release fails: the connection is closed", 2500 * time.Millisecond, func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 3).WillReturnRows(lockRows(1))
			m.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnError(&mysql.MySQLError{Number: 1290, Message: "read only"})
			m.ExpectClose()
		}, nil, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs sqltest.SyncBuffer
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
				if ls, ok := lease.Store().(*MySQLStore); !ok || ls == s || !ls.t.Bound(s.t) {
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
			if _, keys := s.t.LockQueued(mockKey); keys != 0 {
				t.Error("the in-process queue still holds the key after the lock ended")
			}
		})
	}
}

// TestMySQLLockCancelled: a wait cut short by ctx reports ctx's error, and
// a deadline also reports ErrLockTimeout.
func TestMySQLLockCancelled(t *testing.T) {
	name := sqltest.LockName("sessions", mockKey)
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
			mock.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, sqlmock.AnyArg()).WillDelayFor(time.Minute).
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

// waitQueued waits until n callers hold or wait for the in-process lock
// of mockKey.
func waitQueued(t *testing.T, s *MySQLStore, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		callers, _ := s.t.LockQueued(mockKey)
		if callers == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers queued for the lock, want %d", callers, n)
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
	name := sqltest.LockName("sessions", mockKey)
	s, mock, db := newMockStoreDB(t, MySQLOptions{NoCreateTable: true})
	db.SetMaxOpenConns(1)
	lockRows := sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1)
	mock.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, sqlmock.AnyArg()).WillReturnRows(lockRows)
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
	waitQueued(t, s, 2)
	leave()
	if err := <-left; !errors.Is(err, context.Canceled) || errors.Is(err, ErrLockTimeout) {
		t.Errorf("Lock cancelled in the queue = %v, want context.Canceled and no ErrLockTimeout", err)
	}

	const waiters = 4
	mock.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(1))
	for range waiters {
		mock.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, sqlmock.AnyArg()).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
		mock.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(1))
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
	waitQueued(t, s, 1+waiters)
	if st := db.Stats(); st.InUse != 1 || st.WaitCount != 0 {
		t.Errorf("with %d callers queued: %d connections in use, %d waits for one; want 1 (the holder's) and 0", waiters, st.InUse, st.WaitCount)
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d times two callers held the lock at once", n)
	}
	if callers, keys := s.t.LockQueued(mockKey); callers != 0 || keys != 0 {
		t.Errorf("the in-process queue keeps %d entries after every lock ended", keys)
	}
}

// TestMySQLLeaseOneConnection: every method of a lease's store runs on the
// lock's connection, so a locked request needs no second one: here the
// pool has one connection, which the lock holds, and a statement that
// asked the pool would wait out its deadline.
func TestMySQLLeaseOneConnection(t *testing.T) {
	name := sqltest.LockName("sessions", mockKey)
	s, mock, db := newMockStoreDB(t, MySQLOptions{NoCreateTable: true})
	db.SetMaxOpenConns(1)
	mock.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 5).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
	ctx, cancel := context.WithTimeout(context.Background(), 4500*time.Millisecond)
	defer cancel()
	lease, err := s.Lock(ctx, mockKey)
	if err != nil {
		t.Fatal(err)
	}
	ls := lease.Store()
	mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnRows(
		sqlmock.NewRows(mockLoadCols).AddRow(sqltest.MockValuesSQL, "alice", sqltest.MockCreated, sqltest.MockExpires, sqltest.MockDeadline, 7, 0, 0, "", ""))
	mock.ExpectBegin()
	mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockLockedRow(sqltest.MockValuesSQL))
	mock.ExpectExec(sqlUpdate).WithArgs(`{"count":2,"user_id":"k3j2"}`, "alice", "2025-03-01 12:30:00.000000", mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	mock.ExpectExec(sqlTouch).WithArgs("2025-03-01 12:30:00.000000", mockKey, mockNowSQL).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(sqlInsert).WithArgs("k2", sqltest.MockValuesSQL, "", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", nil, 1, 0, 0, "", "").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(sqlDelete).WithArgs("k2").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(sqlDeleteOwner).WithArgs("alice", 5, mockKey).WillReturnResult(sqlmock.NewResult(0, 0))
	mock.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(1))
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"load", func(ctx context.Context) error { _, err := ls.Load(ctx, mockKey); return err }},
		{"update", func(ctx context.Context) error {
			_, err := ls.Update(ctx, mockKey, &Change{Add: map[string]int64{"count": 1}})
			return err
		}},
		{"touch", func(ctx context.Context) error { return ls.Touch(ctx, mockKey, sqltest.MockExpires) }},
		{"create", func(ctx context.Context) error {
			return ls.Create(ctx, "k2", &Record{Values: sqltest.MockValues, Created: sqltest.MockCreated, Expires: sqltest.MockExpires})
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
	if st := db.Stats(); st.WaitCount != 0 || st.OpenConnections != 1 {
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
	name := sqltest.LockName("sessions", mockKey)
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
			t.Run(op.Name+"/"+l.name, func(t *testing.T) {
				s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
				mock.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, sqlmock.AnyArg()).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
				op.Expect(mock, 0, l.err)
				mock.ExpectClose()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				lease, err := s.Lock(ctx, mockKey)
				if err != nil {
					t.Fatal(err)
				}
				err = op.Call(ctx, lease.Store().(*MySQLStore))
				if !errors.Is(err, ErrLockLost) || !errors.Is(err, l.err) || !strings.HasPrefix(err.Error(), "session: mysql: "+op.Name) {
					t.Errorf("%s on a dead lock connection = %v, want ErrLockLost wrapping %v", op.Name, err, l.err)
				}
				if err := lease.Unlock(); !errors.Is(err, ErrLockLost) {
					t.Errorf("Unlock after the loss = %v, want ErrLockLost", err)
				}
				sqltest.WaitMet(t, mock)
			})
		}
	}
	t.Run("a failure on a live connection", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, sqlmock.AnyArg()).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
		mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnError(&mysql.MySQLError{Number: 1146, Message: "Table 'test.sessions' doesn't exist"})
		mock.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(1))
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
