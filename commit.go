package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// The commit: how a request's changes reach the store and the cookie.
//
// It runs when the response starts (first WriteHeader, Write, Flush,
// ReadFrom or Hijack), before any byte can reach the client, so a redirect
// after login finds the user logged in; and again when the handler returns,
// if the session changed after that. Each commit is planned (which store
// operation, if any), then applied, which says what becomes of the cookie.

// commitOp is the one operation a commit performs on the session's record.
type commitOp uint8

const (
	opNone   commitOp = iota
	opCreate          // store the session under a new id: a new session, or a regenerated one
	opUpdate          // hand this request's changes to Store.Update
	opTouch           // move the idle expiry, nothing else
)

// commitPlan is what a commit will do.
type commitPlan struct {
	destroy string // store key of a record Destroy ended, deleted first
	op      commitOp
	now     time.Time
	// expires is the new idle expiry of an update or a touch; zero when
	// no refresh is due.
	expires time.Time
	// life: the commit changes the session's lifetime (Remember), so the
	// cookie is sent again.
	life bool
}

// cookieEffect is what a commit does to the cookie.
type cookieEffect struct {
	set    bool          // send the cookie for the session's id
	life   time.Duration // with set: how long the session lives now
	expire bool          // tell the browser to drop the cookie
}

// dirty reports whether the request changed the session's data. The caller
// holds s.mu.
func (s *Session) dirty() bool {
	return len(s.ch.Values) > 0 || len(s.ch.Add) > 0 || s.ch.Clear || s.ch.Owner != nil || s.ch.Label != nil || s.life != nil
}

// clean forgets the pending changes once they are saved. The caller holds
// s.mu.
func (s *Session) clean() {
	s.ch, s.entries, s.regen, s.life = Change{}, 0, false, nil
}

// forget leaves the session without a record: it ended here or elsewhere.
// The caller holds s.mu.
func (s *Session) forget() {
	s.id, s.key, s.base = "", "", nil
	s.clean()
}

// expiry returns the idle expiry a record should get now, and whether it
// moved far enough past the stored one to be worth a write: at most one
// refresh per tenth of the idle timeout.
func (m *Manager) expiry(rec *Record, now time.Time) (time.Time, bool) {
	idle := m.idleOf(rec.IdleTimeout)
	exp := now.Add(idle)
	if d := m.deadline(rec); !d.IsZero() && exp.After(d) {
		exp = d
	}
	return exp, exp.Sub(rec.Expires) >= idle/10
}

// plan decides what the commit does, and reports whether it does anything.
// A read-only request costs no store call, unless its session's expiry is
// due for a refresh (which takes a read of the clock to know). The caller
// holds s.mu.
func (s *Session) plan() (commitPlan, bool) {
	p := commitPlan{destroy: s.ended}
	dirty := s.dirty()
	switch {
	case s.base == nil && !dirty:
		return p, p.destroy != "" // nothing stored, nothing to store
	case s.base == nil || s.regen:
		p.op = opCreate
	case dirty:
		p.op = opUpdate
	default:
		p.op = opTouch
	}
	p.now = s.m.now()
	if s.life != nil {
		created := p.now
		if s.base != nil {
			created = s.base.Created
		}
		s.ch.Lifetime, p.life = s.life.at(created), true
	}
	if p.op == opUpdate || p.op == opTouch {
		if exp, due := s.m.expiry(s.lifeView(), p.now); due || p.life {
			p.expires = exp
		} else if p.op == opTouch {
			p.op = opNone
		}
	}
	return p, p.destroy != "" || p.op != opNone
}

// commit saves the request's changes: the first call as the response
// starts, later ones once it has (late: no cookie can be set any more, and
// a call with nothing changed since costs nothing). The last one (the
// middleware's finish) also closes the session. starting is false for a
// Locked route's commit inside Handler, before which the response may not
// have started: the outer writer's commit starts it, and sends the cookie
// the later of the two calls for. The caller does not hold s.mu.
func (s *Session) commit(h http.Header, last, starting bool) (late bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last {
		// Changes made from now on would never be saved: refuse them.
		s.closed = true
	}
	late = s.started
	if starting {
		s.started = true
	}
	if !late && s.via != carrierNone {
		// The handler may have replaced the Vary set before it ran.
		addVary(h, s.m.varyField(s.via))
	}
	var eff cookieEffect
	if p, ok := s.plan(); ok {
		ctx, cancel := s.m.detach(s.ctx)
		defer cancel()
		eff, err = s.apply(ctx, p, late)
		if err == nil && late && p.life && eff.set && s.via == carrierCookie {
			// Remember or ForgetOnClose after the first byte: the record
			// has its new lifetime, but the cookie that carries it
			// cannot follow.
			err = fmt.Errorf("%w: Remember or ForgetOnClose needs a new cookie; the stored session has the new lifetime, the browser keeps its cookie", ErrResponseStarted)
		}
	}
	switch {
	case err != nil:
		// Reported lost, once: never retried by a later commit (the error
		// page's, the final one, one outside a Locked route's lock).
		s.clean()
		s.ended = ""
		if !late {
			// The ErrorHandler's response replaces the handler's:
			// changes made from now on are refused, not dropped.
			s.closed = true
		}
		return late, err
	case late:
		return late, nil
	case !starting:
		s.unsent = s.unsent.then(eff)
		return late, nil
	}
	s.sendCookie(h, s.unsent.then(eff))
	s.unsent = cookieEffect{}
	return late, nil
}

// then is the cookie effect of a commit that follows one of effect c.
func (c cookieEffect) then(next cookieEffect) cookieEffect {
	if next.set || next.expire {
		return next
	}
	return c
}

// detach gives a commit its context: free of ctx's cancellation, so that a
// client that hangs up cannot cancel a logout or a change its handler
// already made, and bounded by CommitTimeout.
func (m *Manager) detach(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = context.WithoutCancel(ctx)
	if m.storeWait <= 0 { // a store that never waits needs no timer
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, m.commitWait)
}

// apply carries out p. The caller holds s.mu.
func (s *Session) apply(ctx context.Context, p commitPlan, late bool) (cookieEffect, error) {
	var eff cookieEffect
	if p.destroy != "" {
		if err := s.m.call(ctx, "Delete", func(ctx context.Context) error { return s.store.Delete(ctx, p.destroy) }); err != nil {
			return eff, fmt.Errorf("session: destroy %s: %w", logID(p.destroy), err)
		}
		s.ended = ""
		s.m.ev.destroyed(ctx, p.destroy)
		eff.expire = s.cookieID != ""
	}
	var op cookieEffect
	var err error
	switch p.op {
	case opCreate:
		op, err = s.create(ctx, p.now, late)
	case opUpdate:
		op, err = s.update(ctx, p)
	case opTouch:
		op, err = s.touch(ctx, p)
	}
	if op.set {
		return op, err
	}
	eff.expire = eff.expire || op.expire
	return eff, err
}

// sendCookie writes what eff says into the response's headers.
func (s *Session) sendCookie(h http.Header, eff cookieEffect) {
	if s.via == carrierHeader {
		s.sendToken(h, eff)
		return
	}
	m := s.m
	switch {
	case eff.set:
		age := m.cookieAge(s.base, eff.life) // 0: a browser-session cookie
		s.setCookie(h, m.ids.sign(s.id), age)
	case eff.expire:
		s.setCookie(h, "", -1)
	}
}

func (s *Session) setCookie(h http.Header, value string, maxAge time.Duration) {
	h.Add("Set-Cookie", s.m.cookie.cookie(s.r, s.m.ids.name, value, maxAge).String())
	h.Set("Cache-Control", "no-store")
}

// call runs one store call within StoreTimeout and reports it to the
// StoreCall hook.
func (m *Manager) call(ctx context.Context, op string, f func(context.Context) error) error {
	t := start(m.ev.StoreCall != nil)
	bctx, cancel := m.bound(ctx)
	err := f(bctx)
	cancel()
	m.ev.stored(ctx, op, t, err)
	return err
}

// create stores the session under a new id: a brand-new session, or a
// regenerated one, whose old record it then deletes. The caller holds s.mu.
func (s *Session) create(ctx context.Context, now time.Time, late bool) (cookieEffect, error) {
	m := s.m
	from := s.base // nil for a brand-new session
	if rn, ok := s.store.(Renamer); ok && from != nil {
		return s.rename(ctx, rn, now, late)
	}
	base := from
	if base == nil {
		base = &Record{Created: now}
		if m.lifetime > 0 {
			base.Deadline = now.Add(m.lifetime)
		}
		if m.devices != nil {
			base.Handle = newHandle()
		}
	}
	ch := s.ch
	ch.MaxSize = m.maxSize
	rec, err := ch.Apply(base)
	if err != nil {
		return cookieEffect{}, err
	}
	if rec.numValues() == 0 {
		if from == nil {
			s.clean()
			return cookieEffect{}, nil
		}
		return cookieEffect{expire: s.cookieID != ""}, s.remove(ctx)
	}
	if late {
		return cookieEffect{}, fmt.Errorf("%w: a new session id needs a cookie", ErrResponseStarted)
	}
	if from == nil && s.ctx.Err() != nil {
		// The request was cancelled before its cookie went out (the client
		// left, or an http.TimeoutHandler around the middleware answered
		// 503): nobody could ever present this id, so storing it would
		// only leave an orphan record.
		s.m.log.WarnContext(s.ctx, "new session not stored: the request ended before its cookie could be sent", "err", s.ctx.Err())
		s.clean()
		return cookieEffect{}, nil
	}
	if rec.Owner != "" && m.owners == nil {
		return cookieEffect{}, errOwnerStore(m.store)
	}
	rec.Version = 0
	rec.Expires, _ = m.expiry(rec, now)
	reuse := s.id // a brand-new session keeps the id its handler may have read
	if from != nil {
		reuse = ""
	}
	id, key, err := s.underNewID(ctx, "Create", reuse, func(ctx context.Context, key string) error {
		return s.store.Create(ctx, key, rec)
	})
	if err != nil {
		return cookieEffect{}, fmt.Errorf("session: create %s: %w", logID(key), err)
	}
	if from != nil {
		// A logout or revoke may have ended the session since this request
		// loaded it: then the new record must not outlive it.
		err := s.m.call(ctx, "Load", func(ctx context.Context) error { _, err := loadRecord(ctx, s.store, s.key); return err })
		if errors.Is(err, ErrNotFound) {
			if err := s.m.call(ctx, "Delete", func(ctx context.Context) error { return s.store.Delete(ctx, key) }); err != nil {
				return cookieEffect{}, fmt.Errorf("session: regenerate: undo %s: %w", logID(key), err)
			}
			s.endedElsewhere()
			return cookieEffect{}, nil
		} else if err != nil {
			return cookieEffect{}, fmt.Errorf("session: regenerate: check old %s: %w", logID(s.key), err)
		}
		if err := s.m.call(ctx, "Delete", func(ctx context.Context) error { return s.store.Delete(ctx, s.key) }); err != nil {
			return cookieEffect{}, fmt.Errorf("session: regenerate: delete old %s: %w", logID(s.key), err)
		}
	}
	s.m.ev.created(ctx, s.base, s.key, key)
	s.id, s.key, s.base = id, key, rec
	s.clean()
	return cookieEffect{set: true, life: rec.Expires.Sub(now)}, nil
}

// underNewID stores the session under an id through f (a Create or a
// Rename): id itself when not empty, else a new one; a key that is taken
// (2^-256 for random ids, but a store with its own key scheme may still
// hold a stale row under a client-chosen id) gets one more, new, id.
func (s *Session) underNewID(ctx context.Context, op, id string, f func(ctx context.Context, key string) error) (string, string, error) {
	for try := 0; ; try++ {
		if id == "" || try > 0 {
			id = s.m.ids.newID()
		}
		key := s.m.ids.storeKey(id)
		err := s.m.call(ctx, op, func(ctx context.Context) error { return f(ctx, key) })
		if try > 0 || !errors.Is(err, ErrExists) {
			return id, key, err
		}
	}
}

// ownerRefused reports the owner a store without OwnerStore cannot keep.
// The caller holds s.mu.
func (s *Session) ownerRefused() error {
	if s.ch.Owner != nil && *s.ch.Owner != "" && s.m.owners == nil {
		return errOwnerStore(s.m.store)
	}
	return nil
}

// rename regenerates the session through a store that moves the record in
// one step. The caller holds s.mu.
func (s *Session) rename(ctx context.Context, rn Renamer, now time.Time, late bool) (cookieEffect, error) {
	m := s.m
	if late {
		return cookieEffect{}, fmt.Errorf("%w: a regenerated session id needs a cookie", ErrResponseStarted)
	}
	if err := s.ownerRefused(); err != nil {
		return cookieEffect{}, err
	}
	ch := s.ch
	ch.MaxSize = m.maxSize
	ch.Expires, _ = m.expiry(s.lifeView(), now)
	var rec *Record
	id, key, err := s.underNewID(ctx, "Rename", "", func(ctx context.Context, key string) (err error) {
		rec, err = renameRecord(ctx, rn, s.key, key, &ch)
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound):
		s.endedElsewhere()
		return cookieEffect{}, nil
	case err != nil:
		return cookieEffect{}, fmt.Errorf("session: regenerate %s: %w", logID(s.key), err)
	case rec.numValues() == 0:
		s.m.ev.destroyed(ctx, s.key)
		s.forget()
		return cookieEffect{expire: s.cookieID != ""}, nil
	}
	s.m.ev.created(ctx, s.base, s.key, key)
	s.id, s.key, s.base = id, key, rec
	s.clean()
	return cookieEffect{set: true, life: rec.Expires.Sub(now)}, nil
}

// update hands this request's changes to the store, which applies them to
// the freshest stored record in one step. The caller holds s.mu.
func (s *Session) update(ctx context.Context, p commitPlan) (cookieEffect, error) {
	m := s.m
	if err := s.ownerRefused(); err != nil {
		return cookieEffect{}, err
	}
	// The store gets the session's own pending changes, with the commit's
	// settings filled in and taken out again whatever happens: the
	// contract says a store lets go of ch when Update returns.
	ch := &s.ch
	ch.MaxSize, ch.Expires, ch.Base = m.maxSize, p.expires, s.base
	var rec *Record
	err := s.m.call(ctx, "Update", func(ctx context.Context) (err error) {
		rec, err = updateRecord(ctx, s.store, s.key, ch)
		return err
	})
	s.ch.MaxSize, s.ch.Expires, s.ch.Base = 0, time.Time{}, nil
	switch {
	case errors.Is(err, ErrNotFound):
		s.endedElsewhere()
		return cookieEffect{}, nil
	case err != nil:
		return cookieEffect{}, fmt.Errorf("session: save %s: %w", logID(s.key), err)
	case rec.numValues() == 0:
		s.m.ev.destroyed(ctx, s.key)
		s.forget()
		return cookieEffect{expire: s.cookieID != ""}, nil
	}
	s.base = rec
	if _, mem := s.store.(*MemoryStore); mem {
		s.recycle()
	}
	s.clean()
	return s.refreshed(p), nil
}

// touch moves the idle expiry of an unchanged session. The caller holds
// s.mu.
func (s *Session) touch(ctx context.Context, p commitPlan) (cookieEffect, error) {
	err := s.m.call(ctx, "Touch", func(ctx context.Context) error { return s.store.Touch(ctx, s.key, p.expires) })
	switch {
	case errors.Is(err, ErrNotFound):
		s.endedElsewhere()
		return cookieEffect{}, nil
	case err != nil:
		return cookieEffect{}, fmt.Errorf("session: refresh %s: %w", logID(s.key), err)
	}
	next := *s.base
	next.Expires = p.expires
	s.base = &next
	return s.refreshed(p), nil
}

// refreshed is the cookie after an update or touch: a persistent cookie is
// sent again when the expiry moved; a browser-session cookie has no expiry
// to refresh.
func (s *Session) refreshed(p commitPlan) cookieEffect {
	if !p.life && (p.expires.IsZero() || !s.m.persistent(s.base)) {
		return cookieEffect{}
	}
	return cookieEffect{set: true, life: p.expires.Sub(p.now)}
}

// endedElsewhere handles a session that a concurrent request destroyed or
// regenerated while this one ran: that request wins, this one's changes
// are dropped, and the cookie is left alone (it may already carry the new
// id). The caller holds s.mu.
func (s *Session) endedElsewhere() {
	s.m.log.InfoContext(s.ctx, "session ended by a concurrent request; changes dropped", "session", logID(s.key))
	s.forget()
	s.gone = true
}

// remove deletes a session that has no values left. The caller holds s.mu.
func (s *Session) remove(ctx context.Context) error {
	if err := s.m.call(ctx, "Delete", func(ctx context.Context) error { return s.store.Delete(ctx, s.key) }); err != nil {
		return fmt.Errorf("session: delete %s: %w", logID(s.key), err)
	}
	s.m.ev.destroyed(ctx, s.key)
	s.forget()
	return nil
}

// errOwnerStore explains why an owner cannot be stored.
func errOwnerStore(st Store) error {
	return fmt.Errorf("session: SetOwner needs a store that implements session.OwnerStore (%T does not): %w", st, errors.ErrUnsupported)
}
