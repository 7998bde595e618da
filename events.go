package session

import (
	"context"
	"time"
)

// Events are hooks the Manager calls as sessions start, change id and end,
// as requests wait for a session's lock and as it calls the store: what an
// application needs to feed OpenTelemetry, Prometheus or an audit log
// without this module depending on any of them (package
// github.com/seed013449c2/session/metrics/prometheus is such an adapter).
//
// Every field is optional: a nil hook costs nothing, not even a reading
// of the clock. The Manager copies Events when it is built, so changing
// them later has no effect.
//
// Hooks run synchronously, on the goroutine of the request (or of the call
// to [Manager.Revoke]), some of them while the session is locked: keep them
// fast, never block in them, and never call the request's [Session] from
// one. They may run concurrently for different requests. The context is
// the request's (or Revoke's), so a hook can read a trace span from it.
//
// No event carries a session id or a store key: a session is named by its
// [SessionEvent.LogID], the short hash that log lines carry.
type Events struct {
	// Created: a new session was stored (its first value was set).
	Created func(ctx context.Context, e SessionEvent)
	// Regenerated: [Session.Regenerate] moved a stored session to a new
	// id; e.PreviousLogID names the old one. A regenerated session that
	// was never stored is reported as Created.
	Regenerated func(ctx context.Context, e SessionEvent)
	// Destroyed: a request deleted a stored session: [Session.Destroy]
	// (also through [Session.RevokeOwner] without keepCurrent), or a
	// change that left it with no values. A session that ends by
	// [Manager.Revoke] is counted by Revoked instead; one that ends by
	// timing out, by Expired when a request next presents its id.
	Destroyed func(ctx context.Context, e SessionEvent)
	// Expired: a request presented a well-formed id (correctly signed,
	// when Options.SigningKeys is set) that named no live session:
	// expired, ended, or never issued. The request gets a fresh session.
	// A malformed or forged id does not reach the store and is counted in
	// [Stats.RejectedIDs] instead.
	Expired func(ctx context.Context, e SessionEvent)
	// Revoked: [Manager.Revoke] or [Session.RevokeOwner] ended n sessions
	// of owner (n may be 0), or [Session.EndDevice] ended another of its
	// sessions (n is 1). With RevokeOwner(false), the request's own
	// session is not among the n: it is reported by Destroyed when the
	// request commits, as is the one EndDevice ends when its handle is
	// the request's own.
	Revoked func(ctx context.Context, owner string, n int)
	// LockWait: a request waited d for a session's lock (Options.Lock or
	// [Manager.Locked]). err is nil when the lock was taken, and wraps
	// ErrLockTimeout when LockTimeout passed first, or the request's
	// context error when the client went away.
	LockWait func(ctx context.Context, d time.Duration, err error)
	// StoreCall: the Manager called the store, which answered after d with
	// err. op is the name of the method called on the store: "Load",
	// "Create", "Update", "Touch", "Delete", "Rename", "DeleteOwner", or
	// the method of another optional interface (a lock's wait is reported
	// by LockWait instead). An err wrapping
	// ErrNotFound or ErrExists is an answer rather than a failure: a Load
	// of an id that ended, an Update of a session a concurrent request
	// ended, or a Create that drew a taken id. The store's own background
	// work (cleanup) is not reported.
	StoreCall func(ctx context.Context, op string, d time.Duration, err error)
}

// SessionEvent names the session an event is about. It never holds the
// session's id or its store key.
type SessionEvent struct {
	// LogID is a short hash of the session's store key (12 hex digits):
	// the value log lines carry as "session", so that an event can be
	// matched with them. It cannot be turned back into the id or the key.
	LogID string
	// PreviousLogID is the LogID of the session before Regenerate; empty
	// for every other event.
	PreviousLogID string
}

// The hooks' call sites: one line each in the request's path, so that a
// nil hook costs a comparison and nothing else.

// created reports a session stored under key: a new one when from is nil,
// else one regenerated from the record under oldKey.
func (e *Events) created(ctx context.Context, from *Record, oldKey, key string) {
	switch {
	case from == nil && e.Created != nil:
		e.Created(ctx, SessionEvent{LogID: logID(key)})
	case from != nil && e.Regenerated != nil:
		e.Regenerated(ctx, SessionEvent{LogID: logID(key), PreviousLogID: logID(oldKey)})
	}
}

// destroyed reports that the record under key was deleted.
func (e *Events) destroyed(ctx context.Context, key string) {
	if e.Destroyed != nil {
		e.Destroyed(ctx, SessionEvent{LogID: logID(key)})
	}
}

// expired reports a well-formed id whose record under key is not live.
func (e *Events) expired(ctx context.Context, key string) {
	if e.Expired != nil {
		e.Expired(ctx, SessionEvent{LogID: logID(key)})
	}
}

// start returns the time a hook's wait starts, or the zero time when hook
// is false: a call nobody measures reads no clock.
func start(hook bool) time.Time {
	if !hook {
		return time.Time{}
	}
	return time.Now()
}

// lockWaited reports a lock wait that began at t.
func (e *Events) lockWaited(ctx context.Context, t time.Time, err error) {
	if e.LockWait != nil {
		e.LockWait(ctx, time.Since(t), err)
	}
}

// stored reports a store call op that began at t.
func (e *Events) stored(ctx context.Context, op string, t time.Time, err error) {
	if e.StoreCall != nil {
		e.StoreCall(ctx, op, time.Since(t), err)
	}
}

// deleteOwner ends owner's sessions, but the one under except, through
// owners (the store, or a locked request's lease store) within
// StoreTimeout, and reports the call and what it ended.
func (m *Manager) deleteOwner(ctx context.Context, owners OwnerStore, owner, except string) (int, error) {
	var n int
	err := m.call(ctx, "DeleteOwner", func(ctx context.Context) (err error) {
		n, err = owners.DeleteOwner(ctx, owner, except)
		return err
	})
	if err == nil && m.ev.Revoked != nil {
		m.ev.Revoked(ctx, owner, n)
	}
	return n, err
}
