// Package e2e holds the browser tests of examples/login: headless Chromium,
// driven by chromedp, against the example built from this repository and
// run as its own process. It is a module of its own so that the session
// module does not depend on a browser driver.
//
//	cd e2e && go test ./...
//
// The tests need Debian's chromium (apt-get install chromium), or a
// Chromium or Chrome named by $E2E_CHROMIUM or found on $PATH. Without
// one they skip, unless CI=true, where they fail. They write a screenshot
// of every page they visit to e2e/screenshots/ ($E2E_SCREENSHOTS to
// change it), each checked to be more than a blank page.
package e2e
