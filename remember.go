package session

import "time"

// A session's own lifetime ("remember me"): the idle timeout, absolute
// deadline and kind of cookie that a login handler chooses for one session
// with Remember or ForgetOnClose, kept in its record (Record.IdleTimeout,
// Deadline, Persist) and enforced by the server like the Options' own.

// lifeChoice is what Remember or ForgetOnClose chose, until the commit
// knows the session's creation time and makes it a Change.Lifetime.
type lifeChoice struct {
	idle     time.Duration // 0: Options.IdleTimeout
	lifetime time.Duration // counted from the session's creation
	persist  CookiePersistence
}

// at is the choice for a session created at created.
func (c *lifeChoice) at(created time.Time) *Lifetime {
	l := &Lifetime{IdleTimeout: c.idle, Persist: c.persist}
	if !created.IsZero() { // a store that keeps no creation time keeps no deadline
		l.Deadline = created.Add(c.lifetime)
	}
	return l
}

// Remember gives this session a persistent cookie and its own idle
// timeout and absolute lifetime ("remember me for 30 days"), counted from
// the session's creation, as a login handler chooses. Zero or less for
// either means the Options' own; each is capped by
// [Options.MaxRememberLifetime], and an idle timeout longer than the
// lifetime is cut to it. The cookie's Max-Age is the time the session has
// left and is sent again as activity extends it.
//
// The server enforces both limits on every read, whatever the cookie says,
// and the choice is kept by [Session.Regenerate], so call it together with
// Regenerate at login. It changes nothing on a store that cannot keep it:
// the commit fails with an error wrapping errors.ErrUnsupported (the Koa
// bridge, whose table has no column for it).
func (s *Session) Remember(idle, lifetime time.Duration) {
	s.lock()
	defer s.mu.Unlock()
	if s.closedLocked("Remember") != nil {
		return
	}
	m := s.m
	if lifetime <= 0 {
		lifetime = m.lifetime
	}
	if idle <= 0 {
		idle = m.idle
	}
	lifetime = min(lifetime, m.maxRemember)
	s.setLife(lifeChoice{idle: min(idle, lifetime), lifetime: lifetime, persist: CookiePersistent})
}

// ForgetOnClose gives this session a browser-session cookie, one without
// Max-Age that the browser drops when it closes ("this is a shared
// computer"), whatever [CookieOptions.MaxAge] says, and the Options' own
// idle timeout and lifetime, undoing an earlier [Session.Remember]. Like
// Remember, it is kept by Regenerate.
func (s *Session) ForgetOnClose() {
	s.lock()
	defer s.mu.Unlock()
	if s.closedLocked("ForgetOnClose") != nil {
		return
	}
	s.setLife(lifeChoice{lifetime: s.m.lifetime, persist: CookieBrowserSession})
}

// setLife records a choice, unless the stored record has it already: a
// handler that calls Remember on every request costs no write. The caller
// holds s.mu.
func (s *Session) setLife(c lifeChoice) {
	s.life = &c
	if b := s.base; b != nil {
		l := c.at(b.Created)
		if l.IdleTimeout == b.IdleTimeout && l.Deadline.Equal(b.Deadline) && l.Persist == b.Persist {
			s.life = nil
		}
	}
}

// lifeView is the loaded record as this request's Lifetime change leaves
// it: what the new expiry is computed from. The caller holds s.mu.
func (s *Session) lifeView() *Record {
	if s.ch.Lifetime == nil || s.base == nil {
		return s.base
	}
	v := *s.base
	s.ch.Lifetime.setIn(&v)
	return &v
}

// idleOf is the idle timeout of a record whose own is idle (0: the
// Options'), within MaxRememberLifetime.
func (m *Manager) idleOf(idle time.Duration) time.Duration {
	if idle <= 0 {
		return m.idle
	}
	return min(idle, m.maxRemember)
}

// deadline is rec's absolute end, within MaxRememberLifetime of its
// creation (zero: none).
func (m *Manager) deadline(rec *Record) time.Time {
	d := rec.Deadline
	if !d.IsZero() && !rec.Created.IsZero() {
		if limit := rec.Created.Add(m.maxRemember); limit.Before(d) {
			d = limit
		}
	}
	return d
}

// live reports whether rec may still be served at now, by the server's own
// limits and whatever the store says: its idle expiry and its deadline, with
// a lowered MaxRememberLifetime shortening both.
func (m *Manager) live(rec *Record, now time.Time) bool {
	exp := rec.Expires
	if idle := m.idleOf(rec.IdleTimeout); rec.IdleTimeout > idle {
		exp = exp.Add(idle - rec.IdleTimeout) // last seen plus the idle timeout now allowed
	}
	d := m.deadline(rec)
	return now.Before(exp) && (d.IsZero() || now.Before(d))
}

// persistent reports whether rec's cookie has a Max-Age.
func (m *Manager) persistent(rec *Record) bool {
	switch rec.Persist {
	case CookiePersistent:
		return true
	case CookieBrowserSession:
		return false
	}
	return m.cookie.MaxAge > 0
}

// cookieAge is the Max-Age of rec's cookie when the session has life
// left: 0 for a browser-session cookie.
func (m *Manager) cookieAge(rec *Record, life time.Duration) time.Duration {
	switch {
	case !m.persistent(rec):
		return 0
	case rec.Persist == CookiePersistent:
		return life
	}
	return min(life, m.cookie.MaxAge)
}
