package session_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed013449c2/session"
)

// instantDriver is a database whose every statement succeeds at once and
// changes nothing: it makes the store's own code, not the network, the
// time a call takes.
type instantDriver struct{}

func (instantDriver) Connect(context.Context) (driver.Conn, error) { return instantConn{}, nil }
func (d instantDriver) Driver() driver.Driver                      { return d }
func (instantDriver) Open(string) (driver.Conn, error)             { return instantConn{}, nil }

type instantConn struct{}

func (instantConn) Prepare(string) (driver.Stmt, error) { return instantStmt{}, nil }
func (instantConn) Close() error                        { return nil }
func (instantConn) Begin() (driver.Tx, error)           { return nil, errors.New("no transactions") }

type instantStmt struct{}

func (instantStmt) Close() error                               { return nil }
func (instantStmt) NumInput() int                              { return -1 }
func (instantStmt) Exec([]driver.Value) (driver.Result, error) { return driver.RowsAffected(0), nil }
func (instantStmt) Query([]driver.Value) (driver.Rows, error) {
	return nil, errors.New("no queries")
}

// TestMySQLCloseWhileInFlight: a MySQLStore on the caller's pool keeps
// working after Close (Close never closes a pool it did not open, and a
// store used after Close sends its statements unprepared), so a call
// that runs while Close closes the prepared statements must succeed too,
// not fail with database/sql's "statement is closed".
func TestMySQLCloseWhileInFlight(t *testing.T) {
	t.Parallel()
	db := sql.OpenDB(instantDriver{})
	t.Cleanup(func() { db.Close() })
	db.SetMaxIdleConns(64)
	ctx := t.Context()
	var failed atomic.Int64
	var first atomic.Value
	deadline := time.Now().Add(5 * time.Second)
	rounds := 0
	for ; rounds < 400 && time.Now().Before(deadline) && failed.Load() == 0; rounds++ {
		st, err := session.NewMySQLStore(db, session.MySQLOptions{NoCreateTable: true, CleanupInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, "warm"); err != nil {
			t.Fatal(err) // prepares the statement
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := st.Delete(ctx, "key"); err != nil {
						failed.Add(1)
						first.CompareAndSwap(nil, err.Error())
					}
				}
			}()
		}
		time.Sleep(200 * time.Microsecond)
		st.Close()
		time.Sleep(100 * time.Microsecond)
		close(stop)
		wg.Wait()
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d calls failed while Close ran (round %d): %v", n, rounds, first.Load())
	}
	t.Logf("%d rounds without a failure", rounds)
}

// blockingDriver is instantDriver, except that a statement whose text
// contains block waits until release is closed.
type blockingDriver struct {
	block   string
	entered chan struct{}
	release chan struct{}
}

func (d *blockingDriver) Connect(context.Context) (driver.Conn, error) { return blockingConn{d}, nil }
func (d *blockingDriver) Driver() driver.Driver                        { return instantDriver{} }

type blockingConn struct{ d *blockingDriver }

func (c blockingConn) Prepare(q string) (driver.Stmt, error) { return blockingStmt{c.d, q}, nil }
func (blockingConn) Close() error                            { return nil }
func (blockingConn) Begin() (driver.Tx, error)               { return nil, errors.New("no transactions") }

type blockingStmt struct {
	d *blockingDriver
	q string
}

func (blockingStmt) Close() error  { return nil }
func (blockingStmt) NumInput() int { return -1 }
func (s blockingStmt) Exec([]driver.Value) (driver.Result, error) {
	if strings.Contains(s.q, s.d.block) {
		s.d.entered <- struct{}{}
		<-s.d.release
	}
	return driver.RowsAffected(0), nil
}
func (blockingStmt) Query([]driver.Value) (driver.Rows, error) { return nil, errors.New("no queries") }

// TestMySQLPrepareDoesNotWaitForCallsInFlight: the first use of a
// statement prepares it without waiting for the statements in flight
// (which on a capped pool may be waiting for a connection), so one slow
// call never holds up every other.
func TestMySQLPrepareDoesNotWaitForCallsInFlight(t *testing.T) {
	d := &blockingDriver{block: "DELETE FROM `sessions` WHERE id = ?", entered: make(chan struct{}), release: make(chan struct{})}
	db := sql.OpenDB(d)
	t.Cleanup(func() { db.Close() })
	st, err := session.NewMySQLStore(db, session.MySQLOptions{NoCreateTable: true, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	slow := make(chan error, 1)
	go func() { slow <- st.Delete(ctx, "slow") }()
	<-d.entered
	done := make(chan error, 1)
	go func() { _, err := st.DeleteOwner(ctx, "ann", "k"); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		close(d.release) // let the slow call and Close end
		t.Fatal("a statement's first use waited for a call in flight")
	}
	close(d.release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}
