// Package sqltable is what the SQL session stores (the MySQL store of
// package session and the Koa bridge of package koa) share, so that they
// differ only in their columns: the pool, each statement with its one
// retry, the error messages, Create's replacement of an expired row, the
// batched cleanup and its goroutine, Update's row-locked transaction with
// the combining of concurrent commits (update.go), and the GET_LOCK session
// lock (lock.go).
//
// It cannot import package session (which imports it), so it knows neither
// Record nor Change: Update is generic, and the sentinel errors it wraps
// come in through [Config].
package sqltable

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session/internal/keylock"
)

// Errors are the sentinels of package session that the table wraps, so
// that callers can test its errors with errors.Is.
type Errors struct {
	NotFound, Exists, Corrupt, LockTimeout, LockLost error
}

// Config describes one store's table.
type Config struct {
	DB *sql.DB
	// OwnDB: Close closes DB too.
	OwnDB bool
	// Table is the table name, checked to be a plain identifier.
	Table string
	// Batch is the most rows one cleanup DELETE removes; 0 means 1000.
	Batch int
	// Logger receives the failures no caller sees; nil means
	// slog.Default().
	Logger *slog.Logger
	// Prefix starts every error and log message: "session: mysql".
	Prefix string
	// StoreType and OptionsType name the store's exported types in hints:
	// "MySQLStore" and "MySQLOptions".
	StoreType, OptionsType string
	Errors                 Errors
	// Upgrade names what brings an older table up to date (a method that
	// returns an ALTER TABLE), for the error of a missing column.
	Upgrade string
}

// Table is one store's table. A lease's store works on a copy bound to the
// lock's connection (see [Lock]); the copies share the cleanup, the
// in-process lock queue and Close.
type Table struct {
	db *sql.DB
	// run sends the statements: db, or the connection of a held lock, so
	// a locked request needs one connection only.
	run runner
	// lease is the lock whose connection run is, or nil.
	lease  *Lease
	ownDB  bool
	name   string
	batch  int
	logger *slog.Logger
	prefix string
	hint   string
	errs   Errors
	// Now is the clock: time.Now, or a test's.
	Now func() time.Time
	// upgrade says how to add missing columns, or "".
	upgrade string
	// emptied is what a change of a batch gets when an earlier one left
	// the row without values.
	emptied error

	life *life
}

// life is the state of a table that its lease-bound copies share.
type life struct {
	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	locks     keylock.Locks
	stmts     stmts
}

// runner is what *sql.DB and *sql.Conn have in common.
type runner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

const (
	defaultInterval = 5 * time.Minute
	defaultBatch    = 1000

	errDupEntry        = 1062
	errNoSuchTable     = 1146
	errBadField        = 1054
	errDupField        = 1060
	errLockWaitTimeout = 1205
	errDeadlock        = 1213
	errShutdown        = 1053
	errConnKilled      = 1927
)

// New checks the settings every SQL store has and fills in their defaults.
// It sends nothing to the server.
func New(cfg Config) (*Table, error) {
	if !plainIdentifier(cfg.Table) {
		return nil, fmt.Errorf("%s: table name %q is not a plain identifier (letters, digits, '_', at most 64, not starting with a digit)", cfg.Prefix, cfg.Table)
	}
	if cfg.Batch < 0 {
		return nil, fmt.Errorf("%s: negative CleanupBatch %d", cfg.Prefix, cfg.Batch)
	}
	if cfg.Batch == 0 {
		cfg.Batch = defaultBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Table{
		db: cfg.DB, run: cfg.DB, ownDB: cfg.OwnDB, name: cfg.Table, batch: cfg.Batch, logger: cfg.Logger,
		prefix: cfg.Prefix, errs: cfg.Errors, Now: time.Now, life: &life{}, upgrade: cfg.Upgrade,
		emptied: fmt.Errorf("%w (emptied by an earlier change of the batch)", cfg.Errors.NotFound),
		hint:    fmt.Sprintf("create it (see %s.CreateTableSQL) or leave %s.NoCreateTable false", cfg.StoreType, cfg.OptionsType),
	}, nil
}

// Name is the table's name.
func (t *Table) Name() string { return t.name }

// Logger is where the failures no caller sees go.
func (t *Table) Logger() *slog.Logger { return t.logger }

// CreateTable runs the store's CREATE TABLE IF NOT EXISTS.
func (t *Table) CreateTable(query string) error {
	// The constructor has no caller context; the driver's own dial and
	// I/O timeouts bound this statement.
	if _, err := t.db.ExecContext(context.Background(), query); err != nil {
		return t.Fail(context.Background(), "create table", err)
	}
	return nil
}

// Upgrade brings a table of an earlier version of the store up to date:
// when check, a query of the columns that version lacked, fails on an
// unknown column, it runs alter, which adds them. A column that another
// server added first is no failure.
func (t *Table) Upgrade(check, alter string) error {
	// As CREATE TABLE: the driver's own timeouts bound these statements.
	ctx := context.Background()
	var col any
	err := t.db.QueryRowContext(ctx, check).Scan(&col)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil // the table has the columns
	case !isMySQLError(err, errBadField):
		return t.Fail(ctx, "upgrade table", err)
	}
	t.logger.Warn(t.prefix+": upgrading the table of an earlier version", "table", t.name)
	if _, err := t.db.ExecContext(ctx, alter); err != nil && !isMySQLError(err, errDupField) {
		return t.Fail(ctx, "upgrade table", err)
	}
	return nil
}

// CleanupEvery prepares the cleanup for the CleanupInterval option (zero
// means 5 minutes, negative none) and returns the context that Close
// cancels and the interval, or 0 when there is no cleanup. The constructor
// starts [Table.CleanupLoop] itself, so that a goroutine dump names the
// store that owns it.
func (t *Table) CleanupEvery(interval time.Duration) (context.Context, time.Duration) {
	if interval == 0 {
		interval = defaultInterval
	}
	if interval < 0 {
		return nil, 0
	}
	ctx, stop := context.WithCancel(context.Background())
	t.life.stop, t.life.done = stop, make(chan struct{})
	return ctx, interval
}

// CleanupLoop calls deleteExpired every interval until ctx is done, logging
// its failures, which are never fatal: expired rows stay hidden.
func (t *Table) CleanupLoop(ctx context.Context, interval time.Duration, deleteExpired func(context.Context) (int64, error)) {
	defer close(t.life.done)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if _, err := deleteExpired(ctx); err != nil && ctx.Err() == nil {
			t.logger.ErrorContext(ctx, t.prefix+": cleanup failed; expired rows stay hidden and are retried later",
				"table", t.name, "err", err)
		}
	}
}

// Close stops the cleanup and waits for it to finish, then closes the pool
// if the store opened it. Calling it again returns the first result.
func (t *Table) Close() error {
	l := t.life
	l.closeOnce.Do(func() {
		if l.stop != nil {
			l.stop()
			<-l.done
		}
		l.stmts.close()
		if t.ownDB {
			l.closeErr = t.db.Close()
		}
	})
	return l.closeErr
}

// DeleteExpired runs query, a DELETE of the rows expired at now with a
// LIMIT of the batch size, until a statement deletes fewer rows than
// that, and reports how many it deleted.
func (t *Table) DeleteExpired(ctx context.Context, query string, now any) (int64, error) {
	var total int64
	for {
		n, err := t.Changed(ctx, "delete expired", query, now, t.batch)
		if err != nil {
			return total, err
		}
		total += n
		if n < int64(t.batch) {
			return total, nil
		}
	}
}

// insertFresh sends insert with args through exec. When key is taken (a
// duplicate-key error, which undoes that statement alone) it removes the
// row there only if it is expired (deleteExpiredKey with key and now:
// cleanup may not have reached it yet, and a live row is never touched),
// then sends insert once more, even when the DELETE found nothing, since
// cleanup may have removed the row in between; a live row makes that
// INSERT fail as a duplicate again. Inserting first, rather than deleting
// first, sends one statement less when the key is free and takes no gap
// lock on which two concurrent inserts could deadlock under REPEATABLE
// READ. deleting reports that the DELETE failed, with err.
func insertFresh(ctx context.Context, exec func(context.Context, string, ...any) (sql.Result, error),
	key string, now any, insert, deleteExpiredKey string, args []any) (deleting bool, err error) {
	if _, err = exec(ctx, insert, args...); !isMySQLError(err, errDupEntry) {
		return false, err
	}
	if _, err = exec(ctx, deleteExpiredKey, key, now); err != nil {
		return true, err
	}
	_, err = exec(ctx, insert, args...)
	return false, err
}

// Insert is Create's statement: insert, the INSERT of a new row under key
// with args, never overwrites a live row. When the key is taken,
// deleteExpiredKey (with args key and now) removes the row only if it is
// expired, and the INSERT is tried once more.
func (t *Table) Insert(ctx context.Context, key string, now any, insert, deleteExpiredKey string, args ...any) error {
	deleting, err := insertFresh(ctx, t.Exec, key, now, insert, deleteExpiredKey, args)
	if deleting {
		return t.Fail(ctx, "create: delete expired row", err)
	}
	if isMySQLError(err, errDupEntry) {
		return fmt.Errorf("%s: create: %w: %w", t.prefix, t.errs.Exists, err)
	}
	if err != nil {
		return t.Fail(ctx, "create", err)
	}
	return nil
}

// Exec runs one statement, and once more after a deadlock: InnoDB rolled
// it back, and on its own it is safe to repeat. A lock wait timeout is not
// repeated, which would double a wait that already ran its course.
func (t *Table) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := t.lostLock(); err != nil {
		return nil, err
	}
	res, err := t.exec(ctx, query, args...)
	if retryable(err) && ctx.Err() == nil {
		res, err = t.exec(ctx, query, args...)
	}
	return res, err
}

// QueryRow runs one single-row query into dest, and once more after a
// deadlock.
func (t *Table) QueryRow(ctx context.Context, query string, args []any, dest ...any) error {
	if err := t.lostLock(); err != nil {
		return err
	}
	err := t.queryRow(ctx, query, args, dest...)
	if retryable(err) && ctx.Err() == nil {
		err = t.queryRow(ctx, query, args, dest...)
	}
	return err
}

// Query runs one query and calls scan for each row it returns, once
// more after a deadlock (before any row was scanned); a failure comes
// back wrapped for op.
func (t *Table) Query(ctx context.Context, op, query string, args []any, scan func(*sql.Rows) error) error {
	if err := t.lostLock(); err != nil {
		return err
	}
	rows, err := t.query(ctx, query, args...)
	if retryable(err) && ctx.Err() == nil {
		rows, err = t.query(ctx, query, args...)
	}
	if err != nil {
		return t.Fail(ctx, op, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return t.Fail(ctx, op, err)
		}
	}
	if err := rows.Err(); err != nil {
		return t.Fail(ctx, op, err)
	}
	return nil
}

// lostLock fails a lease's store once its lock is known to be lost,
// before anything is sent.
func (t *Table) lostLock() error {
	if t.lease != nil && t.lease.lost.Load() {
		return fmt.Errorf("%s: %w: the lock's connection failed earlier", t.prefix, t.errs.LockLost)
	}
	return nil
}

// inTx runs f in one transaction, and all of it once more after a
// deadlock. f's error rolls the transaction back and is returned as it is.
func (t *Table) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	err := t.tryTx(ctx, f)
	if retryable(err) && ctx.Err() == nil {
		err = t.tryTx(ctx, f)
	}
	return err
}

func (t *Table) tryTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	if err := t.lostLock(); err != nil {
		return err
	}
	tx, err := t.run.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Changed runs one statement, as Exec, and reports how many rows it
// changed; a failure comes back wrapped for op.
func (t *Table) Changed(ctx context.Context, op, query string, args ...any) (int64, error) {
	res, err := t.Exec(ctx, query, args...)
	if err != nil {
		return 0, t.Fail(ctx, op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, t.Fail(ctx, op, err)
	}
	return n, nil
}

// TouchRow is the stores' Touch: touch (args exp, key, now) moves the
// expiry of the live row. MySQL counts changed rows, not matched ones, so
// when it changes none, live (args key, now, scanned into dest) tells a
// live row that already had this expiry from a missing or expired one, as
// of the same instant.
func (t *Table) TouchRow(ctx context.Context, key string, exp, now any, touch, live string, dest ...any) error {
	n, err := t.Changed(ctx, "touch", touch, exp, key, now)
	if err != nil || n > 0 {
		return err
	}
	err = t.QueryRow(ctx, live, []any{key, now}, dest...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: touch: %w", t.prefix, t.errs.NotFound)
	case err != nil:
		return t.Fail(ctx, "touch", err)
	}
	return nil
}

// DeleteKey is the stores' Delete: query (arg key) removes key's row.
func (t *Table) DeleteKey(ctx context.Context, key, query string) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("%s: delete: %w", t.prefix, err)
	}
	if _, err := t.Exec(ctx, query, key); err != nil {
		return t.Fail(ctx, "delete", err)
	}
	return nil
}

// LoadErr words the error of a statement that reads a record for op: no
// row is NotFound, a Corrupt row says so, the rest as Fail.
func (t *Table) LoadErr(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %s: %w", t.prefix, op, t.errs.NotFound)
	case errors.Is(err, t.errs.Corrupt):
		return fmt.Errorf("%s: %s: %w", t.prefix, op, err)
	}
	return t.Fail(ctx, op, err)
}

func retryable(err error) bool {
	return isMySQLError(err, errDeadlock)
}

func isMySQLError(err error, number uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == number
}

// Fail wraps a database error for op, naming the table when it is missing
// and keeping ctx's error visible whatever the driver reported.
func (t *Table) Fail(ctx context.Context, op string, err error) error {
	if t.lease != nil && ctx.Err() == nil && t.lease.broken(err) {
		return fmt.Errorf("%s: %s: %w: the lock's connection failed: %w", t.prefix, op, t.errs.LockLost, err)
	}
	switch {
	case isMySQLError(err, errNoSuchTable):
		return fmt.Errorf("%s: %s: table `%s` does not exist: %s: %w", t.prefix, op, t.name, t.hint, err)
	case isMySQLError(err, errBadField) && t.upgrade != "":
		return fmt.Errorf("%s: %s: table `%s` lacks a column: %s: %w", t.prefix, op, t.name, t.upgrade, err)
	case retryable(err):
		return fmt.Errorf("%s: %s: failed again after one retry: %w", t.prefix, op, err)
	case isMySQLError(err, errLockWaitTimeout):
		return fmt.Errorf("%s: %s: a row lock wait timed out (innodb_lock_wait_timeout; not retried): %w", t.prefix, op, err)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%s: %s: %w: %w", t.prefix, op, cerr, err)
	}
	return fmt.Errorf("%s: %s: %w", t.prefix, op, err)
}

// plainIdentifier reports whether name is safe to splice into SQL and
// means the same on every MySQL flavour and in any SQL mode: ASCII letters,
// digits and '_', not starting with a digit, at most 64 characters. The
// statements quote it with backticks too, so a reserved word still works.
func plainIdentifier(name string) bool {
	if name == "" || len(name) > 64 || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// CheckKey rejects store keys an id column cannot hold exactly: it is
// ASCII, at most 255 characters, and ignores trailing spaces in
// comparisons. The keys the middleware makes are 64 hex digits.
func CheckKey(key string) error {
	if key == "" || len(key) > 255 {
		return fmt.Errorf("invalid key: length %d, want 1 to 255", len(key))
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return fmt.Errorf("invalid key: byte %#x at %d is not printable ASCII", key[i], i)
		}
	}
	return nil
}

// CheckValue refuses a value a utf8mb4 column would reject or mangle.
func CheckValue(k string, v json.RawMessage) error {
	if !utf8.ValidString(k) {
		return fmt.Errorf("value name %q is not valid UTF-8", k)
	}
	if len(v) > 0 && (!utf8.Valid(v) || !json.Valid(v)) {
		return fmt.Errorf("value %q is not valid UTF-8 JSON", k)
	}
	return nil
}

// CheckValues is CheckValue for each of values.
func CheckValues(values iter.Seq2[string, json.RawMessage]) error {
	for k, v := range values {
		if err := CheckValue(k, v); err != nil {
			return err
		}
	}
	return nil
}
