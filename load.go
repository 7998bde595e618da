package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Sessions outside the middleware: a WebSocket hub, a server-sent events
// stream or a background job loads a session from a request or an id,
// changes it, and saves it with Commit, with the guarantees of a request's
// commit.

var (
	// ErrInvalidID: [Manager.LoadID] was given a value that is not a
	// session id this server issues.
	ErrInvalidID = errors.New("session: malformed session id")
	// ErrMiddlewareSession: [Session.Commit] was called on the session of
	// a request, which the middleware commits itself.
	ErrMiddlewareSession = errors.New("session: Commit on a session the middleware commits")
)

// Load loads the session that r carries, in its cookie (or in the header
// named by Options.Header), with the middleware's checks: a request
// without a session, or with an id this server did not issue (malformed,
// wrongly signed, unknown, expired), gets a new empty session for which
// IsNew reports true; an id is never adopted. Only a store failure is an
// error.
//
// The session is the caller's to save with [Session.Commit], and lives on
// after r's handler returns: load it in a WebSocket upgrade or an SSE
// handler, keep it for the connection. Inside the middleware,
// [FromContext] is the request's own session; Load gives an independent
// one, at the cost of another store read. Load does not take the session's
// lock, even with Options.Lock: a stream would hold it for its whole life.
func (m *Manager) Load(r *http.Request) (*Session, error) {
	s := m.detached(r.Context(), r)
	s.cookieID, s.via = m.carried(r)
	if err := s.load(); err != nil {
		return nil, err
	}
	s.ctx = context.WithoutCancel(s.ctx)
	return s, nil
}

// LoadID loads the session with id, as [Session.ID] returned it (not a
// signed cookie or header value): what a background job or a hub that
// outlives the request uses. Unlike Load, it never starts a new session:
// an id that is not well-formed fails with an error wrapping ErrInvalidID,
// without a store call, and one that names no live session (it ended,
// expired, or never was) with one wrapping ErrNotFound. Save the session
// with [Session.Commit].
//
// The id is a secret the server handed out; for a value that a client
// sent, prefer Load on its request, which also checks the signature when
// Options.SigningKeys are set.
func (m *Manager) LoadID(ctx context.Context, id string) (*Session, error) {
	if !m.ids.validID(id) {
		return nil, fmt.Errorf("%w: LoadID wants the %d-character id that Session.ID returns (got %d characters, or characters outside base64url)",
			ErrInvalidID, m.ids.chars, len(id))
	}
	s := m.detached(ctx, nil)
	s.cookieID = id
	if err := s.load(); err != nil {
		return nil, err
	}
	if s.base == nil {
		return nil, fmt.Errorf("session: LoadID %s: no live session: %w", logID(m.ids.storeKey(id)), ErrNotFound)
	}
	s.ctx = context.WithoutCancel(s.ctx)
	return s, nil
}

// detached returns a session outside the middleware, not yet loaded.
func (m *Manager) detached(ctx context.Context, r *http.Request) *Session {
	return &Session{m: m, ctx: ctx, r: r, store: m.store, detached: true}
}

// Commit saves the changes made to a session from [Manager.Load] or
// [Manager.LoadID], with the guarantees of a request's commit: the store
// applies them to the freshest stored record in one step, so concurrent
// changes to other keys are kept; a session that was destroyed,
// regenerated or revoked since it was loaded is never brought back (Commit
// drops the changes and returns an error wrapping ErrNotFound); each store
// call is bounded by Options.StoreTimeout; and the commit runs detached
// from ctx's cancellation, within Options.CommitTimeout, so that a stream
// whose client hung up still saves what it changed. ctx passes its values
// (a trace) to the store. An unchanged session has its idle expiry
// refreshed, as by a request.
//
// A new session, or one that Regenerate gave a new id, is stored under a
// new id, which [Session.ID] returns afterwards. No response carries it:
// hand it to the client yourself, or keep it for the next LoadID.
//
// Commit ends the session, whether it succeeds or not: later changes fail
// with ErrSessionClosed, and so does a second Commit. To go on (a hub that
// saves after each message), load the session again, which also sees what
// requests changed meanwhile and whether it ended. On the session of a
// request, which the middleware commits, Commit fails with an error
// wrapping ErrMiddlewareSession.
func (s *Session) Commit(ctx context.Context) error {
	s.lock()
	defer s.mu.Unlock()
	if !s.detached {
		return fmt.Errorf("%w: only sessions from Manager.Load or Manager.LoadID are committed by hand", ErrMiddlewareSession)
	}
	if s.closed {
		return fmt.Errorf("session: Commit called twice (load the session again to make more changes): %w", ErrSessionClosed)
	}
	s.closed = true
	p, ok := s.plan()
	if !ok {
		return nil
	}
	ctx, cancel := s.m.detach(ctx)
	defer cancel()
	key := s.key
	if _, err := s.apply(ctx, p, false); err != nil {
		return err
	}
	if s.gone {
		return fmt.Errorf("session: commit %s: the session ended (logout, Regenerate or revoke) after it was loaded; its changes were dropped: %w", logID(key), ErrNotFound)
	}
	return nil
}
