//go:build go1.25

package main

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/seed013449c2/session/internal/sqltest"
)

// The browser tests in e2e/ drive this app in Chromium; these check the
// same flows with Go's HTTP client, on the memory store and on MySQL, so
// that they run with the session module's own tests.

// visitor is one browser: a cookie jar and a User-Agent.
type visitor struct {
	t    *testing.T
	base string
	c    *http.Client
	ua   string
}

func newVisitor(t *testing.T, base, ua string) *visitor {
	jar, _ := cookiejar.New(nil)
	return &visitor{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}, ua: ua}
}

// do sends a request, follows redirects, and returns the final status,
// path and page.
func (v *visitor) do(method, path string, form url.Values, header ...string) (int, string, string) {
	v.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, v.base+path, body)
	if err != nil {
		v.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", v.ua)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := v.c.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer res.Body.Close()
	page, err := io.ReadAll(res.Body)
	if err != nil {
		v.t.Fatal(err)
	}
	p := res.Request.URL.Path
	if q := res.Request.URL.RawQuery; q != "" {
		p += "?" + q
	}
	return res.StatusCode, p, string(page)
}

func (v *visitor) login(name, password string, remember bool) {
	v.t.Helper()
	form := url.Values{"name": {name}, "password": {password}}
	if remember {
		form.Set("remember", "1")
	}
	if code, path, page := v.do("POST", "/login", form); code != 200 || path != "/" {
		v.t.Fatalf("login as %s: %d on %s:\n%s", name, code, path, page)
	}
}

var (
	countRe  = regexp.MustCompile(`id="count">(\d+)<`)
	flashRe  = regexp.MustCompile(`id="flash" role="status">([^<]*)<`)
	handleRe = regexp.MustCompile(`name="handle" value="([^"]+)"`)
	labelRe  = regexp.MustCompile(`<td class="label">([^<]*)</td>`)
)

func find(re *regexp.Regexp, page string) string {
	if m := re.FindStringSubmatch(page); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

func findAll(re *regexp.Regexp, page string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

const (
	firefoxMac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0"
	chromeWin  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)

// newHandler builds the app for c, closed when the test ends.
func newHandler(t *testing.T, c config) http.Handler {
	t.Helper()
	h, _, closeAll, err := newServer(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	return h
}

// startApp serves the app for c over HTTP until the test ends.
func startApp(t *testing.T, c config) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(newHandler(t, c))
	t.Cleanup(srv.Close)
	return srv
}

func TestAppMemory(t *testing.T) { testApp(t, config{}) }

func TestAppMySQL(t *testing.T) {
	cfg, table := sqltest.Table(t)
	testApp(t, config{mysqlDSN: cfg.FormatDSN(), table: table})
}

func testApp(t *testing.T, c config) {
	srv := startApp(t, c)
	base, _ := url.Parse(srv.URL)

	laptop := newVisitor(t, srv.URL, firefoxMac)
	if code, path, _ := laptop.do("GET", "/", nil); code != 200 || path != "/login" {
		t.Fatalf("/ logged out: %d on %s, want the login page", code, path)
	}
	code, _, page := laptop.do("POST", "/login", url.Values{"name": {"ann"}, "password": {"Correct horse"}})
	if code != http.StatusUnauthorized || !strings.Contains(page, "wrong password") {
		t.Fatalf("a wrong password: %d", code)
	}
	if cs := laptop.c.Jar.Cookies(base); len(cs) != 0 {
		t.Fatalf("a failed login set cookies: %v", cs)
	}

	laptop.login("ann", "correct horse", true)
	_, _, page = laptop.do("GET", "/", nil)
	if flash := find(flashRe, page); flash != "" {
		t.Fatalf("the flash is shown twice: %q", flash)
	}
	for range 2 {
		laptop.do("POST", "/count", url.Values{})
	}
	if _, _, page = laptop.do("GET", "/", nil); find(countRe, page) != "2" {
		t.Fatalf("after 2 clicks the count is %q", find(countRe, page))
	}

	phone := newVisitor(t, srv.URL, chromeWin)
	phone.login("ann", "correct horse", false)
	other := newVisitor(t, srv.URL, chromeWin)
	other.login("bob", "battery staple", false)

	_, _, page = laptop.do("GET", "/devices", nil)
	if got := findAll(labelRe, page); len(got) != 2 || !strings.Contains(strings.Join(got, ","), "Firefox on macOS") || !strings.Contains(strings.Join(got, ","), "Chrome on Windows") {
		t.Fatalf("Ann's devices: %q, want her Firefox on macOS and Chrome on Windows only", got)
	}
	handles := findAll(handleRe, page)
	if len(handles) != 1 {
		t.Fatalf("Ann's devices page offers %d devices to end, want the 1 other", len(handles))
	}
	// Bob cannot end Ann's device with its handle.
	if _, path, page := other.do("POST", "/devices/end", url.Values{"handle": {handles[0]}}); path != "/devices" || !strings.Contains(page, "already logged out") {
		t.Fatalf("Bob ending Ann's handle: %s %q", path, find(flashRe, page))
	}
	if _, path, _ := phone.do("GET", "/", nil); path != "/" {
		t.Fatal("Bob ended Ann's phone with its handle")
	}
	if _, _, page := laptop.do("POST", "/devices/end", url.Values{"handle": {handles[0]}}); !strings.Contains(find(flashRe, page), "logged out") {
		t.Fatalf("ending the phone: %q", find(flashRe, page))
	}
	if _, path, _ := phone.do("GET", "/", nil); path != "/login" {
		t.Fatalf("the ended phone is on %s, want the login page", path)
	}

	phone.login("ann", "correct horse", false)
	if _, _, page := laptop.do("POST", "/devices/end-others", url.Values{}); !strings.Contains(find(flashRe, page), "Logged out 1 other device.") {
		t.Fatalf("log out all other devices: %q", find(flashRe, page))
	}
	if _, path, _ := phone.do("GET", "/", nil); path != "/login" {
		t.Fatalf("after \"log out all other devices\" the phone is on %s", path)
	}
	if _, path, _ := other.do("GET", "/", nil); path != "/" {
		t.Fatal("\"log out all other devices\" logged Bob out")
	}

	if _, path, _ := laptop.do("POST", "/logout", url.Values{}); path != "/login?out" {
		t.Fatalf("logout led to %s", path)
	}
	if _, path, _ := laptop.do("GET", "/", nil); path != "/login" {
		t.Fatalf("after logout / is %s", path)
	}
}

// TestLoginCookies: a remembered login gets a 30-day cookie, any other a
// browser-session one; both HttpOnly and SameSite=Lax.
func TestLoginCookies(t *testing.T) {
	h := newHandler(t, config{})
	for _, remember := range []bool{true, false} {
		form := url.Values{"name": {"ann"}, "password": {"correct horse"}}
		if remember {
			form.Set("remember", "1")
		}
		req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		cs := rec.Result().Cookies()
		if rec.Code != http.StatusSeeOther || len(cs) != 1 {
			t.Fatalf("remember=%v: %d with cookies %v", remember, rec.Code, cs)
		}
		c := cs[0]
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
			t.Errorf("remember=%v: cookie %s", remember, c)
		}
		if remember && (c.MaxAge < 29*24*3600 || c.MaxAge > 30*24*3600) || !remember && (c.MaxAge != 0 || !c.Expires.IsZero()) {
			t.Errorf("remember=%v: cookie %s", remember, c)
		}
	}
}

// TestCrossOriginRefused: a POST that a browser marks as coming from
// another origin is refused before it reaches the session; the page's
// headers forbid framing and scripts.
func TestCrossOriginRefused(t *testing.T) {
	srv := startApp(t, config{})
	v := newVisitor(t, srv.URL, firefoxMac)
	v.login("ann", "correct horse", false)
	for _, header := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "http://evil.example"},
	} {
		for _, path := range []string{"/count", "/logout", "/devices/end-others", "/login"} {
			if code, _, page := v.do("POST", path, url.Values{}, header...); code != http.StatusForbidden || !strings.Contains(page, `id="refused"`) {
				t.Fatalf("POST %s with %s: %d, want 403 and the refusal page", path, header, code)
			}
		}
	}
	res, err := v.c.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if find(countRe, string(page)) != "0" {
		t.Fatalf("after the refused POSTs: %s", page)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers: %v", res.Header)
	}
}

func TestDeviceLabel(t *testing.T) {
	for ua, want := range map[string]string{
		firefoxMac: "Firefox on macOS",
		chromeWin:  "Chrome on Windows",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36":                           "Headless Chrome on Linux",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1": "Safari on iPhone",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36":                   "Chrome on Android",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0":           "Edge on Windows",
		"curl/8.5.0": "curl",
		"":           "A browser",
	} {
		if got := deviceLabel(ua); got != want {
			t.Errorf("deviceLabel(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		login, password string
		ok              bool
	}{
		{"ann", "correct horse", true},
		{"bob", "battery staple", true},
		{"ann", "battery staple", false},
		{"ann", "correct horse ", false},
		{"ann", "", false},
		{"nobody", "", false},
		{"", "", false},
	} {
		if u, ok := checkPassword(tc.login, tc.password); ok != tc.ok || ok && u.Login != tc.login {
			t.Errorf("checkPassword(%q, %q) = %v, %v", tc.login, tc.password, u.Login, ok)
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, c := range []config{
		{addr: "127.0.0.1:0", tlsCert: "cert.pem"},
		{addr: "127.0.0.1:0", mysqlDSN: "not a dsn"},
	} {
		if err := run(context.Background(), c); err == nil {
			t.Errorf("run accepted %+v", c)
		}
	}
}

// TestLoginOverLogin: logging in as Bob over Ann's login starts a new
// session: none of Ann's values, devices or owner carry over, and Ann's
// old session is gone.
func TestLoginOverLogin(t *testing.T) {
	srv := startApp(t, config{})
	v := newVisitor(t, srv.URL, firefoxMac)
	v.login("ann", "correct horse", true)
	v.do("POST", "/count", url.Values{})
	base, _ := url.Parse(srv.URL)
	annCookie := v.c.Jar.Cookies(base)[0].Value

	v.login("bob", "battery staple", false)
	_, _, page := v.do("GET", "/", nil)
	if find(countRe, page) != "0" || !strings.Contains(page, `<span id="user">Bob</span>`) {
		t.Fatalf("after logging in as Bob over Ann: %s", page)
	}
	if _, _, page := v.do("GET", "/devices", nil); len(findAll(labelRe, page)) != 1 {
		t.Fatalf("Bob's devices after a login over Ann's: %q", findAll(labelRe, page))
	}
	old := newVisitor(t, srv.URL, firefoxMac)
	old.c.Jar.SetCookies(base, []*http.Cookie{{Name: "SESSION_ID", Value: annCookie}})
	if _, path, _ := old.do("GET", "/", nil); path != "/login" {
		t.Fatalf("Ann's session survived a login over it: %s", path)
	}
}
