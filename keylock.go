package session

import (
	"context"
	"sync"
)

// keyLocks queues the holders of per-key locks within one process: the
// memory store's whole lock, and the first stage of a database lock, so that
// requests of one session waiting in one process hold no connection.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

// keyLock is one key's lock. refs counts its holder and waiters, so that
// the entry leaves the map as soon as nobody uses it.
type keyLock struct {
	sem  chan struct{}
	refs int
}

// lock blocks until the caller holds key's lock or ctx is done. The
// returned function releases it; a second call does nothing.
func (k *keyLocks) lock(ctx context.Context, key string) (func(), error) {
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

func (k *keyLocks) unref(key string, l *keyLock) {
	k.mu.Lock()
	if l.refs--; l.refs == 0 {
		delete(k.locks, key)
	}
	k.mu.Unlock()
}

// memLease is the Lease of a lock that lives in this process alone: it
// cannot be lost, and its store is the store itself.
type memLease struct {
	store  Store
	unlock func()
}

func (l *memLease) Store() Store  { return l.store }
func (l *memLease) Unlock() error { l.unlock(); return nil }
