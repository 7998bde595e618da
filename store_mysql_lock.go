package session

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
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

// lock takes the lock for key. Requests of this process queue in-process
// first, holding no connection; the one at the head takes a connection
// and GET_LOCK, which queues it behind the other processes. The server
// waits at most until ctx's deadline (rounded up to a second); a cancelled
// ctx closes the connection, which ends the wait. A lock not acquired by
// ctx's deadline gives an error wrapping both [ErrLockTimeout] and
// ctx.Err().
func (b *mysqlTable) lock(ctx context.Context, key string) (*mysqlLease, error) {
	if err := checkMySQLKey(key); err != nil {
		return nil, fmt.Errorf("%s: lock: %w", b.prefix, err)
	}
	name := b.lockName(key)
	local, err := b.life.locks.lock(ctx, name)
	if err != nil {
		return nil, b.lockFail(ctx, err)
	}
	conn, err := b.db.Conn(ctx)
	if err != nil {
		local()
		return nil, b.lockFail(ctx, err)
	}
	for {
		wait, bounded := mysqlLockWait(ctx)
		var got sql.NullInt64
		err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, wait).Scan(&got)
		switch {
		case err != nil:
			discardConn(conn)
			local()
			return nil, b.lockFail(ctx, err)
		case !got.Valid:
			discardConn(conn)
			local()
			return nil, fmt.Errorf("%s: lock: GET_LOCK returned NULL (the server refused or the wait was killed)", b.prefix)
		case got.Int64 == 1:
			return &mysqlLease{b: b, conn: conn, name: name, local: local, ctx: context.WithoutCancel(ctx)}, nil
		case !bounded && ctx.Err() == nil:
			continue // the poll ran out, the caller still waits
		}
		_ = conn.Close()
		local()
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

// mysqlLease is a held GET_LOCK. The lock lives exactly as long as its
// connection: every statement of the holder runs on that connection, so
// once the connection is gone (killed, timed out by wait_timeout, a
// network failure) the holder's statements fail instead of overwriting the
// work of whoever took the lock next.
type mysqlLease struct {
	b     *mysqlTable
	conn  *sql.Conn
	name  string
	local func() // releases the in-process queue
	ctx   context.Context
	store Store
	lost  atomic.Bool
	once  sync.Once
	err   error
}

// Store implements [Lease]: the store bound to the lock's connection.
func (l *mysqlLease) Store() Store { return l.store }

// broken reports whether err means the lock's connection is gone, and
// remembers it.
func (l *mysqlLease) broken(err error) bool {
	var me *mysql.MySQLError
	gone := false
	switch {
	case errors.As(err, &me):
		gone = me.Number == mysqlErrConnKilled || me.Number == mysqlErrShutdown
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		gone = true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// A context error says nothing of the connection (and a
		// deadline is a net.Error too).
	default:
		var ne net.Error
		gone = errors.As(err, &ne)
	}
	if gone {
		l.lost.Store(true)
	}
	return gone
}

// Unlock implements [Lease]. It runs RELEASE_LOCK even when the request's
// context is cancelled (the client may be gone while the handler
// finishes); if that fails, the connection is closed, which frees the lock
// on the server. It reports ErrLockLost when the lock was no longer held.
func (l *mysqlLease) Unlock() error {
	l.once.Do(func() {
		defer l.local()
		b := l.b
		if l.lost.Load() {
			discardConn(l.conn)
			l.err = fmt.Errorf("%s: unlock: %w", b.prefix, ErrLockLost)
			return
		}
		rctx, cancel := context.WithTimeout(l.ctx, mysqlUnlockTimeout)
		defer cancel()
		var released sql.NullInt64
		err := l.conn.QueryRowContext(rctx, "SELECT RELEASE_LOCK(?)", l.name).Scan(&released)
		if err != nil || released.Int64 != 1 {
			discardConn(l.conn)
			if err == nil || l.broken(err) {
				l.err = fmt.Errorf("%s: unlock: %w (RELEASE_LOCK: %v, %v)", b.prefix, ErrLockLost, released.Int64, err)
				return
			}
			b.logger.WarnContext(l.ctx, b.prefix+": RELEASE_LOCK failed; closed its connection instead",
				"table", b.table, "err", err)
			return
		}
		_ = l.conn.Close()
	})
	return l.err
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
