package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/seed013449c2/session/internal/pmap"
)

// Store keeps session records under opaque keys. The middleware never hands a
// store the session id itself: by default a key is the SHA-256 of the id, so a
// leaked table logs no one in (see [KeyScheme] for the one exception).
//
// Every method receives a context with a deadline (see Options.StoreTimeout)
// and must give up when it is done. Implementations must be safe for
// concurrent use. The conformance suite in package sessiontest checks a
// Store against this contract.
//
// The contract is built so that nothing is lost under concurrency, and so
// that many requests of one session writing at once cost no more than one
// write each:
//
//   - Create never overwrites and Update never creates: a session that was
//     deleted (logout, [Session.Regenerate]) cannot be brought back by a
//     slower request's write-back.
//   - Update applies one request's [Change] (keys set and deleted, counters
//     added to, owner, expiry) to the freshest stored record in one atomic
//     step: concurrent requests that change different keys all persist, and
//     nobody retries.
//   - Touch moves the expiry without rewriting values, so an idle-timeout
//     refresh never races a concurrent change.
//
// A backend that has only a read and a put-if-version (a key-value store with
// compare-and-swap) implements Update by calling [UpdateCAS], which merges
// the change onto the fresh record and retries on conflict.
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

	// Update applies ch to the live record under key atomically, as
	// [Change.Apply] does, and returns the record as stored afterwards. It
	// returns an error wrapping ErrNotFound when there is no live record
	// under key (Update never creates one), and the errors of Change.Apply
	// (ErrTooLarge, ErrNotInteger) with the stored record unchanged. When
	// the change leaves no values the store deletes the record and returns
	// it with empty Values.
	//
	// ch is the caller's again once Update returns: a store must not read
	// it, or what it points to, afterwards. One that keeps a change longer
	// (to batch it with others, past a caller who gave up) keeps a
	// [Change.Clone].
	Update(ctx context.Context, key string, ch *Change) (*Record, error)

	// Touch sets the Expires of the live record under key without changing
	// its values, or returns an error wrapping ErrNotFound.
	Touch(ctx context.Context, key string, expires time.Time) error

	// Delete removes the record under key. Deleting a missing record is not
	// an error.
	Delete(ctx context.Context, key string) error
}

// OwnerStore is implemented by stores that keep [Record.Owner] and can end
// every session of one owner: what [Manager.Revoke] and [Session.RevokeOwner]
// need. A store that does not implement it refuses a record with an owner
// with an error wrapping errors.ErrUnsupported.
type OwnerStore interface {
	// DeleteOwner removes every record whose Owner is owner, except the one
	// stored under exceptKey when exceptKey is not empty, and reports how
	// many it removed. An empty owner removes nothing.
	DeleteOwner(ctx context.Context, owner, exceptKey string) (int, error)
}

// DeviceStore is implemented by stores that can list the live sessions of
// one owner and end one of them by its [Record.Handle]: what
// [Session.Devices] and [Session.EndDevice] need ("your devices"). It
// keeps [Record.Label] and [Record.Handle], and the middleware gives every
// new record a handle only when its store implements it.
//
// Nothing it returns may reveal a store key: a handle is a random name of
// its own, never derived from the id or its key, so that a list shown to
// its user gives away no way to log in.
type DeviceStore interface {
	OwnerStore
	// Devices returns the live records of owner, at most limit of them
	// (those that expire last, when there are more), in any order. An
	// empty owner has none.
	Devices(ctx context.Context, owner string, limit int) ([]DeviceRecord, error)
	// DeleteDevice deletes the live record of owner whose Handle is
	// handle, matched byte for byte, and reports whether there was one.
	// An empty owner or handle matches nothing.
	DeleteDevice(ctx context.Context, owner, handle string) (bool, error)
}

// DeviceRecord is what [DeviceStore.Devices] returns of a record: what its
// user needs to recognise it, and nothing that could log anyone in.
type DeviceRecord struct {
	// Handle and Label are the record's (Record.Handle, Record.Label).
	Handle, Label string
	// Created and Expires are the record's: when it was first stored, and
	// its idle expiry.
	Created, Expires time.Time
	// IdleTimeout is the record's own, or 0 for the middleware's default.
	IdleTimeout time.Duration
}

// Renamer is implemented by stores that can move a live record to a new key
// in one atomic step: what [Session.Regenerate] needs to be exact. With it,
// a logout or revoke that lands while a login regenerates the id always
// wins, the new record gets this request's changes on top of the freshest
// stored values, and a store at its session cap still lets a visitor log
// in. Without it, Regenerate creates the new record, checks that the old
// one is still live and deletes it: three calls, with a short window in
// which a concurrent logout is undone.
type Renamer interface {
	// Rename moves the live record under oldKey to newKey, which must be
	// free, applying ch to it on the way, as Update does, and returns the
	// record as stored. It returns an error wrapping ErrNotFound, and
	// creates nothing, when no live record is under oldKey; one wrapping
	// ErrExists when a live record holds newKey; and the errors of
	// Change.Apply, with nothing changed. When the change leaves no
	// values, the old record is deleted and nothing is created.
	Rename(ctx context.Context, oldKey, newKey string, ch *Change) (*Record, error)
}

// Locker is implemented by stores that can serialize the requests of one
// session, across every process that shares the store. It is used only when
// [Options.Lock] is set or a handler is wrapped with [Manager.Locked].
//
// Requests of one session that wait in one process must queue in that
// process, holding no connection or other shared resource while they wait.
type Locker interface {
	// Lock blocks until the caller holds the lock for key or ctx is done,
	// in which case it returns an error wrapping ctx.Err() (and
	// ErrLockTimeout when ctx's deadline passed). The wait for any
	// resource the lock needs (a pool connection) counts against ctx.
	Lock(ctx context.Context, key string) (Lease, error)
}

// Lease is a held session lock.
type Lease interface {
	// Store returns the store that the holder uses while it holds the
	// lease: a store whose lock lives on a connection returns one that runs
	// every call on that connection, so a locked request never needs a
	// second one. Once the lock is lost, every call of that store fails
	// with an error wrapping ErrLockLost, so a holder that lost its lock
	// cannot overwrite the work of the request that took it next.
	Store() Store
	// Unlock releases the lock. It must be safe to call more than once and
	// from any goroutine. It returns an error wrapping ErrLockLost when the
	// lock was lost while held (its connection died).
	Unlock() error
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
	// never stored: the middleware deletes it instead. Once a record is
	// made (by a store, or by [Change.Apply]) and handed on, its Values
	// map is not changed in place: stores share records between requests,
	// and Apply remembers what it measured of the map it made. A store
	// that patches a record makes a new map for the result.
	Values map[string]json.RawMessage
	// Owner ties the session to a principal (a user id) so that
	// [OwnerStore.DeleteOwner] can end all of that principal's sessions.
	Owner string
	// Created is when the session was first stored.
	Created time.Time
	// Expires is when the record stops being live: the idle timeout,
	// never later than Deadline.
	Expires time.Time
	// Deadline is the absolute end of the session (Created plus
	// [Options.Lifetime], or what [Session.Remember] chose); activity does
	// not move it.
	Deadline time.Time
	// IdleTimeout is the session's own idle timeout, chosen by
	// [Session.Remember]; 0 means [Options.IdleTimeout].
	IdleTimeout time.Duration
	// Persist says what kind of cookie the session gets (see
	// [CookiePersistence]).
	Persist CookiePersistence
	// Label is what the app calls the session in a list of devices
	// ([Session.SetLabel]): at most 255 characters of UTF-8.
	Label string
	// Handle names the session in a list of devices ([Session.Devices]):
	// random, made when the record is first created, kept by Regenerate,
	// and unrelated to the id and its key, so it logs no one in. Empty
	// unless the store implements [DeviceStore].
	Handle string
	// Version identifies the stored state for a compare-and-swap store
	// (see [CASStore]). Only the store gives it meaning.
	Version int64

	// tree, when not nil, holds the values instead of Values, which is
	// then nil: the memory store's records, which the middleware reads
	// through value and numValues (see record_values.go). A record with a
	// tree never leaves the package: the Store methods flatten it.
	tree *pmap.Map[json.RawMessage]
	// sizes is what Apply learnt of the values when it made the record,
	// so that the next change is measured by what it changes instead of
	// by the whole session. Values is never changed once a record is made
	// (stores share records between requests); sizes holds only while
	// the values are still the ones it was computed for.
	sizes valueSizes
}

// CookiePersistence is what kind of cookie a session gets, chosen for
// one session by [Session.Remember] and [Session.ForgetOnClose].
type CookiePersistence uint8

const (
	// CookieDefault: as [CookieOptions.MaxAge] says.
	CookieDefault CookiePersistence = iota
	// CookiePersistent: a cookie with a Max-Age, which lasts as long as
	// the session may (Session.Remember).
	CookiePersistent
	// CookieBrowserSession: a cookie with no Max-Age, gone when the
	// browser closes (Session.ForgetOnClose).
	CookieBrowserSession
)

// Lifetime is a session's own idle timeout, absolute deadline and kind of
// cookie, as a [Change] sets them.
type Lifetime struct {
	// IdleTimeout becomes Record.IdleTimeout (0: the Options').
	IdleTimeout time.Duration
	// Deadline becomes Record.Deadline: the session's absolute end.
	Deadline time.Time
	// Persist becomes Record.Persist.
	Persist CookiePersistence
}

// setIn gives rec this lifetime.
func (l *Lifetime) setIn(rec *Record) {
	rec.IdleTimeout, rec.Deadline, rec.Persist = l.IdleTimeout, l.Deadline, l.Persist
}

// Change is one request's changes to a session, which [Store.Update]
// applies to the freshest stored record in one step. The steps apply in
// this order: Clear, Values, Add, Owner, Label, Lifetime, Expires.
type Change struct {
	// Clear drops every stored value first.
	Clear bool
	// Values maps a key to its new value as JSON, or to nil (or JSON null)
	// to delete it.
	Values map[string]json.RawMessage
	// Add adds to integer values: a missing value counts as 0; a stored
	// value that is not an integer fails the change with ErrNotInteger,
	// and so does a sum outside the int64 range.
	Add map[string]int64
	// Owner, when not nil, becomes the record's owner.
	Owner *string
	// Label, when not nil, becomes the record's label.
	Label *string
	// Lifetime, when not nil, sets the record's IdleTimeout, Deadline and
	// Persist. A store that cannot keep them refuses it with an error
	// wrapping errors.ErrUnsupported.
	Lifetime *Lifetime
	// Expires, when not zero, becomes the record's expiry.
	Expires time.Time
	// MaxSize, when positive, is the largest the values may be once
	// encoded as one JSON object, in bytes; a change over it fails with
	// ErrTooLarge.
	MaxSize int
	// Base, when not nil, is the record as the caller last read it. A
	// store may use it to skip reading the record again when it can check
	// in the same step that nothing changed since (a compare-and-swap on
	// Version); it must never apply the change to Base otherwise.
	Base *Record
}

// Clone returns a copy of c that shares nothing c can change: its maps and
// the values its pointers point to are copied (Base, a stored record, is
// never changed and is shared).
func (c *Change) Clone() *Change {
	d := *c
	d.Values = maps.Clone(c.Values)
	d.Add = maps.Clone(c.Add)
	if c.Owner != nil {
		o := *c.Owner
		d.Owner = &o
	}
	if c.Label != nil {
		l := *c.Label
		d.Label = &l
	}
	if c.Lifetime != nil {
		l := *c.Lifetime
		d.Lifetime = &l
	}
	return &d
}

// addInt returns the JSON of raw's integer plus d.
func addInt(raw json.RawMessage, d int64) (json.RawMessage, error) {
	var n int64
	if !isNull(raw) {
		var ok bool
		if n, ok = decodeInt(raw); !ok {
			return nil, fmt.Errorf("%w: stored value %.40s", ErrNotInteger, raw)
		}
	}
	if (d > 0 && n > math.MaxInt64-d) || (d < 0 && n < math.MinInt64-d) {
		return nil, fmt.Errorf("%w: %d + %d overflows int64", ErrNotInteger, n, d)
	}
	return strconv.AppendInt(nil, n+d, 10), nil
}

// CASStore is what [UpdateCAS] needs of a backend that has only a read and a
// put-if-version.
type CASStore interface {
	Load(ctx context.Context, key string) (*Record, error)
	// Save replaces the record stored under key with rec, provided the
	// stored record still has version rec.Version, gives it a new version
	// and sets rec.Version to it. It returns an error wrapping ErrConflict
	// when the stored version differs and one wrapping ErrNotFound when
	// there is no live record under key: Save never creates a record.
	Save(ctx context.Context, key string, rec *Record) error
	Delete(ctx context.Context, key string) error
}

// maxCASTries bounds UpdateCAS's compare-and-swap loop.
const maxCASTries = 64

// UpdateCAS implements [Store.Update] for a store that has only a read and a
// put-if-version: it loads the record, applies ch and saves it if nobody
// saved in between, else loads again, with a growing random wait between
// tries. Concurrent changes of different keys are all kept, as the contract
// asks, but many writers of one session retry: a store that can apply a
// change in one atomic step should do that instead.
//
// A change that leaves no values is saved empty and then deleted; a
// concurrent Update that lands in between is deleted with it.
func UpdateCAS(ctx context.Context, s CASStore, key string, ch *Change) (*Record, error) {
	for try := 1; ; try++ {
		rec, err := s.Load(ctx, key)
		if err != nil {
			return nil, err
		}
		next, err := ch.Apply(rec)
		if err != nil {
			return nil, err
		}
		err = s.Save(ctx, key, next)
		switch {
		case err == nil:
			if len(next.Values) == 0 {
				if err := s.Delete(ctx, key); err != nil {
					return nil, err
				}
			}
			return next, nil
		case !errors.Is(err, ErrConflict) || try >= maxCASTries:
			return nil, err
		}
		if err := casBackoff(ctx, try); err != nil {
			return nil, err
		}
	}
}

// casBackoff waits a random time that grows with the number of failed
// tries, so that writers who keep colliding spread out.
func casBackoff(ctx context.Context, try int) error {
	limit := min(time.Duration(1)<<min(try, 20)*100*time.Microsecond, 20*time.Millisecond)
	t := time.NewTimer(rand.N(limit) + 1)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Errors shared by every store. Stores wrap them with %w so that callers can
// test them with errors.Is.
var (
	// ErrNotFound: no live record under the key.
	ErrNotFound = errors.New("session: not found")
	// ErrExists: Create found a live record under the key.
	ErrExists = errors.New("session: key already exists")
	// ErrConflict: a CASStore's Save found another version than the one
	// loaded.
	ErrConflict = errors.New("session: concurrent update")
	// ErrLockTimeout: the session lock was not acquired in time.
	ErrLockTimeout = errors.New("session: lock wait timed out")
	// ErrLockLost: a session lock was lost while held (its connection
	// died), so the holder's changes were not saved.
	ErrLockLost = errors.New("session: lock lost while held")
	// ErrNotInteger: [Session.Add] or [Change.Add] found a value that is
	// not an integer, or the sum left the int64 range.
	ErrNotInteger = errors.New("session: value is not an integer")
	// ErrCorrupt: a record exists but cannot be decoded (say, a row edited
	// by hand). Load returns it wrapped; the middleware logs it and starts
	// a fresh session instead of failing every request of that visitor.
	ErrCorrupt = errors.New("session: stored record is corrupt")
)

// ErrFull is returned by a store that refuses a new session because it holds
// as many as it was configured to; existing sessions keep working.
var ErrFull = errors.New("session: store is full")
