package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The commit: how a request's changes reach the store and the cookie.
//
// It runs when the response starts (first WriteHeader, Write, Flush,
// ReadFrom or Hijack), before any byte can reach the client, so a redirect
// after login finds the user logged in; and again when the handler returns,
// if the session changed after that.

// dirty reports whether the request changed the session's data. The caller
// holds s.mu.
func (s *Session) dirty() bool {
	return len(s.changes) > 0 || len(s.adds) > 0 || s.cleared || s.owner != nil
}

// clean forgets the pending changes once they are saved. The caller holds
// s.mu.
func (s *Session) clean() {
	s.changes, s.adds, s.cleared, s.owner, s.regen = nil, nil, false, nil, false
}

// pending returns this request's changes as a Change for the store. It
// shares the session's maps: the caller holds s.mu until the store is done
// with it.
func (s *Session) pending() *Change {
	return &Change{Clear: s.cleared, Values: s.changes, Add: s.adds, Owner: s.owner, MaxSize: s.m.maxSize}
}

// expiry returns the idle expiry a record should get now, and whether it
// moved far enough past the stored one to be worth a write: at most one
// refresh per tenth of the idle timeout.
func (m *Manager) expiry(rec *Record, now time.Time) (time.Time, bool) {
	exp := now.Add(m.idle)
	if !rec.Deadline.IsZero() && exp.After(rec.Deadline) {
		exp = rec.Deadline
	}
	return exp, exp.Sub(rec.Expires) >= m.idle/10
}

// commit saves the request's changes: the first call as the response
// starts, later ones once it has (late: no cookie can be set any more, and
// a call with nothing changed since costs nothing). The caller does not
// hold s.mu.
func (s *Session) commit(h http.Header) (late bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	late, s.started = s.started, true
	if late && !s.dirty() && s.ended == "" && s.setErr == nil {
		return true, nil
	}
	if !late && s.sawCookie {
		// The handler may have replaced the Vary set before it ran.
		varyCookie(h)
	}
	if s.setErr != nil {
		err, s.setErr = s.setErr, nil
		return late, err
	}
	return late, s.commitLocked(h, late)
}

// commitLocked does commit's work. The caller holds s.mu.
//
// The commit runs detached from the request's cancellation, within
// CommitTimeout: a client that hangs up must not cancel a logout or a
// change its handler already made.
func (s *Session) commitLocked(h http.Header, late bool) error {
	if s.ended == "" && s.base == nil && !s.dirty() {
		return nil // nothing stored, nothing to store: no clock, no store
	}
	m := s.m
	if s.ended == "" && !s.regen && !s.dirty() {
		// A read-only request refreshes the expiry at most once per tenth
		// of IdleTimeout: most have nothing to commit, and must not pay
		// for a detached context they would not use.
		if _, refresh := m.expiry(s.base, time.Now()); !refresh {
			return nil
		}
	}
	ctx := context.WithoutCancel(s.ctx)
	if m.storeWait > 0 { // a store that never waits needs no timer
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.commitWait)
		defer cancel()
	}
	expireCookie := false
	if s.ended != "" {
		if err := s.call(ctx, func(ctx context.Context) error { return s.store.Delete(ctx, s.ended) }); err != nil {
			return fmt.Errorf("session: destroy %s: %w", logID(s.ended), err)
		}
		s.ended = ""
		expireCookie = s.cookieID != ""
	}
	if s.base == nil && !s.dirty() {
		if expireCookie {
			s.setCookie(h, "", -1)
		}
		return nil
	}
	now := time.Now()
	var err error
	var cookieAge time.Duration // > 0: set the cookie for the current id
	switch {
	case s.base == nil:
		cookieAge, _, err = s.create(ctx, now, nil, late)
	case s.regen:
		var emptied bool
		cookieAge, emptied, err = s.create(ctx, now, s.base, late)
		expireCookie = expireCookie || emptied
	case s.dirty():
		cookieAge, expireCookie, err = s.update(ctx, now)
	default:
		cookieAge, err = s.touch(ctx, now)
	}
	if err != nil {
		return err
	}
	switch {
	case late:
	case cookieAge > 0:
		if m.cookie.MaxAge == 0 {
			cookieAge = 0
		} else {
			cookieAge = min(cookieAge, m.cookie.MaxAge)
		}
		s.setCookie(h, m.ids.sign(s.id), cookieAge)
	case expireCookie:
		s.setCookie(h, "", -1)
	}
	return nil
}

// call runs one store call within StoreTimeout.
func (s *Session) call(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := s.m.bound(ctx)
	defer cancel()
	return f(ctx)
}

func (s *Session) setCookie(h http.Header, value string, maxAge time.Duration) {
	h.Add("Set-Cookie", s.m.cookie.cookie(s.r, s.m.ids.name, value, maxAge).String())
	h.Set("Cache-Control", "no-store")
}

// create stores the session under a new id: a brand-new session, or a
// regenerated one (from is the record it replaces). It returns how long the
// cookie may live, and whether the session was deleted instead because it
// has no values left. The caller holds s.mu.
func (s *Session) create(ctx context.Context, now time.Time, from *Record, late bool) (time.Duration, bool, error) {
	m := s.m
	base := from
	if base == nil {
		base = &Record{Created: now}
		if m.lifetime > 0 {
			base.Deadline = now.Add(m.lifetime)
		}
	}
	rec, err := s.pending().Apply(base)
	if err != nil {
		return 0, false, err
	}
	if len(rec.Values) == 0 {
		if from != nil {
			return 0, s.cookieID != "", s.remove(ctx)
		}
		s.clean()
		return 0, false, nil
	}
	if late {
		return 0, false, fmt.Errorf("%w: a new session id needs a cookie", ErrResponseStarted)
	}
	if rec.Owner != "" && m.owners == nil {
		return 0, false, fmt.Errorf("session: SetOwner needs a store that implements session.OwnerStore (%T does not): %w", m.store, errors.ErrUnsupported)
	}
	rec.Version = 0
	rec.Expires, _ = m.expiry(rec, now)
	id := s.id
	if from != nil || id == "" {
		id = m.ids.newID()
	}
	key := m.ids.storeKey(id)
	err = s.call(ctx, func(ctx context.Context) error { return s.store.Create(ctx, key, rec) })
	if errors.Is(err, ErrExists) {
		// 2^-256 for random ids; a store with its own key scheme may
		// still have a stale row under a client-chosen id.
		id = m.ids.newID()
		key = m.ids.storeKey(id)
		err = s.call(ctx, func(ctx context.Context) error { return s.store.Create(ctx, key, rec) })
	}
	if err != nil {
		return 0, false, fmt.Errorf("session: create %s: %w", logID(key), err)
	}
	if from != nil {
		// A logout or revoke may have ended the session since this request
		// loaded it: then the new record must not outlive it.
		err := s.call(ctx, func(ctx context.Context) error { _, err := s.store.Load(ctx, s.key); return err })
		if errors.Is(err, ErrNotFound) {
			if err := s.call(ctx, func(ctx context.Context) error { return s.store.Delete(ctx, key) }); err != nil {
				return 0, false, fmt.Errorf("session: regenerate: undo %s: %w", logID(key), err)
			}
			s.endedElsewhere()
			return 0, false, nil
		} else if err != nil {
			return 0, false, fmt.Errorf("session: regenerate: check old %s: %w", logID(s.key), err)
		}
		if err := s.call(ctx, func(ctx context.Context) error { return s.store.Delete(ctx, s.key) }); err != nil {
			return 0, false, fmt.Errorf("session: regenerate: delete old %s: %w", logID(s.key), err)
		}
	}
	s.id, s.key, s.base = id, key, rec
	s.clean()
	return rec.Expires.Sub(now), false, nil
}

// update hands this request's changes to the store, which applies them to
// the freshest stored record in one step. It reports how long a refreshed
// cookie may live and whether the cookie must be expired (the session lost
// its last value). The caller holds s.mu.
func (s *Session) update(ctx context.Context, now time.Time) (time.Duration, bool, error) {
	m := s.m
	if s.owner != nil && *s.owner != "" && m.owners == nil {
		return 0, false, fmt.Errorf("session: SetOwner needs a store that implements session.OwnerStore (%T does not): %w", m.store, errors.ErrUnsupported)
	}
	ch := s.pending()
	exp, refresh := m.expiry(s.base, now)
	if refresh {
		ch.Expires = exp
	}
	var rec *Record
	err := s.call(ctx, func(ctx context.Context) (err error) {
		rec, err = s.store.Update(ctx, s.key, ch)
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound):
		s.endedElsewhere()
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("session: save %s: %w", logID(s.key), err)
	case len(rec.Values) == 0:
		expire := s.cookieID != ""
		s.id, s.key, s.base = "", "", nil
		s.clean()
		return 0, expire, nil
	}
	s.base = rec
	s.clean()
	return m.refreshedCookie(refresh, exp, now), false, nil
}

// endedElsewhere handles a session that a concurrent request destroyed or
// regenerated while this one ran: that request wins, this one's changes
// are dropped, and the cookie is left alone (it may already carry the new
// id). The caller holds s.mu.
func (s *Session) endedElsewhere() {
	s.m.log.InfoContext(s.ctx, "session ended by a concurrent request; changes dropped", "session", logID(s.key))
	s.id, s.key, s.base = "", "", nil
	s.clean()
}

// remove deletes a session that has no values left. The caller holds s.mu.
func (s *Session) remove(ctx context.Context) error {
	if err := s.call(ctx, func(ctx context.Context) error { return s.store.Delete(ctx, s.key) }); err != nil {
		return fmt.Errorf("session: delete %s: %w", logID(s.key), err)
	}
	s.id, s.key, s.base = "", "", nil
	s.clean()
	return nil
}

// touch refreshes the idle expiry of an unchanged session when it is due.
// The caller holds s.mu.
func (s *Session) touch(ctx context.Context, now time.Time) (time.Duration, error) {
	exp, refresh := s.m.expiry(s.base, now)
	if !refresh {
		return 0, nil
	}
	err := s.call(ctx, func(ctx context.Context) error { return s.store.Touch(ctx, s.key, exp) })
	switch {
	case errors.Is(err, ErrNotFound):
		s.endedElsewhere()
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("session: refresh %s: %w", logID(s.key), err)
	}
	next := *s.base
	next.Expires = exp
	s.base = &next
	return s.m.refreshedCookie(true, exp, now), nil
}

// refreshedCookie returns how long a persistent cookie lives after its
// session's expiry moved to exp, or 0 when no cookie is due: a
// browser-session cookie has no expiry to refresh.
func (m *Manager) refreshedCookie(refreshed bool, exp, now time.Time) time.Duration {
	if !refreshed || m.cookie.MaxAge == 0 {
		return 0
	}
	return exp.Sub(now)
}

// responseWriter commits the session before the response's first byte. It
// never buffers: every write goes straight through once the commit is done.
type responseWriter struct {
	http.ResponseWriter
	s        *Session
	started  bool
	hijacked bool
	err      error // the commit failure that replaced the response
}

// begin commits the session as the response starts and reports whether
// the handler's response may proceed.
func (w *responseWriter) begin() bool {
	if w.started {
		return w.err == nil
	}
	w.started = true
	s := w.s
	late, err := s.commit(w.Header())
	if err == nil {
		return true
	}
	if late {
		s.m.onError(w.ResponseWriter, s.r, fmt.Errorf("%w: %w", ErrResponseStarted, err))
		return true
	}
	w.err = err
	// The handler's headers belong to the response that is being replaced.
	h := w.Header()
	vary := h.Values("Vary")
	clear(h)
	if len(vary) > 0 {
		h["Vary"] = vary
	}
	s.m.onError(w.ResponseWriter, s.r, err)
	return false
}

// finish runs when the handler returns: the commit if the handler never
// wrote, or a late commit of changes made after the first byte.
func (w *responseWriter) finish() {
	if !w.started {
		w.begin()
		return
	}
	if w.err != nil {
		return
	}
	s := w.s
	if _, err := s.commit(w.Header()); err != nil {
		if !errors.Is(err, ErrResponseStarted) {
			err = fmt.Errorf("%w: %w", ErrResponseStarted, err)
		}
		if w.hijacked {
			s.m.onError(discardWriter{}, s.r, err)
			return
		}
		s.m.onError(w.ResponseWriter, s.r, err)
	}
}

// errReplaced is what a handler's writes return after a failed commit
// replaced its response with the ErrorHandler's.
func (w *responseWriter) errReplaced() error {
	return fmt.Errorf("session: response replaced by the error handler: %w", w.err)
}

// WriteHeader commits the session, then sends the status. Informational
// (1xx) statuses pass through without committing.
func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.begin() {
		w.ResponseWriter.WriteHeader(code)
	}
}

// Write commits the session, then writes b.
func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.begin() {
		return 0, w.errReplaced()
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom commits the session, then copies from src, keeping the
// underlying writer's fast path (sendfile) when it has one.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.begin() {
		return 0, w.errReplaced()
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, src)
}

// Flush commits the session, then flushes.
func (w *responseWriter) Flush() {
	_ = w.FlushError()
}

// FlushError is Flush that reports failure, as http.ResponseController
// expects.
func (w *responseWriter) FlushError() error {
	if !w.begin() {
		return w.errReplaced()
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack commits the session to the store, then hands over the connection.
// A cookie cannot travel on a hijacked connection, so a new session's
// cookie is the hijacker's to write.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.begin() {
		return nil, nil, w.errReplaced()
	}
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the underlying writer, for
// deadlines and full duplex.
func (w *responseWriter) Unwrap() http.ResponseWriter {
	return w.ResponseWriter
}

// varyCookie makes sure h's Vary lists Cookie.
func varyCookie(h http.Header) {
	for _, v := range h["Vary"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Cookie") {
				return
			}
		}
	}
	h.Add("Vary", "Cookie")
}

type writerOnly struct{ io.Writer }

// discardWriter lets the ErrorHandler run, for its logging, once the
// connection is no longer the server's.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}
