package session

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Store keeps session records under opaque keys. The middleware never hands a
// store the session id itself: by default a key is the SHA-256 of the id, so a
// leaked table logs no one in (see [KeyScheme] for the one exception).
//
// Every method receives the request's context and must give up when it is
// cancelled. Implementations must be safe for concurrent use. The conformance
// suite in package sessiontest checks a Store against this contract.
//
// The contract is built so that nothing is lost under concurrency:
//
//   - Create never overwrites and Save never creates: a session that was
//     deleted (logout, [Session.Regenerate]) cannot be brought back by a
//     slower request's write-back.
//   - Save is a compare-and-swap on Version, so the middleware can merge
//     concurrent changes key by key: when Save answers ErrConflict it loads
//     the fresh record, applies only its own changes and tries again.
//   - Touch moves the expiry without rewriting values, so an idle-timeout
//     refresh never races a concurrent change.
type Store interface {
	// Load returns the live record stored under key. It returns an error
	// wrapping ErrNotFound when there is none or when its Expires has
	// passed: a store must check expiry on every read and never rely on
	// cleanup having run.
	//
	// The caller must not modify the returned record or its Values: a store
	// may hand the same record to several callers.
	Load(ctx context.Context, key string) (*Record, error)

	// Create stores rec under key, which must be free, and sets rec.Version
	// to the version it stored. It returns an error wrapping ErrExists when
	// a live record is already stored there. The store takes ownership of
	// rec: the caller only reads it afterwards.
	Create(ctx context.Context, key string, rec *Record) error

	// Save replaces the record stored under key with rec, provided the
	// stored record still has version rec.Version (the version that was
	// loaded). The store gives the saved record a new version and sets
	// rec.Version to it, so the caller can save again. Save returns
	// an error wrapping ErrConflict when the stored version differs, and one
	// wrapping ErrNotFound when there is no live record under key: Save
	// never creates a record. The store takes ownership of rec, as in
	// Create.
	Save(ctx context.Context, key string, rec *Record) error

	// Touch sets the Expires of the live record under key without changing
	// its values or version, or returns an error wrapping ErrNotFound.
	Touch(ctx context.Context, key string, expires time.Time) error

	// Delete removes the record under key. Deleting a missing record is not
	// an error.
	Delete(ctx context.Context, key string) error

	// DeleteOwner removes every record whose Owner is owner, except the one
	// stored under exceptKey when exceptKey is not empty, and reports how
	// many it removed. An empty owner removes nothing.
	DeleteOwner(ctx context.Context, owner, exceptKey string) (int, error)
}

// Locker is implemented by stores that can serialize the requests of one
// session, across every process that shares the store. It is used only when
// [Options.Lock] is set or a handler is wrapped with [Manager.Locked].
type Locker interface {
	// Lock blocks until the caller holds the lock for key or ctx is done,
	// in which case it returns an error wrapping ctx.Err(). The returned
	// function releases the lock; it must be safe to call once from any
	// goroutine, and a holder that dies (its process or connection gone)
	// must not keep the lock.
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// KeyScheme is implemented by stores that dictate the form of ids and keys,
// such as a table shared with another framework. A store that does not
// implement it gets 32-byte ids and SHA-256 keys.
type KeyScheme interface {
	// IDBytes is the number of random bytes in a new id (at least 16).
	IDBytes() int
	// Key returns the store key for a well-formed id.
	Key(id string) string
}

// Record is one session as a store keeps it.
type Record struct {
	// Values holds each value as JSON, by key. A record with no values is
	// never stored: the middleware deletes it instead.
	Values map[string]json.RawMessage
	// Owner ties the session to a principal (a user id) so that
	// [Store.DeleteOwner] can end all of that principal's sessions.
	Owner string
	// Created is when the session was first stored.
	Created time.Time
	// Expires is when the record stops being live: the idle timeout,
	// never later than Deadline.
	Expires time.Time
	// Deadline is the absolute end of the session (Created plus
	// [Options.Lifetime]); activity does not move it.
	Deadline time.Time
	// Version identifies the stored state for [Store.Save]'s
	// compare-and-swap. Only the store gives it meaning.
	Version int64
}

// Errors shared by every store. Stores wrap them with %w so that callers can
// test them with errors.Is.
var (
	// ErrNotFound: no live record under the key.
	ErrNotFound = errors.New("session: not found")
	// ErrExists: Create found a live record under the key.
	ErrExists = errors.New("session: key already exists")
	// ErrConflict: Save found another version than the one loaded.
	ErrConflict = errors.New("session: concurrent update")
	// ErrLockTimeout: the session lock was not acquired in time.
	ErrLockTimeout = errors.New("session: lock wait timed out")
	// ErrCorrupt: a record exists but cannot be decoded (say, a row edited
	// by hand). Load returns it wrapped; the middleware logs it and starts
	// a fresh session instead of failing every request of that visitor.
	ErrCorrupt = errors.New("session: stored record is corrupt")
)

// ErrFull is returned by a store that refuses a new session because it holds
// as many as it was configured to; existing sessions keep working.
var ErrFull = errors.New("session: store is full")
