package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// CookieOptions configures the id cookie. The zero value is the safe
// default: a browser-session cookie, HttpOnly, SameSite=Lax, Path=/, no
// Domain, and Secure whenever the request came over TLS.
type CookieOptions struct {
	// MaxAge makes the cookie persistent: the browser keeps it this long
	// (never past the session's absolute Lifetime), and it is sent again
	// whenever the session's idle expiry is refreshed. Zero (the default)
	// gives a browser-session cookie, gone when the browser closes. The
	// server enforces IdleTimeout and Lifetime whatever the cookie says.
	MaxAge time.Duration
	// Path is the cookie's Path. Default "/".
	Path string
	// Domain is the cookie's Domain. Default none: the cookie goes back
	// only to the host that set it, which is the safe choice.
	Domain string
	// Secure forces the Secure attribute on every cookie, for servers
	// behind a proxy that terminates TLS. Without it, the attribute is set
	// when the request itself came over TLS. Required by `__Host-` and
	// `__Secure-` names, SameSite=None and Partitioned.
	Secure bool
	// SameSite is the cookie's SameSite. Zero means http.SameSiteLaxMode;
	// http.SameSiteDefaultMode leaves the attribute out.
	SameSite http.SameSite
	// Partitioned sets the Partitioned attribute (CHIPS) for cookies used
	// in a third-party context. Requires Secure.
	Partitioned bool
	// DisableHTTPOnly lets page scripts read the cookie. Leave it off: an
	// id that scripts can read is an id that injected scripts can steal.
	DisableHTTPOnly bool
}

// defaultCookieName is the cookie the Koa tutorial uses, so a Go server and
// a Koa server can share visitors.
const defaultCookieName = "SESSION_ID"

const (
	// maxCookieScan bounds the bytes of Cookie headers read per request,
	// so an oversized header costs bounded work.
	maxCookieScan = 16 << 10
	// minKeyBytes is the shortest signing key accepted.
	minKeyBytes = 32
	// macChars is the length of a cookie signature: SHA-256, base64url.
	macChars = 43
)

// ids generates, checks and signs session ids.
type ids struct {
	name        string
	bytes       int      // random bytes in an id
	chars       int      // length of an id in the cookie, unsigned
	signingKeys [][]byte // the first signs, all verify
	storeKey    func(id string) string
}

// newID returns a fresh random id: base64url without padding, so it needs no
// escaping in a cookie. crypto/rand never fails on supported platforms.
func (x *ids) newID() string {
	b := make([]byte, x.bytes)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashKey is the default store key: hex SHA-256 of the id. A leaked table of
// keys cannot be turned back into cookies.
func hashKey(id string) string {
	var buf [128]byte
	sum := sha256.Sum256(append(buf[:0], id...))
	var out [sha256.Size * 2]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// logID is what logs may carry about an id: a short hash of its store key,
// enough to follow one session through the logs, useless to replay.
func logID(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:6])
}

// validID reports whether v has exactly the form of an id this server issues.
func (x *ids) validID(v string) bool {
	if len(v) != x.chars {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// sign returns the cookie value for id: the id itself, or id.signature when
// keys are configured.
func (x *ids) sign(id string) string {
	if len(x.signingKeys) == 0 {
		return id
	}
	return id + "." + x.mac(x.signingKeys[0], id)
}

func (x *ids) mac(key []byte, id string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(x.name))
	h.Write([]byte{'='})
	h.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// verify returns the id carried by a cookie value, or "" when the value is
// not one this server issued. With signing keys, each is tried in constant
// time, and an unsigned value is refused: there is no fallback.
func (x *ids) verify(v string) string {
	if len(x.signingKeys) == 0 {
		if x.validID(v) {
			return v
		}
		return ""
	}
	if len(v) != x.chars+1+macChars || v[x.chars] != '.' {
		return ""
	}
	id, sig := v[:x.chars], v[x.chars+1:]
	if !x.validID(id) {
		return ""
	}
	ok := 0
	for _, k := range x.signingKeys {
		if hmac.Equal([]byte(sig), []byte(x.mac(k, id))) {
			ok = 1
		}
	}
	if ok == 0 {
		return ""
	}
	return id
}

// cookieValue finds the session cookie among the request's Cookie headers
// without allocating, reading at most maxCookieScan bytes. It reports found
// when the cookie name appears at all and returns the value only when it
// appears exactly once in headers read whole: two copies (one perhaps
// planted on a parent domain) are ambiguous and neither is trusted.
func (x *ids) cookieValue(r *http.Request) (value string, found bool) {
	budget := maxCookieScan
	copies := 0
	truncated := false
	for _, line := range r.Header["Cookie"] {
		if budget <= 0 {
			truncated = true
			break
		}
		if len(line) > budget {
			line, truncated = line[:budget], true
		}
		budget -= len(line)
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " \t")
			name, val, ok := strings.Cut(part, "=")
			if !ok || strings.TrimRight(name, " \t") != x.name {
				continue
			}
			copies++
			value = strings.TrimRight(val, " \t")
		}
	}
	if copies != 1 || truncated {
		// What was not read may hold a second copy, and a value at the cut
		// may be cut short: a header too long to read whole is not trusted.
		return "", copies > 0
	}
	return value, true
}

// validCookieName reports whether name is a cookie name (an RFC 7230 token).
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// check validates cookie settings against the browser rules that would
// otherwise drop the cookie silently.
func (c *CookieOptions) check(name string) error {
	switch {
	case c.MaxAge < 0:
		return fmt.Errorf("option Cookie.MaxAge is negative (%v); use 0 for a browser-session cookie", c.MaxAge)
	case strings.HasPrefix(name, "__Host-") && !c.Secure:
		return fmt.Errorf("cookie name %q needs Cookie.Secure: browsers drop __Host- cookies without it", name)
	case strings.HasPrefix(name, "__Host-") && c.Domain != "":
		return fmt.Errorf("cookie name %q forbids Cookie.Domain (%q): __Host- cookies are host-only", name, c.Domain)
	case strings.HasPrefix(name, "__Host-") && c.Path != "" && c.Path != "/":
		return fmt.Errorf("cookie name %q needs Cookie.Path \"/\", not %q", name, c.Path)
	case strings.HasPrefix(name, "__Secure-") && !c.Secure:
		return fmt.Errorf("cookie name %q needs Cookie.Secure: browsers drop __Secure- cookies without it", name)
	case c.SameSite == http.SameSiteNoneMode && !c.Secure:
		return fmt.Errorf("option Cookie.SameSite None needs Cookie.Secure: browsers reject SameSite=None without it")
	case c.Partitioned && !c.Secure:
		return fmt.Errorf("option Cookie.Partitioned needs Cookie.Secure")
	case strings.ContainsAny(c.Path, ";\r\n") || strings.ContainsAny(c.Domain, "; \r\n"):
		return fmt.Errorf("option Cookie.Path or Cookie.Domain contains a forbidden character")
	}
	return nil
}

// cookie builds the Set-Cookie for value; maxAge < 0 expires the cookie.
func (c *CookieOptions) cookie(r *http.Request, name, value string, maxAge time.Duration) *http.Cookie {
	ck := &http.Cookie{
		Name:        name,
		Value:       value,
		Path:        c.Path,
		Domain:      c.Domain,
		Secure:      c.Secure || r.TLS != nil,
		HttpOnly:    !c.DisableHTTPOnly,
		SameSite:    c.SameSite,
		Partitioned: c.Partitioned,
	}
	if ck.Path == "" {
		ck.Path = "/"
	}
	if ck.SameSite == 0 {
		ck.SameSite = http.SameSiteLaxMode
	}
	switch {
	case maxAge < 0:
		ck.MaxAge = -1
		ck.Expires = time.Unix(0, 0)
	case maxAge > 0:
		secs := int((maxAge + time.Second - 1) / time.Second)
		ck.MaxAge = secs
		ck.Expires = time.Now().Add(time.Duration(secs) * time.Second)
	}
	return ck
}
