package sqltest

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
)

// Errors are package session's sentinels, which the checks below test
// errors against.
type Errors struct {
	NotFound, Exists, Conflict, Corrupt, LockLost, TooLarge, NotInteger error
}

// failure: a database failure must pass for none of these.
func (e Errors) failure() []error {
	return []error{e.NotFound, e.Exists, e.Conflict, e.Corrupt, e.LockLost}
}

// The failures the matrix runs every statement into.
var (
	refused  = &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	deadlock = &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}
	lockWait = &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded; try restarting transaction"}
)

// cancelled returns a context cancelled before the call (d < 0), d into
// it (d > 0), or only by the returned function (d == 0).
func cancelled(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	switch {
	case d < 0:
		cancel()
	case d > 0:
		time.AfterFunc(d, cancel)
	}
	return ctx, cancel
}

// Op is one method of a SQL store (S), run by the error-path tests.
type Op[S any] struct {
	Name string
	// Expect sets up the method's first statement, failing with err
	// after delay, and what must follow its failure (a ROLLBACK).
	Expect func(m sqlmock.Sqlmock, delay time.Duration, err error)
	Call   func(ctx context.Context, s S) error
}

// RunErrors runs every op of a SQL store into every kind of failure: each
// gives an error that starts with prefix and the operation's name, wraps
// what went wrong (for a missing table: with hints that name the table
// and the fix), passes for none of the store sentinels, and sends no
// statement beyond the expected ones (the mock fails on any other).
func RunErrors[S any](t *testing.T, errs Errors, prefix, table string, hints []string, open func(*testing.T) (S, sqlmock.Sqlmock), ops []Op[S]) {
	missing := &mysql.MySQLError{Number: 1146, Message: "Table '" + table + "' doesn't exist"}
	tests := []struct {
		name   string
		cancel time.Duration // > 0: cancel ctx this long into the statement; < 0: before the call
		expect func(m sqlmock.Sqlmock, op Op[S])
		check  func(t *testing.T, err error)
	}{
		{"connection refused", 0, func(m sqlmock.Sqlmock, op Op[S]) { op.Expect(m, 0, refused) }, func(t *testing.T, err error) {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("error %v does not wrap ECONNREFUSED", err)
			}
		}},
		{"deadlock twice", 0, func(m sqlmock.Sqlmock, op Op[S]) {
			op.Expect(m, 0, deadlock)
			op.Expect(m, 0, deadlock)
		}, func(t *testing.T, err error) {
			if !errors.Is(err, &mysql.MySQLError{Number: 1213}) || !strings.Contains(err.Error(), "after one retry") {
				t.Errorf("error %v does not wrap the 1213 after a retry", err)
			}
		}},
		// Sent once: a second try would find no expectation, and fail
		// with the mock's own error instead of the 1205.
		{"lock wait timeout", 0, func(m sqlmock.Sqlmock, op Op[S]) { op.Expect(m, 0, lockWait) }, func(t *testing.T, err error) {
			if !errors.Is(err, &mysql.MySQLError{Number: 1205}) || !strings.Contains(err.Error(), "not retried") || strings.Contains(err.Error(), "after one retry") {
				t.Errorf("error %v does not wrap the 1205 as not retried", err)
			}
		}},
		{"missing table", 0, func(m sqlmock.Sqlmock, op Op[S]) { op.Expect(m, 0, missing) }, func(t *testing.T, err error) {
			if !errors.Is(err, &mysql.MySQLError{Number: 1146}) {
				t.Errorf("error %v does not wrap the 1146", err)
			}
			for _, hint := range hints {
				if !strings.Contains(err.Error(), hint) {
					t.Errorf("error %q does not say %q", err, hint)
				}
			}
		}},
		{"cancelled before", -1, func(sqlmock.Sqlmock, Op[S]) {}, func(t *testing.T, err error) {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v does not wrap context.Canceled", err)
			}
		}},
		{"cancelled during", 20 * time.Millisecond, func(m sqlmock.Sqlmock, op Op[S]) { op.Expect(m, time.Minute, errors.New("unreachable")) },
			func(t *testing.T, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("error %v does not wrap context.Canceled", err)
				}
			}},
	}
	for _, op := range ops {
		for _, tt := range tests {
			t.Run(op.Name+"/"+tt.name, func(t *testing.T) {
				s, mock := open(t)
				tt.expect(mock, op)
				ctx, cancel := cancelled(tt.cancel)
				defer cancel()
				err := op.Call(ctx, s)
				WaitMet(t, mock)
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.HasPrefix(err.Error(), prefix+op.Name) {
					t.Errorf("error %q does not start with %q", err, prefix+op.Name)
				}
				for _, sentinel := range errs.failure() {
					if errors.Is(err, sentinel) {
						t.Errorf("a failure must not pass for %v: %v", sentinel, err)
					}
				}
				tt.check(t, err)
			})
		}
	}
}

// RunRetryOnce: for every op, a deadlock (1213) costs one retry, and the
// retry's result is the call's; a lock wait timeout (1205) is not retried,
// which would double a wait that already ran its course.
func RunRetryOnce[S any](t *testing.T, open func(*testing.T) (S, sqlmock.Sqlmock), ops []Op[S]) {
	errRetry := errors.New("the retry's own error")
	for _, op := range ops {
		for _, tt := range []struct {
			number  uint16
			retried bool
		}{{1213, true}, {1205, false}} {
			t.Run(fmt.Sprintf("%s/%d", op.Name, tt.number), func(t *testing.T) {
				s, mock := open(t)
				op.Expect(mock, 0, &mysql.MySQLError{Number: tt.number})
				if tt.retried {
					// The retry reaches the mock; an error the store does
					// not retry proves it was sent exactly once more.
					op.Expect(mock, 0, errRetry)
				}
				err := op.Call(context.Background(), s)
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

// CreateTaken describes one SQL store's Create to RunCreateTakenKey: the
// INSERT it sends and the conditional DELETE of an expired row.
type CreateTaken struct {
	Prefix                 string
	Insert, DeleteExpired  string
	InsertArgs, DeleteArgs []driver.Value
	// Open returns a fresh store's mock and a call of its Create.
	Open func(*testing.T) (sqlmock.Sqlmock, func() error)
}

// RunCreateTakenKey: a Create whose INSERT finds the key taken deletes the
// row only if it is expired and inserts once more, whatever that DELETE
// found (the cleanup may have removed the row meanwhile); a second
// duplicate is a live row: Exists, starting with the prefix, with the
// driver's 1062 kept.
func RunCreateTakenKey(t *testing.T, errs Errors, c CreateTaken) {
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
			mock, create := c.Open(t)
			mock.ExpectExec(c.Insert).WithArgs(c.InsertArgs...).WillReturnError(dup)
			mock.ExpectExec(c.DeleteExpired).WithArgs(c.DeleteArgs...).WillReturnResult(sqlmock.NewResult(0, tt.deleted))
			second := mock.ExpectExec(c.Insert).WithArgs(c.InsertArgs...)
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
			if !errors.Is(err, errs.Exists) || !errors.Is(err, &mysql.MySQLError{Number: 1062}) || !strings.HasPrefix(err.Error(), c.Prefix) {
				t.Fatalf("Create = %v, want ErrExists with the driver's 1062 kept", err)
			}
		})
	}
}

// CheckRefusedUpdate: an Update that applied nothing returns no record and
// an error starting with prefix that wraps is (when set), mentions want,
// and passes for no other sentinel.
func CheckRefusedUpdate[R any](t testing.TB, errs Errors, prefix string, rec *R, err error, is error, want string) {
	t.Helper()
	if rec != nil || err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Update = %+v, %v; want no record and an error starting with %q mentioning %q", rec, err, prefix, want)
	}
	for _, sentinel := range []error{errs.NotFound, errs.Corrupt, errs.TooLarge, errs.NotInteger, errors.ErrUnsupported, errs.Conflict, errs.LockLost} {
		if got := errors.Is(err, sentinel); got != (sentinel == is) {
			t.Errorf("errors.Is(%v, %v) = %v", err, sentinel, got)
		}
	}
}

// UpdateTx describes one SQL store's Update transaction to RunUpdateSteps.
type UpdateTx[S, R any] struct {
	Prefix string
	Open   func(*testing.T) (S, sqlmock.Sqlmock)
	Lock   func(m sqlmock.Sqlmock) *sqlmock.ExpectedQuery // the SELECT ... FOR UPDATE
	Row    func() *sqlmock.Rows                           // the row it reads
	Write  func(m sqlmock.Sqlmock) *sqlmock.ExpectedExec  // the UPDATE it then sends
	// Update sets theme to "dark"; Applied tells whether the record it
	// returned has it.
	Update  func(ctx context.Context, s S) (*R, error)
	Applied func(*R) bool
}

// txStep is one statement of an Update transaction, and how it ends.
type txStep struct {
	stmt  string // begin, select, update, commit or rollback
	err   error
	delay time.Duration
}

// RunUpdateSteps: whichever step of Update's transaction fails, a failure
// after BEGIN rolls it back (a failed COMMIT has ended it already), the
// error says what failed and passes for no sentinel; a deadlock at any step
// runs the whole transaction once more, and its second try decides; a lock
// wait timeout is not repeated; a cancelled context stops it.
func RunUpdateSteps[S, R any](t *testing.T, errs Errors, tx UpdateTx[S, R]) {
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
			s, mock := tx.Open(t)
			for _, step := range tt.steps {
				switch step.stmt {
				case "begin":
					mock.ExpectBegin().WillReturnError(step.err)
				case "select":
					if q := tx.Lock(mock).WillDelayFor(step.delay); step.err != nil {
						q.WillReturnError(step.err)
					} else {
						q.WillReturnRows(tx.Row())
					}
				case "update":
					if e := tx.Write(mock); step.err != nil {
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
			ctx, cancel := cancelled(tt.cancel)
			defer cancel()
			rec, err := tx.Update(ctx, s)
			WaitMet(t, mock)
			if tt.check == nil {
				if err != nil || rec == nil || !tx.Applied(rec) {
					t.Fatalf("Update = %+v, %v; want the change applied", rec, err)
				}
				return
			}
			if rec != nil || err == nil {
				t.Fatalf("Update = %+v, %v; want an error", rec, err)
			}
			if !strings.HasPrefix(err.Error(), tx.Prefix) {
				t.Errorf("error %q does not start with %q", err, tx.Prefix)
			}
			for _, sentinel := range errs.failure() {
				if errors.Is(err, sentinel) {
					t.Errorf("a failure must not pass for %v: %v", sentinel, err)
				}
			}
			tt.check(t, err)
		})
	}
}
