package session

import (
	"fmt"
	"net/http"
	"strings"
)

// The id in a request header, for API clients that keep no cookies
// (Options.Header): which carrier a request used, reading the id from the
// header with the cookie's checks and signing, and telling the client its
// new id in the response.

// carrier is what brought a request's session id: it decides what the
// response varies by and where a new id goes.
type carrier uint8

const (
	carrierNone   carrier = iota // neither the cookie nor the header came
	carrierCookie                // the session cookie
	carrierHeader                // the header named by Options.Header
)

// carried returns the id the request carries and what carried it: the
// header named by Options.Header when the request has it (the cookie is
// then not read at all), else the cookie. An id this server did not issue
// is returned as "" and counted in Stats.RejectedIDs; an empty header,
// which a client sends to start a header-carried session, is not.
func (m *Manager) carried(r *http.Request) (string, carrier) {
	if m.header != "" {
		if value, copies := m.headerValue(r); copies > 0 {
			id := m.ids.verify(value)
			if id == "" && (copies > 1 || value != "") {
				m.rejected.Add(1)
			}
			return id, carrierHeader
		}
	}
	value, found := m.ids.cookieValue(r)
	if !found {
		return "", carrierNone
	}
	id := m.ids.verify(value)
	if id == "" {
		m.rejected.Add(1)
	}
	return id, carrierCookie
}

// headerValue returns the value of the id header and how many copies of it
// the request has; the value only for exactly one, since two are
// ambiguous and neither is trusted. For Authorization, only the Bearer
// scheme counts (the scheme's case does not matter): other schemes are the
// application's, and such a request falls back to the cookie.
func (m *Manager) headerValue(r *http.Request) (value string, copies int) {
	lines := r.Header[m.header]
	if !m.bearer {
		if len(lines) == 1 {
			return lines[0], 1
		}
		return "", len(lines)
	}
	for _, line := range lines {
		scheme, token, _ := strings.Cut(line, " ")
		if strings.EqualFold(scheme, "Bearer") {
			copies++
			value = strings.TrimLeft(token, " ")
		}
	}
	if copies != 1 {
		return "", copies
	}
	return value, 1
}

// varyField is the request header that a response to a request carried by
// via depends on.
func (m *Manager) varyField(via carrier) string {
	if via == carrierHeader {
		return m.header
	}
	return "Cookie"
}

// sendToken is sendCookie for a header-carried session: the new token when
// the id changed (a new session, Regenerate), and an empty one when the
// session ended, each in the form the request uses, so that a client only
// ever sends back the value it was given. A refresh sends nothing: a
// header has no expiry.
func (s *Session) sendToken(h http.Header, eff cookieEffect) {
	m := s.m
	var token string
	switch {
	case eff.set && s.id != s.cookieID:
		token = m.ids.sign(s.id)
	case eff.expire:
	default:
		return
	}
	if m.bearer {
		token = strings.TrimRight("Bearer "+token, " ")
	}
	h.Set(m.header, token)
	h.Set("Cache-Control", "no-store")
}

// checkHeader refuses an Options.Header that is not a header name, or one
// that HTTP or this middleware already gives another meaning.
func checkHeader(name string) error {
	if name == "" {
		return nil
	}
	if !validCookieName(name) { // a header name has the grammar of a cookie name
		return fmt.Errorf("option Header %q is not a valid header name", name)
	}
	switch http.CanonicalHeaderKey(name) {
	case "Cookie", "Set-Cookie", "Cache-Control", "Vary", "Host", "Connection", "Keep-Alive", "Proxy-Connection",
		"Content-Length", "Content-Type", "Transfer-Encoding", "Te", "Trailer", "Upgrade", "Proxy-Authorization":
		return fmt.Errorf("option Header %q already has a meaning in HTTP; use Authorization or a name of your own, such as Session-Token", name)
	}
	return nil
}
