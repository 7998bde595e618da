package session

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// The session lock of the MySQL stores: GET_LOCK on a connection of its
// own, held until unlock. Lock names are global to the server, not to a
// database, and a connection that dies takes its locks with it.

const (
	// mysqlLockPoll bounds one GET_LOCK wait when ctx has no deadline, so
	// a waiter whose client went away does not linger on the server.
	mysqlLockPoll = 30
	// mysqlUnlockTimeout bounds RELEASE_LOCK, which runs even when the
	// request's context is already cancelled.
	mysqlUnlockTimeout = 5 * time.Second
)

// lock takes the lock for key. The server waits at most until ctx's
// deadline (rounded up to a second); a cancelled ctx closes the
// connection, which ends the wait. A lock not acquired by ctx's deadline
// gives an error wrapping both [ErrLockTimeout] and ctx.Err().
func (b *mysqlTable) lock(ctx context.Context, key string) (func(), error) {
	if err := checkMySQLKey(key); err != nil {
		return nil, fmt.Errorf("%s: lock: %w", b.prefix, err)
	}
	name := b.lockName(key)
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return nil, b.lockFail(ctx, err)
	}
	for {
		wait, bounded := mysqlLockWait(ctx)
		var got sql.NullInt64
		err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, wait).Scan(&got)
		switch {
		case err != nil:
			discardConn(conn)
			return nil, b.lockFail(ctx, err)
		case !got.Valid:
			discardConn(conn)
			return nil, fmt.Errorf("%s: lock: GET_LOCK returned NULL (the server refused or the wait was killed)", b.prefix)
		case got.Int64 == 1:
			return b.unlocker(ctx, conn, name), nil
		case !bounded && ctx.Err() == nil:
			continue // the poll ran out, the caller still waits
		}
		_ = conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%s: lock: %w: %w", b.prefix, ErrLockTimeout, cerr)
		}
		return nil, fmt.Errorf("%s: lock: %w (waited %d s)", b.prefix, ErrLockTimeout, wait)
	}
}

func (b *mysqlTable) lockFail(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: lock: %w: %w: %w", b.prefix, ErrLockTimeout, ctx.Err(), err)
	}
	return b.fail(ctx, "lock", err)
}

// unlocker returns the function that releases the lock and gives conn
// back. It runs RELEASE_LOCK even when ctx is cancelled (the client may
// be gone while the handler finishes); if that fails, the connection is
// closed, which frees the lock on the server.
func (b *mysqlTable) unlocker(ctx context.Context, conn *sql.Conn, name string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mysqlUnlockTimeout)
			defer cancel()
			var released sql.NullInt64
			err := conn.QueryRowContext(rctx, "SELECT RELEASE_LOCK(?)", name).Scan(&released)
			if err != nil || released.Int64 != 1 {
				b.logger.WarnContext(ctx, b.prefix+": RELEASE_LOCK failed; closing its connection instead",
					"table", b.table, "result", released.Int64, "err", err)
				discardConn(conn)
				return
			}
			_ = conn.Close()
		})
	}
}

// discardConn closes the driver connection behind conn rather than
// returning it to the pool: a connection that may still hold a lock, or
// broke mid-query, must not serve anyone else.
func discardConn(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// lockName derives the GET_LOCK name, at most 64 characters on MySQL,
// from the table and key. Lock names are global to the server, so the
// table keeps two applications that share a server apart.
func (b *mysqlTable) lockName(key string) string {
	sum := sha256.Sum256([]byte(b.table + "\x00" + key))
	return "session:" + hex.EncodeToString(sum[:])[:56]
}

// mysqlLockWait returns the GET_LOCK timeout for ctx in whole seconds, and
// whether ctx has a deadline at all.
func mysqlLockWait(ctx context.Context) (int64, bool) {
	deadline, ok := ctx.Deadline()
	if !ok {
		// A negative timeout means forever on MySQL but NULL on MariaDB.
		return mysqlLockPoll, false
	}
	secs := math.Ceil(time.Until(deadline).Seconds())
	return int64(max(secs, 1)), true
}
