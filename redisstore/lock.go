package redisstore

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed013449c2/session"
)

// A session lock is the key "{Prefix}{<store key>}:lock", set with SET NX
// PX to a random token for LockTTL and renewed by its holder every
// LockTTL/3. Only the holder's token releases or renews it (a script
// compares first), and every write of the holder's store checks the token
// in the same script that writes, so a holder that lost its lock (it
// expired while the process stalled, or Redis lost it in a failover)
// cannot overwrite the work of the next holder.
//
// Requests of one process that wait for the same session queue on a
// channel of that process (lockQueue), holding no connection: only the
// first in line talks to Redis, and it polls only while another process
// holds the lock. A holder that leaves while others of its process wait
// hands the Redis lock itself to the next (up to maxHandoffs in a row, so
// that other processes get their turn): under contention a locked request
// costs no SET and no release, only its own reads and writes.

// lockQueue lets one request of this process at a time go after a key's
// lock. refs counts the requests holding or waiting for it, so that the
// queue is dropped with the last.
type lockQueue struct {
	turn chan struct{} // holds a token while a request has the turn
	refs int

	// Guarded by Store.mu: the token of a Redis lock handed to the next
	// holder ("" when none), when that lock was last renewed (measured
	// before the call), and how many holders in a row handed it on.
	passed   string
	renewed  time.Time
	handoffs int
}

// maxHandoffs bounds how many holders of one process in a row hand the
// Redis lock on before one releases it to the other processes.
const maxHandoffs = 16

// ErrClosed is returned by Lock after [Store.Close].
var ErrClosed = errors.New("redisstore: store closed")

// Lock blocks until the caller holds the lock of key, or ctx is done: then
// it returns an error wrapping ctx.Err(), and session.ErrLockTimeout when
// ctx's deadline passed. The lease's store writes only while the lock is
// held; the lease must be released with Unlock.
func (s *Store) Lock(ctx context.Context, key string) (session.Lease, error) {
	q, err := s.enqueue(key)
	if err != nil {
		return nil, err
	}
	select {
	case q.turn <- struct{}{}:
	case <-ctx.Done():
		s.dequeue(key, q)
		return nil, lockErr(ctx)
	}
	lockKey := s.lockKey(key)
	s.mu.Lock()
	token, renewed := q.passed, q.renewed
	q.passed = ""
	s.mu.Unlock()
	if token == "" {
		var err error
		if token, renewed, err = s.take(ctx, key, lockKey, q); err != nil {
			return nil, err
		}
	}
	l := &lease{s: s, key: key, lockKey: lockKey, token: token, q: q, renewed: renewed,
		stop: make(chan struct{}), done: make(chan struct{})}
	l.store = &leasedStore{l: l}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.leases[l] = struct{}{}
	}
	s.mu.Unlock()
	if closed {
		close(l.done)
		l.Unlock()
		return nil, fmt.Errorf("redisstore: lock: %w", ErrClosed)
	}
	go l.renew()
	return l, nil
}

// take sets the Redis lock of key to a new token, polling while another
// process holds it, and returns the token and when it was set (measured
// before the call). On failure it leaves key's queue.
func (s *Store) take(ctx context.Context, key, lockKey string, q *lockQueue) (string, time.Time, error) {
	token, err := newToken()
	if err != nil {
		s.leave(key, q)
		return "", time.Time{}, err
	}
	wait := time.Millisecond
	for {
		start := time.Now()
		ok, err := s.c.SetNX(ctx, lockKey, token, s.lockTTL).Result()
		if err != nil {
			// The SET may have taken the lock before the answer was lost
			// (a deadline mid-call): release it, or the session would stay
			// locked for LockTTL.
			go s.releaseToken(lockKey, token)
			s.leave(key, q)
			if ctx.Err() != nil {
				return "", time.Time{}, lockErr(ctx)
			}
			return "", time.Time{}, fmt.Errorf("redisstore: lock: %w", err)
		}
		if ok {
			return token, start, nil
		}
		// Another process holds the lock: wait a random part of the
		// interval, so that processes polling together spread out.
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			s.leave(key, q)
			return "", time.Time{}, lockErr(ctx)
		}
		wait = min(2*wait, s.lockPoll)
	}
}

// releaseToken deletes the lock lockKey if it holds token.
func (s *Store) releaseToken(lockKey, token string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.lockTTL)
	defer cancel()
	return releaseScript.Run(ctx, s.c, []string{lockKey}, token).Int()
}

func lockErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("redisstore: lock: %w: %w", session.ErrLockTimeout, ctx.Err())
	}
	return fmt.Errorf("redisstore: lock: %w", ctx.Err())
}

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := cryptorand.Read(b); err != nil {
		return "", fmt.Errorf("redisstore: lock: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// enqueue joins key's queue, making it if needed.
func (s *Store) enqueue(key string) (*lockQueue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("redisstore: lock: %w", ErrClosed)
	}
	q := s.queues[key]
	if q == nil {
		q = &lockQueue{turn: make(chan struct{}, 1)}
		s.queues[key] = q
	}
	q.refs++
	return q, nil
}

// dequeue leaves key's queue without having had the turn. The last to
// leave releases a Redis lock handed on to waiters who then gave up.
func (s *Store) dequeue(key string, q *lockQueue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.refs--; q.refs == 0 {
		delete(s.queues, key)
		if q.passed != "" {
			go s.releaseToken(s.lockKey(key), q.passed)
			q.passed = ""
		}
	}
}

// leave gives up the turn and leaves key's queue.
func (s *Store) leave(key string, q *lockQueue) {
	<-q.turn
	s.dequeue(key, q)
}

// lease is a held lock.
type lease struct {
	s       *Store
	key     string
	lockKey string
	token   string
	q       *lockQueue
	store   *leasedStore
	// renewed is when the lock was last set or renewed, measured before
	// the call; written by renew, read by Unlock once renew has returned.
	renewed time.Time

	lost atomic.Bool // the lock is, or may be, no longer ours
	stop chan struct{}
	done chan struct{} // closed when renew returns

	once sync.Once
	err  error
}

// Store returns the store to use while the lease is held: its writes
// succeed only while the lock still holds this lease's token.
func (l *lease) Store() session.Store { return l.store }

// renew extends the lock every LockTTL/3 until Unlock. When the lock is
// gone, or no renewal succeeded for LockTTL (so it may have expired), the
// lease is lost.
func (l *lease) renew() {
	defer close(l.done)
	ttl := l.s.lockTTL
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
		n, err := renewScript.Run(ctx, l.s.c, []string{l.lockKey}, l.token, ttl.Milliseconds()).Int()
		cancel()
		switch {
		case err == nil && n == 1:
			l.renewed = start
		case err == nil || time.Since(l.renewed) >= ttl:
			l.lost.Store(true)
			return
		}
	}
}

// Unlock releases the lock. It returns an error wrapping
// session.ErrLockLost when the lock was lost while held; later calls
// return the same as the first.
func (l *lease) Unlock() error {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		if l.lost.Load() {
			l.err = fmt.Errorf("redisstore: unlock: %w", session.ErrLockLost)
		} else if !l.handOff() {
			n, err := l.s.releaseToken(l.lockKey, l.token)
			switch {
			case err != nil:
				// The lock expires by itself within LockTTL.
				l.err = fmt.Errorf("redisstore: unlock: %w", err)
			case n == 0:
				l.err = fmt.Errorf("redisstore: unlock: %w", session.ErrLockLost)
			}
		}
		l.lost.Store(true) // this lease's store writes no more
		l.s.mu.Lock()
		delete(l.s.leases, l)
		l.s.mu.Unlock()
		l.s.leave(l.key, l.q)
	})
	return l.err
}

// handOff passes the Redis lock to the next holder of this process, if
// one waits and the run of hand-offs is not at its limit.
func (l *lease) handOff() bool {
	s, q := l.s, l.q
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.refs > 1 && q.handoffs < maxHandoffs && !s.closed && time.Since(l.renewed) < s.lockTTL/2 {
		q.passed, q.renewed = l.token, l.renewed
		q.handoffs++
		return true
	}
	q.handoffs = 0
	return false
}

// Close releases the locks still held through the store and makes Lock
// fail with ErrClosed. It does not close the client. The store's other
// methods keep working.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	held := make([]*lease, 0, len(s.leases))
	for l := range s.leases {
		held = append(held, l)
	}
	s.mu.Unlock()
	for _, l := range held {
		l.Unlock()
	}
	return nil
}

// leasedStore is a lease's store: its writes to the lease's key check the
// lock's token in the script that writes, and fail with ErrLockLost once
// the lease is lost. Writes to other keys (a regenerated session's new
// key) cannot check the token atomically, as they may live in another
// Cluster slot; they fail when the lease is known to be lost.
type leasedStore struct {
	l *lease
}

func (ls *leasedStore) check(op string) error {
	if ls.l.lost.Load() {
		return fmt.Errorf("redisstore: %s: %w", op, session.ErrLockLost)
	}
	return nil
}

// token returns the token a write to key checks.
func (ls *leasedStore) token(key string) string {
	if key == ls.l.key {
		return ls.l.token
	}
	return ""
}

func (ls *leasedStore) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := ls.check("load"); err != nil {
		return nil, err
	}
	return ls.l.s.Load(ctx, key)
}

func (ls *leasedStore) Create(ctx context.Context, key string, rec *session.Record) error {
	if err := ls.check("create"); err != nil {
		return err
	}
	return ls.l.s.create(ctx, key, rec, ls.token(key))
}

func (ls *leasedStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	if err := ls.check("update"); err != nil {
		return nil, err
	}
	return ls.l.s.update(ctx, key, ch, ls.token(key))
}

func (ls *leasedStore) Touch(ctx context.Context, key string, expires time.Time) error {
	if err := ls.check("touch"); err != nil {
		return err
	}
	return ls.l.s.touch(ctx, key, expires, ls.token(key))
}

func (ls *leasedStore) Delete(ctx context.Context, key string) error {
	if err := ls.check("delete"); err != nil {
		return err
	}
	return ls.l.s.delete(ctx, key, ls.token(key))
}

// DeleteOwner is the store's: ending an owner's sessions does not depend
// on holding one session's lock.
func (ls *leasedStore) DeleteOwner(ctx context.Context, owner, exceptKey string) (int, error) {
	return ls.l.s.DeleteOwner(ctx, owner, exceptKey)
}
