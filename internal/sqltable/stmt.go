package sqltable

import (
	"context"
	"database/sql"
	"sync"
)

// Prepared statements: a statement sent with arguments and no prepared
// statement costs the driver three steps (prepare, execute, close: two
// round trips) unless the DSN sets interpolateParams, which the store does
// not control. The table prepares each statement it sends through the pool
// once, and database/sql keeps it prepared on every connection it has run
// on, so a statement is one round trip from then on: a write of a session
// is two (its load and its update) instead of four.
//
// Statements on a held lock's connection (a *sql.Conn, which has no
// statement cache of its own) are sent as they are, inside a transaction
// too: binding the pool's statement there would prepare it on that
// connection, and would hold the cache for as long as the row lock takes.

// stmts is the pool's prepared statements of one table, shared by its
// lease-bound copies.
type stmts struct {
	// inUse is held for reading while a statement of the cache runs, and
	// for writing by close alone, so that Close never closes a statement
	// under a call that is using it, and preparing a new statement never
	// waits for the calls in flight (on a capped pool, for a connection).
	inUse sync.RWMutex
	// mu guards byText and closed.
	mu     sync.Mutex
	byText map[string]*sql.Stmt
	// closed is set by Close: statements are sent unprepared from then on,
	// so that a store used after Close leaks no prepared statement.
	closed bool
}

// NoPrepare makes the table send every statement unprepared, as the driver
// does on its own: for tests that expect each statement on a sqlmock pool
// without its prepare step.
func (t *Table) NoPrepare() {
	c := &t.life.stmts
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// with calls f with query's prepared statement, preparing it on first use,
// or with nil to send it unprepared: on a lease's connection, once the
// table is closed, or when the server refuses to prepare it for another
// reason than a missing table or the caller's context (its limit of
// prepared statements, max_prepared_stmt_count, is shared by every
// connection of every client). The statement stays open until f returns.
func (t *Table) with(ctx context.Context, query string, f func(st *sql.Stmt) error) error {
	if t.lease != nil {
		return f(nil)
	}
	c := &t.life.stmts
	for {
		c.inUse.RLock()
		if st, closed := c.lookup(query); st != nil || closed {
			defer c.inUse.RUnlock()
			return f(st)
		}
		c.inUse.RUnlock()
		switch err := t.prepareOne(ctx, query); {
		case err == nil:
		case isMySQLError(err, errNoSuchTable) || ctx.Err() != nil:
			return err
		default:
			return f(nil)
		}
	}
}

// lookup returns query's statement, if prepared, and whether the cache is
// closed.
func (c *stmts) lookup(query string) (*sql.Stmt, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byText[query], c.closed
}

// prepareOne prepares query on the pool and keeps it, unless another
// caller did first or the table was closed meanwhile.
func (t *Table) prepareOne(ctx context.Context, query string) error {
	st, err := t.db.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	c := &t.life.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byText[query] != nil || c.closed {
		return st.Close()
	}
	if c.byText == nil {
		c.byText = make(map[string]*sql.Stmt)
	}
	c.byText[query] = st
	return nil
}

// close closes the prepared statements, once every call using one has
// returned; the table sends its statements unprepared from then on.
func (c *stmts) close() {
	c.inUse.Lock()
	defer c.inUse.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, st := range c.byText {
		_ = st.Close()
	}
	c.byText = nil
}

// exec sends one statement: prepared on the pool, as it is on a lease's
// connection.
func (t *Table) exec(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	err = t.with(ctx, query, func(st *sql.Stmt) error {
		if st == nil {
			res, err = t.run.ExecContext(ctx, query, args...)
		} else {
			res, err = st.ExecContext(ctx, args...)
		}
		return err
	})
	return res, err
}

// queryRow sends one single-row query and scans its row into dest, as exec.
func (t *Table) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	return t.with(ctx, query, func(st *sql.Stmt) error {
		if st == nil {
			return t.run.QueryRowContext(ctx, query, args...).Scan(dest...)
		}
		return st.QueryRowContext(ctx, args...).Scan(dest...)
	})
}

// query sends one query, as exec. The rows keep their statement open
// after the cache let go of it (database/sql waits for them).
func (t *Table) query(ctx context.Context, query string, args ...any) (rows *sql.Rows, err error) {
	err = t.with(ctx, query, func(st *sql.Stmt) error {
		if st == nil {
			rows, err = t.run.QueryContext(ctx, query, args...)
		} else {
			rows, err = st.QueryContext(ctx, args...)
		}
		return err
	})
	return rows, err
}

// prepare makes sure the statements of a transaction are prepared on the
// pool before it begins. A lease's table leaves them alone: its holder
// has the one connection it may take.
func (t *Table) prepare(ctx context.Context, queries []string) error {
	if t.lease != nil {
		return nil
	}
	for _, q := range queries {
		if err := t.with(ctx, q, func(*sql.Stmt) error { return nil }); err != nil {
			return err
		}
	}
	return nil
}

// txWith calls f with query's prepared statement bound to tx, or with nil
// to send it unprepared (always on a lease's connection). It never
// prepares on the pool, which would take a second connection while the
// transaction holds one: [Table.prepare] does that before the transaction
// begins.
func (t *Table) txWith(ctx context.Context, tx *sql.Tx, query string, f func(st *sql.Stmt) error) error {
	if t.lease != nil {
		return f(nil)
	}
	c := &t.life.stmts
	c.inUse.RLock()
	defer c.inUse.RUnlock()
	if st, _ := c.lookup(query); st != nil {
		return f(tx.StmtContext(ctx, st))
	}
	return f(nil)
}

// TxExec sends one statement of a transaction that the table began (see
// [Update] and [Rename]), prepared as the table's other statements.
func (t *Table) TxExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (res sql.Result, err error) {
	err = t.txWith(ctx, tx, query, func(st *sql.Stmt) error {
		if st == nil {
			res, err = tx.ExecContext(ctx, query, args...)
		} else {
			res, err = st.ExecContext(ctx, args...)
		}
		return err
	})
	return res, err
}

// TxQueryRow sends one single-row query of a transaction and scans its row
// into dest, as TxExec.
func (t *Table) TxQueryRow(ctx context.Context, tx *sql.Tx, query string, args []any, dest ...any) error {
	return t.txWith(ctx, tx, query, func(st *sql.Stmt) error {
		if st == nil {
			return tx.QueryRowContext(ctx, query, args...).Scan(dest...)
		}
		return st.QueryRowContext(ctx, args...).Scan(dest...)
	})
}

// TxInsert is Insert inside a transaction (see insertFresh). After a
// duplicate key InnoDB holds a shared lock on the existing row, which the
// DELETE must upgrade: two renames onto the same expired key can deadlock
// there, which the transaction's retry covers (keys are random: rare).
func (t *Table) TxInsert(ctx context.Context, tx *sql.Tx, key string, now any, insert, deleteExpiredKey string, args ...any) error {
	exec := func(ctx context.Context, q string, args ...any) (sql.Result, error) {
		return t.TxExec(ctx, tx, q, args...)
	}
	_, err := insertFresh(ctx, exec, key, now, insert, deleteExpiredKey, args)
	return err
}
