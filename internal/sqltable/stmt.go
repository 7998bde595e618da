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
// statement cache of its own) are sent as they are, except inside a
// transaction, which binds the pool's statement to its connection.

// stmts is the pool's prepared statements of one table, shared by its
// lease-bound copies.
type stmts struct {
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

// stmt returns the pool's prepared statement for query, preparing it on
// first use, or nil when the table sends statements unprepared.
func (t *Table) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c := &t.life.stmts
	c.mu.Lock()
	st, closed := c.byText[query], c.closed
	c.mu.Unlock()
	if st != nil || closed {
		return st, nil
	}
	st, err := t.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.byText[query]; old != nil || c.closed {
		// Another caller prepared it first, or Close ran meanwhile.
		_ = st.Close()
		return old, nil
	}
	if c.byText == nil {
		c.byText = make(map[string]*sql.Stmt)
	}
	c.byText[query] = st
	return st, nil
}

// close closes the prepared statements; the table sends its
// statements unprepared from then on.
func (c *stmts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, st := range c.byText {
		_ = st.Close()
	}
	c.byText = nil
}

// exec sends one statement: prepared on the pool, as it is on a lease's
// connection. A transaction's statements are prepared before it begins
// (Tx.Queries), never inside it.
func (t *Table) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.lease != nil {
		return t.run.ExecContext(ctx, query, args...)
	}
	st, err := t.stmt(ctx, query)
	switch {
	case err != nil:
		return nil, err
	case st == nil:
		return t.run.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

// queryRow sends one single-row query and scans its row into dest, as exec.
func (t *Table) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	if t.lease != nil {
		return t.run.QueryRowContext(ctx, query, args...).Scan(dest...)
	}
	st, err := t.stmt(ctx, query)
	switch {
	case err != nil:
		return err
	case st == nil:
		return t.run.QueryRowContext(ctx, query, args...).Scan(dest...)
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}

// query sends one query, as exec.
func (t *Table) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if t.lease != nil {
		return t.run.QueryContext(ctx, query, args...)
	}
	st, err := t.stmt(ctx, query)
	switch {
	case err != nil:
		return nil, err
	case st == nil:
		return t.run.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

// txStmt returns query's prepared statement bound to tx, or nil to send
// it unprepared. It never prepares on the pool, which would take a second
// connection while the transaction holds one: [Table.Prepare] does that
// before the transaction begins.
func (t *Table) txStmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	c := &t.life.stmts
	c.mu.Lock()
	st := c.byText[query]
	c.mu.Unlock()
	if st == nil {
		return nil
	}
	return tx.StmtContext(ctx, st)
}

// prepare makes sure the statements of a transaction are prepared on the
// pool before it begins. A lease's table leaves them alone: its holder
// has the one connection it may take.
func (t *Table) prepare(ctx context.Context, queries []string) error {
	if t.lease != nil {
		return nil
	}
	for _, q := range queries {
		if _, err := t.stmt(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// TxExec sends one statement of a transaction that the table began (see
// [Update] and [Rename]), prepared as the table's other statements.
func (t *Table) TxExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := t.txStmt(ctx, tx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// TxQueryRow sends one single-row query of a transaction and scans its row
// into dest, as TxExec.
func (t *Table) TxQueryRow(ctx context.Context, tx *sql.Tx, query string, args []any, dest ...any) error {
	if st := t.txStmt(ctx, tx, query); st != nil {
		return st.QueryRowContext(ctx, args...).Scan(dest...)
	}
	return tx.QueryRowContext(ctx, query, args...).Scan(dest...)
}
