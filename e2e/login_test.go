package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

const cookieName = "SESSION_ID" // the session package's default, over plain HTTP

// counterValue reads the counter page's count.
func counterValue(tb *tab) int {
	tb.t.Helper()
	n, err := strconv.Atoi(tb.text("#count"))
	if err != nil {
		tb.t.Fatalf("count: %v", err)
	}
	return n
}

// TestLoginFlashCounterReload: a wrong password is refused; a login shows
// its welcome message once; the counter counts each click; a reload keeps
// both the count and the login.
func TestLoginFlashCounterReload(t *testing.T) {
	a := startApp(t)
	tb := startBrowser(t, newProfile(t)).tab()

	if got := tb.open(a.URL + "/"); got != 200 || tb.path() != "/login" {
		t.Fatalf("/ before login: %d on %s, want the login page", got, tb.path())
	}
	tb.screenshot("login")

	tb.fill("#name", "ann")
	tb.fill("#password", "not the password")
	if got := tb.submit("#submit"); got != http.StatusUnauthorized {
		t.Fatalf("a wrong password answered %d, want 401", got)
	}
	if msg := tb.text("#error"); !strings.Contains(msg, "wrong password") {
		t.Fatalf("a wrong password says %q", msg)
	}
	if c := tb.cookie(cookieName); c != nil {
		t.Fatalf("a failed login set a session cookie: %+v", c)
	}
	tb.screenshot("login-error")

	tb.login(a.URL, "ann", "correct horse", false)
	if flash := tb.text("#flash"); !strings.Contains(flash, "Welcome, Ann!") {
		t.Fatalf("after login the flash says %q", flash)
	}
	tb.screenshot("counter-flash")
	if got := tb.reload(); got != 200 || tb.has("#flash") {
		t.Fatalf("the flash is still shown after a reload (status %d)", got)
	}
	if n := counterValue(tb); n != 0 {
		t.Fatalf("a new login's count is %d", n)
	}
	for want := 1; want <= 3; want++ {
		if got := tb.submit("#click"); got != 200 {
			t.Fatalf("click %d: status %d", want, got)
		}
		if n := counterValue(tb); n != want {
			t.Fatalf("after %d clicks the count is %d", want, n)
		}
	}
	if got := tb.reload(); got != 200 || tb.path() != "/" {
		t.Fatalf("reload: %d on %s", got, tb.path())
	}
	if n, user := counterValue(tb), tb.text("#user"); n != 3 || user != "Ann" {
		t.Fatalf("after a reload: count %d, user %q; want 3 and Ann", n, user)
	}
	tb.screenshot("counter")
}

// TestSessionCookieHttpOnly: the session cookie is in the browser with
// HttpOnly and SameSite=Lax, and page scripts cannot read it.
func TestSessionCookieHttpOnly(t *testing.T) {
	a := startApp(t)
	tb := startBrowser(t, newProfile(t)).tab()
	tb.login(a.URL, "ann", "correct horse", false)

	c := tb.cookie(cookieName)
	if c == nil {
		t.Fatalf("no %s cookie after login; the browser has %v", cookieName, names(tb.cookies()))
	}
	if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Path != "/" || c.Secure {
		t.Fatalf("cookie %s: HttpOnly %v, SameSite %q, Path %q, Secure %v; want HttpOnly, Lax, /, not Secure over HTTP",
			c.Name, c.HTTPOnly, c.SameSite, c.Path, c.Secure)
	}
	if js := eval[string](tb, "document.cookie"); strings.Contains(js, cookieName) || strings.Contains(js, c.Value) {
		t.Fatalf("document.cookie shows the session cookie: %q", js)
	}
}

// TestTLSHostCookie: served over HTTPS with a certificate of its own, the
// app's __Host- cookie is accepted by the browser with Secure, Path=/ and
// no Domain, and is sent back: the login holds across pages.
func TestTLSHostCookie(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, spki := selfSignedCert(t, dir)
	a := startApp(t, "-tls-cert", certFile, "-tls-key", keyFile)
	if !strings.HasPrefix(a.URL, "https://") {
		t.Fatalf("the app listens on %s, want https", a.URL)
	}
	// Only this browser trusts this one key; it still checks everything
	// else about the certificate (--user-data-dir is needed for the flag).
	tb := startBrowser(t, newProfile(t), chromedp.Flag("ignore-certificate-errors-spki-list", spki)).tab()
	tb.login(a.URL, "ann", "correct horse", false)

	c := tb.cookie("__Host-SESSION_ID")
	if c == nil {
		t.Fatalf("no __Host-SESSION_ID cookie after an HTTPS login; the browser has %v", names(tb.cookies()))
	}
	if !c.Secure || !c.HTTPOnly || c.Path != "/" || strings.HasPrefix(c.Domain, ".") {
		t.Fatalf("cookie %s: Secure %v, HttpOnly %v, Path %q, Domain %q; want Secure, HttpOnly, / and host-only", c.Name, c.Secure, c.HTTPOnly, c.Path, c.Domain)
	}
	tb.submit("#click")
	if got := tb.open(a.URL + "/devices"); got != 200 || tb.path() != "/devices" {
		t.Fatalf("/devices over HTTPS: %d on %s: the cookie was not sent back", got, tb.path())
	}
	tb.open(a.URL + "/")
	if n := counterValue(tb); n != 1 {
		t.Fatalf("count %d over HTTPS, want 1", n)
	}
	tb.screenshot("tls-counter")
}

// TestCrossOriginFormRefused: a page on another origin whose form posts to
// the app (a click on "Win a prize") does not act as the logged-in user:
// neither from another port of the same host (same-site, so the SameSite=Lax
// cookie goes along and only http.CrossOriginProtection stands in the
// way) nor from another host (cross-site: the cookie stays home too).
func TestCrossOriginFormRefused(t *testing.T) {
	a := startApp(t)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>prizes</title><h1>You won!</h1>
<form method="post" action="%[1]s/count"><button id="count">Claim your prize</button></form>
<form method="post" action="%[1]s/logout"><button id="logout">Unsubscribe</button></form>
<form method="post" action="%[1]s/devices/end-others"><button id="others">Secure your account</button></form>`, a.URL)
	}))
	defer evil.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(evil.URL, "http://"))

	tb := startBrowser(t, newProfile(t)).tab()
	tb.login(a.URL, "ann", "correct horse", false)
	tb.submit("#click") // count 1

	for _, origin := range []string{evil.URL, "http://localhost:" + port} {
		for _, button := range []string{"#count", "#logout", "#others"} {
			tb.open(origin + "/")
			if got := tb.submit(button); got != http.StatusForbidden || !tb.has("#refused") {
				t.Fatalf("a form on %s (%s) posting to the app got %d on %s, want 403 and the refusal page", origin, button, got, tb.path())
			}
		}
	}
	tb.screenshot("refused")
	tb.open(a.URL + "/")
	if tb.path() != "/" || counterValue(tb) != 1 {
		t.Fatalf("after the cross-origin forms: %s with count %s, want still logged in with count 1", tb.path(), tb.text("body"))
	}
}

// TestRememberMeSurvivesRestart: a "remember me" login holds after the
// browser is closed and started again on the same profile folder; a login
// without it ends with the browser.
func TestRememberMeSurvivesRestart(t *testing.T) {
	a := startApp(t)
	for _, remember := range []bool{true, false} {
		t.Run(fmt.Sprintf("remember=%v", remember), func(t *testing.T) {
			profile := newProfile(t)
			b := startBrowser(t, profile)
			tb := b.tab()
			tb.login(a.URL, "ann", "correct horse", remember)
			tb.submit("#click")
			c := tb.cookie(cookieName)
			switch {
			case c == nil:
				t.Fatal("no session cookie after login")
			case remember && (c.Session || time.Unix(int64(c.Expires), 0).Before(time.Now().Add(29*24*time.Hour))):
				t.Fatalf("a remembered login's cookie: session %v, expires %v; want a persistent one for 30 days", c.Session, time.Unix(int64(c.Expires), 0))
			case !remember && !c.Session:
				t.Fatalf("a browser-session login's cookie expires %v; want none (a session cookie)", time.Unix(int64(c.Expires), 0))
			}
			b.close()

			tb = startBrowser(t, profile).tab()
			tb.open(a.URL + "/")
			switch {
			case remember && tb.path() != "/":
				t.Fatalf("after a restart a remembered login is on %s, want still logged in", tb.path())
			case remember && counterValue(tb) != 1:
				t.Fatalf("after a restart the count is %d, want 1", counterValue(tb))
			case !remember && tb.path() != "/login":
				t.Fatalf("after a restart a browser-session login is on %s, want the login page", tb.path())
			}
		})
	}
}

// TestTwoTabsConcurrentClicks: two tabs of one browser click the counter
// at the same time; every click counts.
func TestTwoTabsConcurrentClicks(t *testing.T) {
	const clicks = 12
	a := startApp(t)
	b := startBrowser(t, newProfile(t))
	b.tab().login(a.URL, "ann", "correct horse", false)
	tabs := []*tab{b.tab(), b.newTab()}
	tabs[1].open(a.URL + "/")
	var wg sync.WaitGroup
	errs := make(chan error, len(tabs)*clicks)
	for _, tb := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range clicks {
				if status, err := tb.trySubmit("#click"); err != nil || status != 200 {
					errs <- fmt.Errorf("click: status %d, %v", status, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tabs[0].reload()
	if n := counterValue(tabs[0]); n != 2*clicks {
		t.Fatalf("two tabs clicked %d times each, the count is %d", clicks, n)
	}
}

// TestLogoutInOneTabEndsOther: after a logout in one tab, the other tab's
// stale page cannot use the session: its next click leads to the login
// page, and nothing is counted.
func TestLogoutInOneTabEndsOther(t *testing.T) {
	a := startApp(t)
	b := startBrowser(t, newProfile(t))
	one := b.tab()
	one.login(a.URL, "ann", "correct horse", false)
	one.submit("#click")
	two := b.newTab()
	two.open(a.URL + "/")
	if n := counterValue(two); n != 1 {
		t.Fatalf("the second tab shows count %d, want 1", n)
	}

	if got := one.submit("#logout"); got != 200 || one.path() != "/login?out" || !one.has("#notice") {
		t.Fatalf("logout led to %d on %s", got, one.path())
	}
	one.screenshot("logged-out")
	if got := two.submit("#click"); got != 200 || two.path() != "/login" {
		t.Fatalf("a click in the other tab after logout led to %d on %s, want the login page", got, two.path())
	}
	if c := two.cookie(cookieName); c != nil {
		t.Fatalf("a session cookie is back after logout: %+v", c)
	}
	two.login(a.URL, "ann", "correct horse", false)
	if n := counterValue(two); n != 0 {
		t.Fatalf("after logging in again the count is %d: the click after logout counted in a new session, or the old one came back", n)
	}
}

// TestEndDeviceLogsOutOtherBrowser: Ann is logged in on two browsers with
// profiles of their own (and Bob in a private window); her devices page
// lists her two, labelled by browser, and not Bob's; ending the other one
// logs that browser out and keeps this one; "log out all other devices"
// does the same for every other one.
func TestEndDeviceLogsOutOtherBrowser(t *testing.T) {
	a := startApp(t)
	laptop := startBrowser(t, newProfile(t)).tab()
	phone := startBrowser(t, newProfile(t),
		chromedp.UserAgent("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0")).tab()
	laptop.login(a.URL, "ann", "correct horse", true)
	phone.login(a.URL, "ann", "correct horse", false)
	bob := laptop.privateWindow()
	bob.login(a.URL, "bob", "battery staple", false)

	laptop.open(a.URL + "/devices")
	if n := laptop.count("tr.device"); n != 2 {
		t.Fatalf("Ann's devices page lists %d devices, want her 2 (and not Bob's)", n)
	}
	if got := laptop.text("tr.current td.label"); got != "Headless Chrome on Linux" {
		t.Fatalf("this device is labelled %q", got)
	}
	if got := laptop.text("tr.device:not(.current) td.label"); got != "Firefox on macOS" {
		t.Fatalf("the other device is labelled %q", got)
	}
	html := eval[string](laptop, "document.documentElement.outerHTML")
	for _, c := range laptop.cookies() {
		if strings.Contains(html, c.Value) {
			t.Fatal("the devices page contains the session id")
		}
	}
	laptop.screenshot("devices")

	if got := laptop.submit("tr.device:not(.current) button.end"); got != 200 || laptop.path() != "/devices" {
		t.Fatalf("ending the other device led to %d on %s", got, laptop.path())
	}
	if n := laptop.count("tr.device"); n != 1 || !strings.Contains(laptop.text("#flash"), "logged out") {
		t.Fatalf("after ending the other device: %d listed, flash %q", n, laptop.text("body"))
	}
	laptop.screenshot("devices-ended")
	if phone.reload(); phone.path() != "/login" {
		t.Fatalf("the ended browser is still on %s, want the login page", phone.path())
	}
	if bob.reload(); bob.path() != "/" || bob.text("#user") != "Bob" {
		t.Fatalf("Bob was logged out too: %s", bob.path())
	}

	phone.login(a.URL, "ann", "correct horse", false)
	laptop.open(a.URL + "/devices")
	if got := laptop.submit("#end-others"); got != 200 || !strings.Contains(laptop.text("#flash"), "Logged out 1 other device") {
		t.Fatalf("log out all other devices: %d, %q", got, laptop.text("body"))
	}
	if phone.reload(); phone.path() != "/login" {
		t.Fatalf("after \"log out all other devices\" the other browser is on %s", phone.path())
	}
	if laptop.reload(); laptop.path() != "/devices" {
		t.Fatalf("\"log out all other devices\" logged out this one too: %s", laptop.path())
	}
}

func names(cs []*network.Cookie) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// selfSignedCert writes a certificate for 127.0.0.1 and localhost and its
// key to dir, and returns their files and the base64 SHA-256 of its public
// key, which Chromium's --ignore-certificate-errors-spki-list takes.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile, spki string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "examples/login e2e"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pubDER)
	return certFile, keyFile, base64.StdEncoding.EncodeToString(sum[:])
}
