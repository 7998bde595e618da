package sqltable

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

// The session lock of the SQL stores: GET_LOCK on a connection of its own,
// held until unlock. Lock names are global to the server, not to a
// database, and a connection that dies takes its locks with it.

const (
	// lockPoll bounds one GET_LOCK wait when ctx has no deadline, so a
	// waiter whose client went away does not linger on the server.
	lockPoll = 30
	// unlockTimeout bounds RELEASE_LOCK, which runs even when the
	// request's context is already cancelled.
	unlockTimeout = 5 * time.Second
)

// Held is a held lock with the store that its holder uses: S is the
// caller's store interface (session.Store), so that *Held[S] implements
// session.Lease.
type Held[S any] struct {
	*Lease
	store S
}

// Store is the store bound to the lock's connection.
func (h *Held[S]) Store() S { return h.store }

// Lock takes the lock for key and returns it with the store bind makes of
// a copy of the table bound to the lock's connection.
//
// Requests of this process queue in-process first, holding no connection;
// the one at the head takes a connection and GET_LOCK, which queues it
// behind the other processes. The server waits at most until ctx's
// deadline (rounded up to a second); a cancelled ctx closes the
// connection, which ends the wait. A lock not acquired by ctx's deadline
// gives an error wrapping both LockTimeout and ctx.Err().
func Lock[S any](ctx context.Context, t *Table, key string, bind func(*Table) S) (*Held[S], error) {
	l, err := t.lock(ctx, key)
	if err != nil {
		return nil, err
	}
	bound := *t
	bound.run, bound.lease = l.conn, l
	return &Held[S]{Lease: l, store: bind(&bound)}, nil
}

// Bound reports whether the table is bound to a held lock's connection,
// and if so whether it shares its life (cleanup, lock queue, Close) with
// t: what a lease's store must be.
func (t *Table) Bound(of *Table) bool {
	return t.lease != nil && t.run != of.run && t.life == of.life
}

func (t *Table) lock(ctx context.Context, key string) (*Lease, error) {
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("%s: lock: %w", t.prefix, err)
	}
	name := t.LockName(key)
	local, err := t.life.locks.Lock(ctx, name)
	if err != nil {
		return nil, t.lockFail(ctx, err)
	}
	conn, err := t.db.Conn(ctx)
	if err != nil {
		local()
		return nil, t.lockFail(ctx, err)
	}
	for {
		wait, bounded := lockWait(ctx)
		var got sql.NullInt64
		err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, wait).Scan(&got)
		switch {
		case err != nil:
			discardConn(conn)
			local()
			return nil, t.lockFail(ctx, err)
		case !got.Valid:
			discardConn(conn)
			local()
			return nil, fmt.Errorf("%s: lock: GET_LOCK returned NULL (the server refused or the wait was killed)", t.prefix)
		case got.Int64 == 1:
			return &Lease{t: t, conn: conn, name: name, local: local, ctx: context.WithoutCancel(ctx)}, nil
		case !bounded && ctx.Err() == nil:
			continue // the poll ran out, the caller still waits
		}
		_ = conn.Close()
		local()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%s: lock: %w: %w", t.prefix, t.errs.LockTimeout, cerr)
		}
		return nil, fmt.Errorf("%s: lock: %w (waited %d s)", t.prefix, t.errs.LockTimeout, wait)
	}
}

func (t *Table) lockFail(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: lock: %w: %w: %w", t.prefix, t.errs.LockTimeout, ctx.Err(), err)
	}
	return t.Fail(ctx, "lock", err)
}

// LockQueued reports how many callers of this process hold or wait for the
// in-process lock of key, and for how many keys there is one at all.
func (t *Table) LockQueued(key string) (callers, keys int) {
	return t.life.locks.Queued(t.LockName(key))
}

// Lease is a held GET_LOCK. The lock lives exactly as long as its
// connection: every statement of the holder runs on that connection, so
// once the connection is gone (killed, timed out by wait_timeout, a
// network failure) the holder's statements fail instead of overwriting the
// work of whoever took the lock next.
type Lease struct {
	t     *Table
	conn  *sql.Conn
	name  string
	local func() // releases the in-process queue
	ctx   context.Context
	lost  atomic.Bool
	once  sync.Once
	err   error
}

// broken reports whether err means the lock's connection is gone, and
// remembers it.
func (l *Lease) broken(err error) bool {
	var me *mysql.MySQLError
	gone := false
	switch {
	case errors.As(err, &me):
		gone = me.Number == errConnKilled || me.Number == errShutdown
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

// Unlock releases the lock. It runs RELEASE_LOCK even when the request's
// context is cancelled (the client may be gone while the handler
// finishes); if that fails, the connection is closed, which frees the lock
// on the server. It reports LockLost when the lock was no longer held.
// Only the first call releases; every call returns its result.
func (l *Lease) Unlock() error {
	l.once.Do(func() {
		defer l.local()
		t := l.t
		if l.lost.Load() {
			discardConn(l.conn)
			l.err = fmt.Errorf("%s: unlock: %w", t.prefix, t.errs.LockLost)
			return
		}
		rctx, cancel := context.WithTimeout(l.ctx, unlockTimeout)
		defer cancel()
		var released sql.NullInt64
		err := l.conn.QueryRowContext(rctx, "SELECT RELEASE_LOCK(?)", l.name).Scan(&released)
		if err != nil || released.Int64 != 1 {
			discardConn(l.conn)
			if err == nil || l.broken(err) {
				l.err = fmt.Errorf("%s: unlock: %w (RELEASE_LOCK: %v, %v)", t.prefix, t.errs.LockLost, released.Int64, err)
				return
			}
			t.logger.WarnContext(l.ctx, t.prefix+": RELEASE_LOCK failed; closed its connection instead",
				"table", t.name, "err", err)
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

// LockName is the GET_LOCK name of key, at most 64 characters as MySQL
// allows, derived from the table and key. Lock names are global to the
// server, so the table keeps two applications that share a server apart.
func (t *Table) LockName(key string) string {
	sum := sha256.Sum256([]byte(t.name + "\x00" + key))
	return "session:" + hex.EncodeToString(sum[:])[:56]
}

// lockWait returns the GET_LOCK timeout for ctx in whole seconds, and
// whether ctx has a deadline at all.
func lockWait(ctx context.Context) (int64, bool) {
	deadline, ok := ctx.Deadline()
	if !ok {
		// A negative timeout means forever on MySQL but NULL on MariaDB.
		return lockPoll, false
	}
	secs := math.Ceil(time.Until(deadline).Seconds())
	return int64(max(secs, 1)), true
}
