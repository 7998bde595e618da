package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The app under test is examples/login, built once from this repository
// into a temporary folder and started as a process of its own for each
// test, on a free loopback port, as `go run ./examples/login` would run.
var (
	buildOnce sync.Once
	buildDir  string
	appBin    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func buildApp(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "e2e-login-")
		if buildErr != nil {
			return
		}
		appBin = filepath.Join(buildDir, "login")
		cmd := exec.Command("go", "build", "-o", appBin, "./examples/login")
		cmd.Dir = ".." // the session module's root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./examples/login: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return appBin
}

// app is one running examples/login.
type app struct {
	URL string // http://127.0.0.1:port or https://...
	log *lockedBuffer
}

var listening = regexp.MustCompile(`listening on (https?://\S+)`)

// startApp starts examples/login with args on a free loopback port, and
// stops it when the test ends; the test's failure shows its log.
func startApp(t *testing.T, args ...string) *app {
	t.Helper()
	chromiumPath(t) // every test here drives a browser: skip (or fail) before building anything
	bin := buildApp(t)
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &app{log: new(lockedBuffer)}
	cmd.Stdout = a.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			a.log.Write([]byte(line + "\n"))
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case url <- m[1]:
				default:
				}
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // a graceful shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("examples/login's log:\n%s", a.log)
		}
	})
	select {
	case a.URL = <-url:
		return a
	case err := <-exited:
		t.Fatalf("examples/login exited before listening: %v\n%s", err, a.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("examples/login did not say where it listens within 30s:\n%s", a.log)
	}
	return nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// chromiumPath finds the browser. Without one the test skips, except in CI
// (CI=true), where a browser test that does not run is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("E2E_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const how = "no Chromium found: install Debian's (apt-get install chromium) or name one in E2E_CHROMIUM"
	if os.Getenv("CI") == "true" {
		t.Fatal(how + "; CI=true, so the browser tests fail instead of skipping")
	}
	t.Skip(how + "; skipping the browser tests")
	return ""
}

// browser is one headless Chromium process on one profile folder (its
// user-data-dir: cookies, history), as a person's browser would be.
type browser struct {
	t      *testing.T
	ctx    context.Context // its first tab; the process lives as long as it
	closed bool
	stop   func()
}

// newProfile is a fresh, empty profile folder, removed after the test.
func newProfile(t *testing.T) string {
	return t.TempDir()
}

// startBrowser starts Chromium on profile with the flags every test uses
// and opts, and closes it when the test ends.
func startBrowser(t *testing.T, profile string, opts ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	exe := chromiumPath(t)
	all := append(chromedp.DefaultExecAllocatorOptions[:], // headless, no-first-run, disable-background-networking, disable-sync, ...
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		// This machine has no network but loopback: nothing in the
		// background may try to reach out (updates, field trials).
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-field-trial-config", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1024, 1000),
	)
	if os.Geteuid() == 0 {
		all = append(all, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	all = append(all, opts...)
	// Not the test's context: that one is cancelled before the cleanups
	// run, and the browser must close gracefully to write its cookies.
	base, cancelBase := context.WithTimeout(context.Background(), 2*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(base, all...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, stop: func() {
		cancelCtx()
		cancelAlloc()
		cancelBase()
	}}
	if err := chromedp.Do(ctx); err != nil { // starts the process
		b.stop()
		t.Fatalf("starting %s: %v", exe, err)
	}
	t.Cleanup(b.close)
	return b
}

// close shuts the browser down the way a person quits it: gracefully, so
// that it writes its persistent cookies to the profile and drops its
// session cookies.
func (b *browser) close() {
	if b.closed {
		return
	}
	b.closed = true
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	err := chromedp.Cancel(ctx)
	cancel()
	b.stop()
	if err != nil {
		b.t.Errorf("closing the browser: %v", err)
	}
}

// tab is one browser tab.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// tab returns the browser's first tab.
func (b *browser) tab() *tab { return &tab{t: b.t, ctx: b.ctx} }

// newTab opens another tab in the same browser (same cookies).
func (b *browser) newTab() *tab {
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatal(err)
	}
	return &tab{t: b.t, ctx: ctx}
}

// privateWindow opens a tab in a new browser context of tb's browser
// process: a cookie jar of its own, like a private window.
func (tb *tab) privateWindow() *tab {
	ctx, cancel := chromedp.NewContext(tb.ctx, chromedp.WithNewBrowserContext())
	tb.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		tb.t.Fatal(err)
	}
	return &tab{t: tb.t, ctx: ctx}
}

const actionTimeout = 20 * time.Second

func run[T any](tb *tab, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

func must[T any](tb *tab, a chromedp.Action[T]) T {
	tb.t.Helper()
	v, err := run(tb, a)
	if err != nil {
		tb.t.Fatal(err)
	}
	return v
}

func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	return must(tb, chromedp.Evaluate[T](js))
}

// open loads url and returns the final response's status.
func (tb *tab) open(url string) int {
	tb.t.Helper()
	return int(must(tb, chromedp.NavigateResponse(url)).Status)
}

// reload reloads the page and returns the response's status.
func (tb *tab) reload() int {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, chromedp.Reload())
	if err != nil {
		tb.t.Fatal(err)
	}
	return int(res.Status)
}

// submit clicks the button sel, waits for the page the form leads to
// (after its redirect), and returns that page's status.
func (tb *tab) submit(sel string) int {
	tb.t.Helper()
	status, err := tb.trySubmit(sel)
	if err != nil {
		tb.t.Fatal(err)
	}
	return status
}

func (tb *tab) trySubmit(sel string) (int, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		return 0, fmt.Errorf("click %s: %w", sel, err)
	}
	return int(res.Status), nil
}

func (tb *tab) fill(sel, value string) {
	tb.t.Helper()
	must(tb, chromedp.Steps(chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), value)))
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return strings.TrimSpace(must(tb, chromedp.Text(chromedp.CSS(sel))))
}

// has reports whether the page has an element sel, without waiting.
func (tb *tab) has(sel string) bool {
	tb.t.Helper()
	return eval[bool](tb, fmt.Sprintf("document.querySelector(%q) !== null", sel))
}

// count is the number of elements sel.
func (tb *tab) count(sel string) int {
	tb.t.Helper()
	return eval[int](tb, fmt.Sprintf("document.querySelectorAll(%q).length", sel))
}

// path is the page's path and query.
func (tb *tab) path() string {
	tb.t.Helper()
	return eval[string](tb, "location.pathname + location.search")
}

// cookies are the browser's cookies for the page, as the browser stores
// them (including the HttpOnly ones that scripts cannot see).
func (tb *tab) cookies() []*network.Cookie {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		tb.t.Fatal(err)
	}
	return res.Cookies
}

func (tb *tab) cookie(name string) *network.Cookie {
	tb.t.Helper()
	for _, c := range tb.cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// login logs in on the app at base through its form.
func (tb *tab) login(base, name, password string, remember bool) {
	tb.t.Helper()
	if got := tb.open(base + "/login"); got != 200 {
		tb.t.Fatalf("GET /login: %d", got)
	}
	tb.fill("#name", name)
	tb.fill("#password", password)
	if remember {
		must(tb, chromedp.Click(chromedp.CSS("#remember")))
	}
	if got := tb.submit("#submit"); got != 200 {
		tb.t.Fatalf("logging in as %s: status %d on %s", name, got, tb.path())
	}
	if p := tb.path(); p != "/" {
		tb.t.Fatalf("logging in as %s led to %s, want /", name, p)
	}
}

// screenshotDir is where screenshots go: e2e/screenshots, kept by CI.
func screenshotDir() string {
	if d := os.Getenv("E2E_SCREENSHOTS"); d != "" {
		return d
	}
	return "screenshots"
}

// screenshot saves what the tab shows as screenshots/name.png, after
// checking that it is a picture of a page and not a blank one.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	buf := must(tb, chromedp.CaptureScreenshot())
	if err := checkNotBlank(buf); err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := screenshotDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// checkNotBlank decodes a PNG and requires a picture with something on it:
// its brightness varies (a standard deviation of at least 8 out of 255),
// with at least 2% of the pixels off the background colour and at least 32
// colours (text is anti-aliased).
func checkNotBlank(buf []byte) error {
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		return fmt.Errorf("not a PNG: %w", err)
	}
	b := img.Bounds()
	if b.Dx() < 200 || b.Dy() < 200 {
		return fmt.Errorf("only %dx%d pixels", b.Dx(), b.Dy())
	}
	colors := map[uint32]int{}
	var n, sum, sumSq float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[(r>>8)<<16|(g>>8)<<8|bl>>8]++
			l := (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)) / 257
			n++
			sum += l
			sumSq += l * l
		}
	}
	mean := sum / n
	sd := math.Sqrt(math.Max(0, sumSq/n-mean*mean))
	most := 0
	for _, c := range colors {
		most = max(most, c)
	}
	off := 1 - float64(most)/n
	if sd < 8 || off < 0.02 || len(colors) < 32 {
		return fmt.Errorf("looks blank: brightness sd %.1f, %.1f%% of pixels off the background, %d colours", sd, 100*off, len(colors))
	}
	return nil
}
