// Package keylock queues the holders of per-key locks within one process:
// the memory store's whole lock, and the first stage of a database lock, so
// that requests of one session waiting in one process hold no connection.
package keylock

import (
	"context"
	"sync"
)

// Locks is a set of per-key locks. The zero value is ready to use.
type Locks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

// keyLock is one key's lock. refs counts its holder and waiters, so that
// the entry leaves the map as soon as nobody uses it.
type keyLock struct {
	sem  chan struct{}
	refs int
}

// Lock blocks until the caller holds key's lock or ctx is done, in which
// case it returns ctx.Err(). The returned function releases the lock; a
// second call does nothing.
func (k *Locks) Lock(ctx context.Context, key string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{sem: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()

	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		k.unref(key, l)
		return nil, ctx.Err()
	}
	// The Once makes a second call harmless instead of releasing the lock
	// of whoever acquired it next.
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.sem
			k.unref(key, l)
		})
	}, nil
}

func (k *Locks) unref(key string, l *keyLock) {
	k.mu.Lock()
	if l.refs--; l.refs == 0 {
		delete(k.locks, key)
	}
	k.mu.Unlock()
}

// Queued reports how many callers hold or wait for key's lock, and how many
// keys have a holder or a waiter at all: what a test waits for, and checks
// is back to zero once every lock has ended.
func (k *Locks) Queued(key string) (callers, keys int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l := k.locks[key]; l != nil {
		callers = l.refs
	}
	return callers, len(k.locks)
}
