package session

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
)

// mysqlTable is what the stores over one MySQL table share, so that
// [MySQLStore] and [KoaStore] differ only in their columns: the pool, each
// statement with its one retry, the error messages, Create's replacement of
// an expired row, the batched cleanup and its goroutine, and the GET_LOCK
// locker (store_mysql_lock.go). Both stores embed it.
type mysqlTable struct {
	db *sql.DB
	// run sends the statements: db, or the connection of a held lock
	// (see mysqlLease), so a locked request needs one connection only.
	run mysqlRunner
	// lease is the lock whose connection run is, or nil.
	lease  *mysqlLease
	ownDB  bool
	table  string
	batch  int
	logger *slog.Logger
	now    func() time.Time
	// prefix starts every error and log message: "session: mysql".
	prefix string
	// kind names the store's exported types in hints: "MySQL" for
	// MySQLStore and MySQLOptions.
	kind string

	// life is shared by every copy a lease makes.
	life *mysqlLife
}

// mysqlLife is the state of a store that its lease-bound copies share: the
// cleanup, the in-process lock queue, Close.
type mysqlLife struct {
	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	locks     keyLocks
	combiner  updateCombiner
}

// mysqlRunner is what *sql.DB and *sql.Conn have in common.
type mysqlRunner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

const (
	mysqlDefaultInterval = 5 * time.Minute
	mysqlDefaultBatch    = 1000

	mysqlErrDupEntry        = 1062
	mysqlErrNoSuchTable     = 1146
	mysqlErrLockWaitTimeout = 1205
	mysqlErrDeadlock        = 1213
	mysqlErrShutdown        = 1053
	mysqlErrConnKilled      = 1927
)

// setup checks the settings every MySQL store has and fills in their
// defaults. It sends nothing to the server.
func (b *mysqlTable) setup(db *sql.DB, ownDB bool, prefix, kind, table string, batch int, logger *slog.Logger) error {
	if !plainIdentifier(table) {
		return fmt.Errorf("%s: table name %q is not a plain identifier (letters, digits, '_', at most 64, not starting with a digit)", prefix, table)
	}
	if batch < 0 {
		return fmt.Errorf("%s: negative CleanupBatch %d", prefix, batch)
	}
	if batch == 0 {
		batch = mysqlDefaultBatch
	}
	if logger == nil {
		logger = slog.Default()
	}
	b.db, b.run, b.ownDB, b.table, b.batch, b.logger, b.now = db, db, ownDB, table, batch, logger, time.Now
	b.life = &mysqlLife{}
	b.prefix, b.kind = prefix, kind
	return nil
}

// createTable runs the store's CREATE TABLE IF NOT EXISTS.
func (b *mysqlTable) createTable(query string) error {
	// The constructor has no caller context; the driver's own dial and
	// I/O timeouts bound this statement.
	if _, err := b.db.ExecContext(context.Background(), query); err != nil {
		return b.fail(context.Background(), "create table", err)
	}
	return nil
}

// cleanupEvery prepares the cleanup for the CleanupInterval option (zero
// means the default, negative none) and returns the context that Close
// cancels and the interval, or 0 when there is no cleanup. The constructor
// starts the loop itself, so that a goroutine dump names the store that
// owns it.
func (b *mysqlTable) cleanupEvery(interval time.Duration) (context.Context, time.Duration) {
	if interval == 0 {
		interval = mysqlDefaultInterval
	}
	if interval < 0 {
		return nil, 0
	}
	ctx, stop := context.WithCancel(context.Background())
	b.life.stop, b.life.done = stop, make(chan struct{})
	return ctx, interval
}

func (b *mysqlTable) cleanupLoop(ctx context.Context, interval time.Duration, deleteExpired func(context.Context) (int64, error)) {
	defer close(b.life.done)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if _, err := deleteExpired(ctx); err != nil && ctx.Err() == nil {
			b.logger.ErrorContext(ctx, b.prefix+": cleanup failed; expired rows stay hidden and are retried later",
				"table", b.table, "err", err)
		}
	}
}

// close stops the cleanup and waits for it to finish, then closes the pool
// if the store opened it. Calling it again returns the first result.
func (b *mysqlTable) close() error {
	l := b.life
	l.closeOnce.Do(func() {
		if l.stop != nil {
			l.stop()
			<-l.done
		}
		if b.ownDB {
			l.closeErr = b.db.Close()
		}
	})
	return l.closeErr
}

// deleteExpired runs query, a DELETE of the rows expired at now with a
// LIMIT of the batch size, until a statement deletes fewer rows than
// that, and reports how many it deleted.
func (b *mysqlTable) deleteExpired(ctx context.Context, query string, now any) (int64, error) {
	var total int64
	for {
		n, err := b.changed(ctx, "delete expired", query, now, b.batch)
		if err != nil {
			return total, err
		}
		total += n
		if n < int64(b.batch) {
			return total, nil
		}
	}
}

// insert is Create's statement: insert, the INSERT of a new row under key
// with args, never overwrites a live row. When the key is taken,
// deleteExpiredKey (with args key and now) removes the row only if it is
// expired, and the INSERT is tried once more.
func (b *mysqlTable) insert(ctx context.Context, key string, now any, insert, deleteExpiredKey string, args ...any) error {
	_, err := b.exec(ctx, insert, args...)
	if isMySQLError(err, mysqlErrDupEntry) {
		// Cleanup may not have reached an expired row under this key yet.
		// Delete it only if it is still expired, so a live row is never
		// touched, then insert again: even when this DELETE found nothing,
		// since the cleanup may have removed the row in between. A live
		// row makes the second INSERT fail as a duplicate: ErrExists.
		if _, derr := b.exec(ctx, deleteExpiredKey, key, now); derr != nil {
			return b.fail(ctx, "create: delete expired row", derr)
		}
		_, err = b.exec(ctx, insert, args...)
	}
	if isMySQLError(err, mysqlErrDupEntry) {
		return fmt.Errorf("%s: create: %w: %w", b.prefix, ErrExists, err)
	}
	if err != nil {
		return b.fail(ctx, "create", err)
	}
	return nil
}

// exec runs one statement, and once more after a deadlock: InnoDB rolled
// it back, and on its own it is safe to repeat. A lock wait timeout is not
// repeated, which would double a wait that already ran its course.
func (b *mysqlTable) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := b.lostLock(); err != nil {
		return nil, err
	}
	res, err := b.run.ExecContext(ctx, query, args...)
	if mysqlRetryable(err) && ctx.Err() == nil {
		res, err = b.run.ExecContext(ctx, query, args...)
	}
	return res, err
}

// lostLock fails a lease's store once its lock is known to be lost,
// before anything is sent.
func (b *mysqlTable) lostLock() error {
	if b.lease != nil && b.lease.lost.Load() {
		return fmt.Errorf("%s: %w: the lock's connection failed earlier", b.prefix, ErrLockLost)
	}
	return nil
}

// inTx runs f in one transaction, and all of it once more after a
// deadlock. f's error rolls the transaction back and is returned as it is.
func (b *mysqlTable) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	err := b.tryTx(ctx, f)
	if mysqlRetryable(err) && ctx.Err() == nil {
		err = b.tryTx(ctx, f)
	}
	return err
}

// errNothingToWrite rolls back a transaction whose every change was
// refused.
var errNothingToWrite = errors.New("nothing to write")

// updateBatch is both stores' Update: under key's row lock, taken by
// lockRow (which returns the live record or sql.ErrNoRows), it applies
// chs in order, checking each result with check, and stores the outcome
// with write (a nil record: delete the row). Commits of one session that
// reach this process while one is in flight are combined into one such
// transaction; a lease's store runs its single holder's change alone.
func (b *mysqlTable) updateBatch(ctx context.Context, key string, ch *Change,
	lockRow func(ctx context.Context, tx *sql.Tx) (*Record, error),
	check func(*Record) error,
	write func(ctx context.Context, tx *sql.Tx, old, rec *Record) error,
) (*Record, error) {
	run := func(ctx context.Context, chs []*Change) ([]batchResult, error) {
		var results []batchResult
		err := b.inTx(ctx, func(tx *sql.Tx) error {
			rec, err := lockRow(ctx, tx)
			if err != nil {
				return err
			}
			var final *Record
			results, final = applyAll(rec, chs, fmt.Errorf("%s: update: %w (emptied by an earlier change of the batch)", b.prefix, ErrNotFound), check)
			written := false
			for _, r := range results {
				written = written || r.err == nil
			}
			if !written {
				return errNothingToWrite
			}
			return write(ctx, tx, rec, final)
		})
		switch {
		case err == nil, errors.Is(err, errNothingToWrite):
			for i := range results {
				if results[i].err != nil {
					results[i].err = fmt.Errorf("%s: update: %w", b.prefix, results[i].err)
				}
			}
			return results, nil
		case errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("%s: update: %w", b.prefix, ErrNotFound)
		case errors.Is(err, ErrCorrupt):
			return nil, fmt.Errorf("%s: update: %w", b.prefix, err)
		}
		return nil, b.fail(ctx, "update", err)
	}
	if b.lease != nil {
		results, err := run(ctx, []*Change{ch})
		if err != nil {
			return nil, err
		}
		return results[0].rec, results[0].err
	}
	rec, err := b.life.combiner.update(ctx, key, ch, run)
	if errors.Is(err, errWithdrawn) {
		return nil, fmt.Errorf("%s: update: %w", b.prefix, err)
	}
	return rec, err
}

func (b *mysqlTable) tryTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	if err := b.lostLock(); err != nil {
		return err
	}
	tx, err := b.run.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// changed runs one statement, as exec, and reports how many rows it
// changed; a failure comes back wrapped for op.
func (b *mysqlTable) changed(ctx context.Context, op, query string, args ...any) (int64, error) {
	res, err := b.exec(ctx, query, args...)
	if err != nil {
		return 0, b.fail(ctx, op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, b.fail(ctx, op, err)
	}
	return n, nil
}

// touchRow is both stores' Touch: touch (args exp, key, now) moves the
// expiry of the live row. MySQL counts changed rows, not matched ones, so
// when it changes none, live (args key, now, scanned into dest) tells a
// live row that already had this expiry from a missing or expired one, as
// of the same instant.
func (b *mysqlTable) touchRow(ctx context.Context, key string, exp, now any, touch, live string, dest ...any) error {
	n, err := b.changed(ctx, "touch", touch, exp, key, now)
	if err != nil || n > 0 {
		return err
	}
	err = b.queryRow(ctx, live, []any{key, now}, dest...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: touch: %w", b.prefix, ErrNotFound)
	case err != nil:
		return b.fail(ctx, "touch", err)
	}
	return nil
}

// deleteKey is both stores' Delete: query (arg key) removes key's row.
func (b *mysqlTable) deleteKey(ctx context.Context, key, query string) error {
	if err := checkMySQLKey(key); err != nil {
		return fmt.Errorf("%s: delete: %w", b.prefix, err)
	}
	if _, err := b.exec(ctx, query, key); err != nil {
		return b.fail(ctx, "delete", err)
	}
	return nil
}

// queryRow runs one single-row query into dest, and once more after a
// deadlock or lock wait timeout.
func (b *mysqlTable) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	if err := b.lostLock(); err != nil {
		return err
	}
	err := b.run.QueryRowContext(ctx, query, args...).Scan(dest...)
	if mysqlRetryable(err) && ctx.Err() == nil {
		err = b.run.QueryRowContext(ctx, query, args...).Scan(dest...)
	}
	return err
}

func mysqlRetryable(err error) bool {
	return isMySQLError(err, mysqlErrDeadlock)
}

func isMySQLError(err error, number uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == number
}

// fail wraps a database error for op, naming the table when it is missing
// and keeping ctx's error visible whatever the driver reported.
func (b *mysqlTable) fail(ctx context.Context, op string, err error) error {
	if b.lease != nil && ctx.Err() == nil && b.lease.broken(err) {
		return fmt.Errorf("%s: %s: %w: the lock's connection failed: %w", b.prefix, op, ErrLockLost, err)
	}
	switch {
	case isMySQLError(err, mysqlErrNoSuchTable):
		return fmt.Errorf("%s: %s: table `%s` does not exist: create it (see %sStore.CreateTableSQL) or leave %sOptions.NoCreateTable false: %w",
			b.prefix, op, b.table, b.kind, b.kind, err)
	case mysqlRetryable(err):
		return fmt.Errorf("%s: %s: failed again after one retry: %w", b.prefix, op, err)
	case isMySQLError(err, mysqlErrLockWaitTimeout):
		return fmt.Errorf("%s: %s: a row lock wait timed out (innodb_lock_wait_timeout; not retried): %w", b.prefix, op, err)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%s: %s: %w: %w", b.prefix, op, cerr, err)
	}
	return fmt.Errorf("%s: %s: %w", b.prefix, op, err)
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

// checkMySQLKey rejects keys the id column cannot hold exactly: it is
// ASCII, at most 255 characters, and ignores trailing spaces in
// comparisons. The keys the middleware makes are 64 hex digits.
func checkMySQLKey(key string) error {
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

// mysqlEncodeValues writes values as one JSON object with sorted keys (see
// encodeObject), refusing bytes the utf8mb4 column would reject or mangle.
func mysqlEncodeValues(values map[string]json.RawMessage) (string, error) {
	for k, v := range values {
		if !utf8.ValidString(k) {
			return "", fmt.Errorf("value name %q is not valid UTF-8", k)
		}
		if len(v) > 0 && (!utf8.Valid(v) || !json.Valid(v)) {
			return "", fmt.Errorf("value %q is not valid UTF-8 JSON", k)
		}
	}
	return string(encodeObject(values)), nil
}
