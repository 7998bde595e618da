package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures the middleware. The zero value is a safe, working
// configuration: an in-memory store, the cookie SESSION_ID with secure
// attributes, a 24-hour idle timeout and a 7-day absolute lifetime.
type Options struct {
	// Store keeps the sessions. Nil means a new [MemoryStore], which
	// [Manager.Close] closes.
	Store Store
	// CookieName is the name of the id cookie. Default "SESSION_ID". A
	// `__Host-` or `__Secure-` name is checked against Cookie when the
	// middleware is built.
	CookieName string
	// Cookie sets the cookie's attributes; see [CookieOptions].
	Cookie CookieOptions
	// IdleTimeout ends a session that saw no request for this long. The
	// expiry is refreshed at most once per tenth of it, so an active
	// session costs a store write only now and then. Default 24 hours.
	IdleTimeout time.Duration
	// Lifetime ends a session this long after it was created, however
	// active it is. Default 7 days.
	Lifetime time.Duration
	// MaxRememberLifetime caps the idle timeout and the lifetime that
	// [Session.Remember] may give one session ("remember me"). Default 30
	// days, or Lifetime if that is longer; New refuses one shorter than
	// Lifetime. Lowering it shortens the sessions already remembered too.
	MaxRememberLifetime time.Duration
	// Lock serializes the requests of one session, across every server
	// that shares the store, so that read-modify-write handlers are exact.
	// The store must implement [Locker]. [Manager.Locked] does the same
	// for chosen routes only.
	Lock bool
	// LockTimeout bounds the whole wait for a session's lock, the wait for
	// a pool connection included; a request that waits longer is answered
	// through ErrorHandler with an error wrapping ErrLockTimeout (503 by
	// default). Default 10 seconds.
	LockTimeout time.Duration
	// StoreTimeout bounds each call to the store (a load, an update, a
	// delete), so a hung database cannot hold a request for ever. The
	// in-memory store never waits and gets no deadline. Default 5 seconds.
	StoreTimeout time.Duration
	// CommitTimeout bounds the saving of a request's changes. The commit
	// runs detached from the request's cancellation: a client that hangs
	// up does not cancel a change or a logout its handler made, which is
	// saved, or reported to ErrorHandler, within this time. Default 10
	// seconds.
	CommitTimeout time.Duration
	// SigningKeys, when set, sign the id in the cookie with HMAC-SHA256: a
	// forged or random id is refused in constant time before any store
	// call. The first signing key signs and every one verifies, so they
	// rotate by putting a new one first. Each must be at least 32 bytes.
	SigningKeys [][]byte
	// Header lets API clients that keep no cookies carry the session id
	// in this request header: "Authorization" (as "Bearer <token>") or a
	// name of your own such as "Session-Token" (the bare token). A request
	// that has the header is served from it alone, with the cookie's
	// checks and signing, and never gets a cookie: a new id (a new
	// session, Regenerate) comes back in the same response header, in the
	// same form, and an empty token ("" or "Bearer") says the session
	// ended: a client sends back whatever value it was last given. To
	// start a session it sends that empty token. A request without the
	// header uses the cookie. Default "": the id travels only in the
	// cookie. The README says what this changes for CSRF.
	Header string
	// MaxSize caps the encoded size of one session's values in bytes; a
	// commit over it fails with an error wrapping ErrTooLarge. Default
	// 128 KiB.
	MaxSize int
	// ErrorHandler answers a request whose session could not be loaded or
	// saved. The default logs the error and answers 500 (503 for
	// ErrLockTimeout and ErrFull). The client's cookie is never touched on
	// an error, so the session is intact once the store is back. For an
	// error wrapping ErrResponseStarted the response is already on its
	// way, and the handler can only record the failure.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives errors and notable events. Ids never appear in it,
	// only a short hash. Default slog.Default().
	Logger *slog.Logger
	// Events, when set, are hooks for metrics and tracing: sessions
	// created, regenerated, destroyed, expired and revoked, lock waits and
	// store calls. They never see an id. Default none, at no cost.
	Events *Events
}

// Errors reported by the middleware.
var (
	// ErrTooLarge: the session's encoded values exceed Options.MaxSize.
	ErrTooLarge = errors.New("session: session too large")
	// ErrResponseStarted: the session changed after the response's first
	// byte in a way that needed a new cookie, which can no longer be set.
	ErrResponseStarted = errors.New("session: changed after the response started")
	// ErrInvalidOptions: New was given options it cannot honour.
	ErrInvalidOptions = errors.New("session: invalid options")
	// ErrInvalidValue: Set was given a value that cannot be stored.
	ErrInvalidValue = errors.New("session: value cannot be stored")
	// ErrSessionClosed: the session was changed after the request's last
	// commit (from a goroutine that outlived the handler, or after an
	// http.TimeoutHandler gave up on it), after a commit failed and the
	// ErrorHandler's response replaced the handler's, or after its
	// [Session.Commit], when nothing can save it.
	ErrSessionClosed = errors.New("session: changed after the request ended")
)

const (
	defaultIdleTimeout = 24 * time.Hour
	defaultLifetime    = 7 * 24 * time.Hour
	defaultMaxRemember = 30 * 24 * time.Hour
	defaultLockTimeout = 10 * time.Second
	defaultMaxSize     = 128 << 10
	defaultStoreWait   = 5 * time.Second
	defaultCommitWait  = 10 * time.Second
)

// Manager is the middleware built from Options. Build one with [New] when
// the program needs [Manager.Close], [Manager.Locked] or [Manager.Revoke];
// [Middleware] is the short form.
type Manager struct {
	store    Store
	ownStore *MemoryStore
	locker   Locker
	owners   OwnerStore
	ids      ids
	cookie   CookieOptions
	idle     time.Duration
	lifetime time.Duration
	// header is Options.Header, canonical; "" when ids travel only in
	// the cookie. bearer: it is Authorization, with the Bearer scheme.
	header   string
	bearer   bool
	lock     bool
	lockWait time.Duration
	// valueMaps and addMaps keep the maps of applied changes for reuse,
	// when pooled: the store is the memory store, the one store that gives
	// them back.
	pooled    bool
	valueMaps mapPool[json.RawMessage]
	addMaps   mapPool[int64]
	// storeWait bounds each store call; 0 for a store that never waits.
	storeWait  time.Duration
	commitWait time.Duration
	maxSize    int
	onError    func(http.ResponseWriter, *http.Request, error)
	log        *slog.Logger
	now        func() time.Time // time.Now; tests set a clock of their own
	ev         Events           // Options.Events, copied; zero: no hooks

	// maxRemember caps what Remember may choose (MaxRememberLifetime).
	maxRemember time.Duration
	// devices is the store as a DeviceStore, or nil: new records get a
	// handle only when it is set.
	devices DeviceStore

	rejected atomic.Int64 // cookies refused before the store
	unknown  atomic.Int64 // well-formed ids the store did not know
}

// Stats counts the ids the middleware refused since the Manager was built:
// a rising count is a client (or an attacker) sending ids this server did
// not issue, or that ended.
type Stats struct {
	// RejectedIDs counts session cookies refused without a store call:
	// malformed, oversized, duplicated, or with a signature that does not
	// verify.
	RejectedIDs int64
	// UnknownIDs counts well-formed ids that named no live session: ended,
	// expired or made up. Each started a fresh session.
	UnknownIDs int64
}

// Stats returns the counts of refused ids, for metrics and alerts.
func (m *Manager) Stats() Stats {
	return Stats{RejectedIDs: m.rejected.Load(), UnknownIDs: m.unknown.Load()}
}

// New checks opts and builds a Manager. Every error wraps ErrInvalidOptions
// and says which setting is wrong.
func New(opts Options) (*Manager, error) {
	m := &Manager{
		store:      opts.Store,
		cookie:     opts.Cookie,
		idle:       orDefault(opts.IdleTimeout, defaultIdleTimeout),
		lifetime:   orDefault(opts.Lifetime, defaultLifetime),
		lock:       opts.Lock,
		lockWait:   orDefault(opts.LockTimeout, defaultLockTimeout),
		storeWait:  orDefault(opts.StoreTimeout, defaultStoreWait),
		commitWait: orDefault(opts.CommitTimeout, defaultCommitWait),
		maxSize:    orDefault(opts.MaxSize, defaultMaxSize),
		onError:    opts.ErrorHandler,
		log:        opts.Logger,
		now:        time.Now,
	}
	if opts.Events != nil {
		m.ev = *opts.Events
	}
	name := opts.CookieName
	if name == "" {
		name = defaultCookieName
	}
	if err := m.check(opts, name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	m.maxRemember = max(defaultMaxRemember, m.lifetime)
	if opts.MaxRememberLifetime > 0 {
		m.maxRemember = opts.MaxRememberLifetime
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.onError == nil {
		m.onError = m.defaultError
	}
	if m.store == nil {
		m.ownStore = NewMemoryStore(MemoryOptions{})
		m.store = m.ownStore
	}
	if _, ok := m.store.(*MemoryStore); ok {
		m.pooled = true
		m.storeWait = 0 // it never waits: no timer on the hot path
	}
	m.header = http.CanonicalHeaderKey(opts.Header)
	m.bearer = m.header == "Authorization"
	m.locker, _ = m.store.(Locker)
	m.owners, _ = m.store.(OwnerStore)
	m.devices, _ = m.store.(DeviceStore)
	if m.lock && m.locker == nil {
		m.Close()
		return nil, fmt.Errorf("%w: Lock is set but the store (%T) does not implement session.Locker", ErrInvalidOptions, m.store)
	}
	m.ids = ids{name: name, bytes: 32, storeKey: hashKey}
	if ks, ok := m.store.(KeyScheme); ok {
		m.ids.bytes, m.ids.storeKey = ks.IDBytes(), ks.Key
		if m.ids.bytes < 16 {
			m.Close()
			return nil, fmt.Errorf("%w: the store's KeyScheme asks for %d-byte ids; at least 16 are needed", ErrInvalidOptions, m.ids.bytes)
		}
	}
	m.ids.chars = (m.ids.bytes*8 + 5) / 6
	for _, k := range opts.SigningKeys {
		m.ids.signingKeys = append(m.ids.signingKeys, slices.Clone(k))
	}
	return m, nil
}

func (m *Manager) check(opts Options, name string) error {
	switch {
	case !validCookieName(name):
		return fmt.Errorf("option CookieName %q is not a valid cookie name", name)
	case opts.IdleTimeout < 0, opts.Lifetime < 0, opts.LockTimeout < 0, opts.StoreTimeout < 0, opts.CommitTimeout < 0:
		return fmt.Errorf("option IdleTimeout, Lifetime, LockTimeout, StoreTimeout and CommitTimeout must not be negative")
	case opts.MaxSize < 0:
		return fmt.Errorf("option MaxSize must not be negative")
	case opts.MaxRememberLifetime < 0:
		return fmt.Errorf("option MaxRememberLifetime must not be negative")
	case opts.MaxRememberLifetime > 0 && opts.MaxRememberLifetime < orDefault(opts.Lifetime, defaultLifetime):
		return fmt.Errorf("option MaxRememberLifetime (%v) is shorter than Lifetime (%v): Remember would shorten a session; lengthen MaxRememberLifetime or leave it 0",
			opts.MaxRememberLifetime, orDefault(opts.Lifetime, defaultLifetime))
	case orDefault(opts.IdleTimeout, defaultIdleTimeout) > orDefault(opts.Lifetime, defaultLifetime):
		return fmt.Errorf("option IdleTimeout (%v) is longer than Lifetime (%v): no session could stay idle that long; shorten IdleTimeout or lengthen Lifetime",
			orDefault(opts.IdleTimeout, defaultIdleTimeout), orDefault(opts.Lifetime, defaultLifetime))
	}
	if err := checkHeader(opts.Header); err != nil {
		return err
	}
	for i, k := range opts.SigningKeys {
		if len(k) < minKeyBytes {
			return fmt.Errorf("option SigningKeys[%d] has %d bytes; signing keys need at least %d random bytes", i, len(k), minKeyBytes)
		}
	}
	return opts.Cookie.check(name)
}

func orDefault[T time.Duration | int](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Middleware returns the session middleware for opts. Options that New
// would refuse are logged once and every request is answered 500 through
// the ErrorHandler: a misconfigured server fails closed, visibly.
func Middleware(opts Options) func(http.Handler) http.Handler {
	m, err := New(opts)
	if err != nil {
		logger := opts.Logger
		if logger == nil {
			logger = slog.Default()
		}
		logger.Error("session middleware disabled", "err", err)
		onError := opts.ErrorHandler
		if onError == nil {
			onError = func(w http.ResponseWriter, _ *http.Request, _ error) {
				http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
			}
		}
		return func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { onError(w, r, err) })
		}
	}
	return m.Handler
}

// Close stops the background work of the store the Manager created itself
// (when Options.Store was nil). A store passed in is the caller's to close.
func (m *Manager) Close() error {
	if m.ownStore != nil {
		return m.ownStore.Close()
	}
	return nil
}

// Handler wraps next so that it finds the request's session with
// [FromContext].
func (m *Manager) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(w, r, next, m.lock)
	})
}

// Locked wraps next so that requests of one session run it one at a time,
// across every server that shares the store: the route's read-modify-write
// is exact. On its own it is the whole middleware for next, with the lock
// taken before the session is loaded (one load, on the lock's
// connection). Inside the same Manager's Handler it takes the lock and
// loads the session again, so the handler sees the state left by the
// previous holder (a request whose cookie named no live session starts a
// new one there, as anywhere, and has no lock to take). Inside another Manager's Handler, or with a store that
// does not implement [Locker], it answers every request through the
// ErrorHandler (500), so the mistake shows at once instead of a route
// that looks locked and is not.
func (m *Manager) Locked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := FromContext(r.Context()); s != nil && s.m != m {
			m.onError(w, r, errLockedOutside)
			return
		}
		m.serve(w, r, next, true)
	})
}

// errLockedOutside explains a Locked route inside another Manager's
// Handler, whose session it would neither lock nor see.
var errLockedOutside = errors.New("session: Manager.Locked is used inside the Handler of another Manager: its lock would not cover the session the handler sees; use the Locked of the Manager whose Handler is around it")

// Revoke ends every session tied to owner with [Session.SetOwner], on every
// server that shares the store: what a password change or "log out
// everywhere" calls. It reports how many sessions it ended.
func (m *Manager) Revoke(ctx context.Context, owner string) (int, error) {
	if owner == "" {
		return 0, nil
	}
	if m.owners == nil {
		return 0, fmt.Errorf("session: revoke: the store (%T) does not implement session.OwnerStore: %w", m.store, errors.ErrUnsupported)
	}
	n, err := m.deleteOwner(ctx, m.owners, owner, "")
	if err != nil {
		return n, fmt.Errorf("session: revoke: %w", err)
	}
	return n, nil
}

type ctxKey struct{}

// FromContext returns the request's session, or nil when ctx did not come
// through the middleware. When several Managers' middleware wrap one
// another (an admin area with its own cookie inside the app), it is the
// session of the innermost; [Manager.FromContext] finds any of them.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

// FromContext returns the request's session of m: the one m's Handler or
// Locked loaded, even when other Managers' middleware ran inside it. It
// returns nil when the request did not come through m.
func (m *Manager) FromContext(ctx context.Context) *Session {
	// Each session's ctx is the request's context as its middleware
	// received it, so the sessions of nested middleware form a chain.
	for s := FromContext(ctx); s != nil; s = FromContext(s.ctx) {
		if s.m == m {
			return s
		}
	}
	return nil
}

// exchange is what one request allocates: its session, the writer that
// commits it before the first byte, and the context that carries the
// session to the handler (one allocation instead of three).
type exchange struct {
	context.Context // the request's own
	s               Session
	w               responseWriter
}

// Value makes the exchange the handler's context: it answers for the
// session and passes every other key to the request's context.
func (x *exchange) Value(key any) any {
	if key == (ctxKey{}) {
		return &x.s
	}
	return x.Context.Value(key)
}

func (m *Manager) serve(w http.ResponseWriter, r *http.Request, next http.Handler, lock bool) {
	if lock && m.locker == nil {
		m.onError(w, r, fmt.Errorf("session: Locked needs a store that implements session.Locker (%T does not)", m.store))
		return
	}
	if s := m.FromContext(r.Context()); s != nil {
		// Inside Handler, the session is loaded already: a Locked route
		// takes the lock and loads it again.
		if !lock || s.cookieID == "" || !s.needsLock() {
			next.ServeHTTP(w, r)
			return
		}
		if !m.lockSession(w, r, s) {
			return
		}
		defer s.release()
		rw := &responseWriter{ResponseWriter: w, s: s, nested: true}
		next.ServeHTTP(rw, r)
		rw.finish() // before the lock goes; the outer middleware's finish closes the session
		return
	}
	x := &exchange{Context: r.Context()}
	s := &x.s
	s.m, s.ctx, s.r, s.store = m, r.Context(), r, m.store
	s.cookieID, s.via = m.carried(r)
	if s.via != carrierNone {
		w.Header().Add("Vary", m.varyField(s.via))
	}
	if s.cookieID != "" {
		if lock {
			if !m.lockSession(w, r, s) {
				return
			}
			defer s.release()
		} else if err := s.load(); err != nil {
			m.onError(w, r, err)
			return
		}
	}
	// Once the handler is done, whichever way (a panic included), nothing
	// will save a change: later ones are reported, not silently dropped.
	defer s.close()
	x.w = responseWriter{ResponseWriter: w, s: s}
	next.ServeHTTP(&x.w, r.WithContext(x))
	x.w.finish()
}

// close marks the session as past its last commit.
func (s *Session) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// lock locks s.mu, or explains the nil session that FromContext returns
// outside the middleware.
func (s *Session) lock() {
	if s == nil {
		panic("session: no session in this request's context: wrap the handler with session.Middleware or Manager.Handler (FromContext returned nil)")
	}
	s.mu.Lock()
}

// lockSession takes the lock of the session the request's cookie names and
// loads the session through the lease's store: the state the previous
// holder left. It reports failure through the ErrorHandler.
func (m *Manager) lockSession(w http.ResponseWriter, r *http.Request, s *Session) bool {
	lease, err := m.acquire(s.ctx, m.ids.storeKey(s.cookieID))
	if err == nil {
		s.mu.Lock()
		s.lease, s.store = lease, lease.Store()
		err = s.load()
		s.mu.Unlock()
		if err != nil {
			s.release()
		}
	}
	if err != nil {
		m.onError(w, r, err)
		return false
	}
	return true
}

// needsLock reports whether a Locked route inside Handler takes the
// session's lock: not when the request holds it already, nor when the
// cookie named no live record (the outer load found it unknown or
// expired, and said so with the Expired event): nothing is stored there
// to guard, and a second load would only report it again.
func (s *Session) needsLock() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease == nil && s.key != ""
}

// acquire takes key's lock within LockTimeout, the wait for whatever the
// lock needs (a pool connection) included.
// serve has checked that the store is a Locker.
func (m *Manager) acquire(parent context.Context, key string) (Lease, error) {
	ctx, cancel := context.WithTimeout(parent, m.lockWait)
	defer cancel()
	t := start(m.ev.LockWait != nil)
	lease, err := m.locker.Lock(ctx, key)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrLockTimeout) {
			err = fmt.Errorf("%w: %w", ErrLockTimeout, err)
		}
		err = fmt.Errorf("session: lock %s: %w", logID(key), err)
	}
	m.ev.lockWaited(parent, t, err)
	if err != nil {
		return nil, err
	}
	return lease, nil
}

// release gives the lock back once the request is done with it. A lock lost
// after the commit succeeded costs nothing but this log line: a commit
// after the loss fails on its own, through the ErrorHandler.
func (s *Session) release() {
	s.mu.Lock()
	lease := s.lease
	s.lease, s.store = nil, s.m.store
	s.mu.Unlock()
	if err := lease.Unlock(); err != nil {
		s.m.log.WarnContext(s.ctx, "session lock: release failed", "err", err)
	}
}

// bound gives ctx the store-call deadline, unless the store never waits.
func (m *Manager) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if m.storeWait <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, m.storeWait)
}

func (m *Manager) defaultError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrResponseStarted) {
		m.log.ErrorContext(r.Context(), "session not saved", "err", err, "method", r.Method, "path", r.URL.Path)
		return
	}
	code := http.StatusInternalServerError
	if errors.Is(err, ErrLockTimeout) || errors.Is(err, ErrFull) {
		code = http.StatusServiceUnavailable
	}
	m.log.ErrorContext(r.Context(), "session error", "err", err, "method", r.Method, "path", r.URL.Path, "status", code)
	http.Error(w, http.StatusText(code), code)
}

// Session is one visitor's session during one request. Its methods are safe
// for concurrent use by the goroutines of that request. Changes are saved
// when the response starts (before the first byte reaches the client) and
// again when the handler returns, if it changed anything after that.
type Session struct {
	m        *Manager
	ctx      context.Context
	r        *http.Request
	cookieID string  // the well-formed id the request carried
	via      carrier // what carried it: responses vary by it, a new id goes back in it
	detached bool    // from Manager.Load or LoadID: saved by Commit, not by the middleware

	mu    sync.Mutex
	store Store   // m.store, or the lease's store while locked
	lease Lease   // the held session lock, if any
	id    string  // the session's id; "" until one is needed
	key   string  // store key of the loaded record
	base  *Record // the record as loaded or last saved; read-only
	// ch holds this request's changes since the last commit; MaxSize and
	// Expires are set when they go to the store.
	ch Change
	// entries counts the keys put in ch's maps since the last commit (a
	// key put twice counts twice): maps never given more than
	// recycledMapLen are small enough to reuse.
	entries int
	regen   bool   // Regenerate was called
	ended   string // store key of a session destroyed in this request
	// unsent is the cookie a Locked route's commit inside Handler called
	// for, which the outer writer's commit sends as the response starts.
	unsent  cookieEffect
	started bool // the response's headers are out
	closed  bool // the request's last commit is done: changes would be lost
	gone    bool // a commit found the session ended elsewhere: Commit reports it
	// life is what Remember or ForgetOnClose chose, made a
	// Change.Lifetime at commit.
	life *lifeChoice
}

// load reads the session the request names, replacing the loaded state
// with the store's current one and keeping this request's pending changes:
// the session's own id once it has a record, else the cookie's. A missing,
// expired or corrupt record leaves the session new: it is never an error.
// The caller holds s.mu, or is the only goroutine that can see s.
func (s *Session) load() error {
	id := s.cookieID
	if s.key != "" {
		id = s.id
	}
	s.id, s.key, s.base = "", "", nil
	if id == "" {
		return nil
	}
	key := s.m.ids.storeKey(id)
	var rec *Record
	err := s.m.call(s.ctx, "Load", func(ctx context.Context) (err error) {
		rec, err = loadRecord(ctx, s.store, key)
		return err
	})
	switch {
	case err == nil:
		now := s.m.now()
		if rec == nil || !s.m.live(rec, now) {
			s.m.unknown.Add(1)
			s.m.ev.expired(s.ctx, key)
			return nil // the store kept it past its time: never serve it
		}
		s.id, s.key, s.base = id, key, rec
		return nil
	case errors.Is(err, ErrNotFound):
		s.m.unknown.Add(1)
		s.m.ev.expired(s.ctx, key)
		return nil // strict mode: an unknown id is never adopted
	case errors.Is(err, ErrCorrupt):
		// Failing would answer 500 to this visitor until the record
		// expires; a fresh session under a new id loses only what was
		// already unreadable.
		s.m.log.ErrorContext(s.ctx, "corrupt session record; starting a fresh session", "session", logID(key), "err", err)
		return nil
	default:
		return fmt.Errorf("session: load %s: %w", logID(key), err)
	}
}

// ID returns the session's id, choosing one for a new session. It is the
// secret the cookie carries: never log it or put it in a URL.
func (s *Session) ID() string {
	s.lock()
	defer s.mu.Unlock()
	if s.id == "" {
		s.id = s.m.ids.newID()
	}
	return s.id
}

// IsNew reports whether the session was not found in the store at the start
// of the request (or was destroyed during it).
func (s *Session) IsNew() bool {
	s.lock()
	defer s.mu.Unlock()
	return s.base == nil
}

// SetOwner ties the session to owner (a user id), so that
// [Manager.Revoke] or [Session.RevokeOwner] can end all of that owner's
// sessions. Call it at login, together with Regenerate.
func (s *Session) SetOwner(owner string) {
	s.lock()
	defer s.mu.Unlock()
	if s.closedLocked("SetOwner") != nil {
		return
	}
	s.ch.Owner = &owner
}

// Owner returns the session's owner, or "".
func (s *Session) Owner() string {
	s.lock()
	defer s.mu.Unlock()
	if s.ch.Owner != nil {
		return *s.ch.Owner
	}
	if s.base != nil {
		return s.base.Owner
	}
	return ""
}

// RevokeOwner ends every session of this session's owner, on every server
// that shares the store; with keepCurrent the session of this request
// survives ("log out my other devices"), without it this one ends too. It
// reports how many other sessions it ended.
func (s *Session) RevokeOwner(keepCurrent bool) (int, error) {
	owner := s.Owner() // panics with a clear message outside the middleware
	if owner == "" {
		return 0, nil
	}
	m := s.m
	if m.owners == nil {
		return 0, fmt.Errorf("session: revoke: the store (%T) does not implement session.OwnerStore: %w", m.store, errors.ErrUnsupported)
	}
	s.mu.Lock()
	except := s.key
	// A locked request keeps to the lease's store: one connection.
	owners, ok := s.store.(OwnerStore)
	s.mu.Unlock()
	if !ok {
		owners = m.owners
	}
	if !keepCurrent {
		s.Destroy()
	}
	n, err := m.deleteOwner(s.ctx, owners, owner, except)
	if err != nil {
		return n, fmt.Errorf("session: revoke: %w", err)
	}
	return n, nil
}

// Regenerate gives the session a new id and keeps its values; the old id is
// deleted from the store when the request commits. Call it whenever the
// privilege level changes, at least at login, so that an id planted before
// login (session fixation) is worth nothing after it.
func (s *Session) Regenerate() {
	s.lock()
	defer s.mu.Unlock()
	if s.closedLocked("Regenerate") != nil {
		return
	}
	s.regen = true
}

// Destroy ends the session: its record is deleted and its cookie expired
// when the request commits. Values set after Destroy start a new session
// with a new id.
func (s *Session) Destroy() {
	s.lock()
	defer s.mu.Unlock()
	if s.closedLocked("Destroy") != nil {
		return
	}
	if s.key != "" {
		s.ended = s.key
	}
	s.forget()
}
