package session_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/seed013449c2/session"
)

// A login form's "remember me" box: a remembered login gets a persistent
// cookie and may stay idle for 30 days; any other gets a cookie the
// browser drops when it closes, and the Options' idle timeout (24 hours).
// The server enforces either, whatever the browser does with the cookie.
func ExampleSession_Remember() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Regenerate()
		s.SetOwner("user-42")
		s.Set("user", "ann")
		if r.FormValue("remember") == "on" {
			s.Remember(30*24*time.Hour, 30*24*time.Hour)
		} else {
			s.ForgetOnClose() // whatever Options.Cookie.MaxAge says
		}
	})
	srv := httptest.NewServer(session.Middleware(session.Options{})(mux))
	defer srv.Close()

	for _, form := range []url.Values{{"remember": {"on"}}, {}} {
		res, err := srv.Client().PostForm(srv.URL+"/login", form)
		if err != nil {
			log.Fatal(err)
		}
		res.Body.Close()
		for _, c := range res.Cookies() {
			fmt.Printf("remember=%q: %s Max-Age=%d\n", form.Get("remember"), c.Name, c.MaxAge)
		}
	}
	// Output:
	// remember="on": SESSION_ID Max-Age=2592000
	// remember="": SESSION_ID Max-Age=0
}

// A "your devices" page: each login names its session after the device,
// the user sees their sessions, the most recently seen first, and ends one
// of them by its handle (which, unlike the id, logs no one in) or all but
// the current one.
func ExampleSession_Devices() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Regenerate()
		s.SetOwner("user-42")
		s.Set("user", "ann")
		s.SetLabel(r.FormValue("device")) // say, from the User-Agent
	})
	mux.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		list, err := session.FromContext(r.Context()).Devices()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("POST /devices/end", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).EndDevice(r.FormValue("handle")); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
		}
	})
	mux.HandleFunc("POST /devices/others", func(w http.ResponseWriter, r *http.Request) {
		if _, err := session.FromContext(r.Context()).RevokeOwner(true); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := httptest.NewServer(session.Middleware(session.Options{})(mux))
	defer srv.Close()

	browser := func(device string) *http.Client {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: srv.Client().Transport}
		examplePost(c, srv.URL+"/login", url.Values{"device": {device}})
		return c
	}
	laptop := browser("Firefox on Linux")
	browser("Safari on iPhone")
	browser("Chrome on Windows")

	show := func(title string) []session.Device {
		res, err := laptop.Get(srv.URL + "/devices")
		if err != nil {
			log.Fatal(err)
		}
		defer res.Body.Close()
		var list []session.Device
		if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
			log.Fatal(err)
		}
		fmt.Println(title)
		for _, d := range list {
			if d.Current {
				fmt.Printf("  %s (this device)\n", d.Label)
			} else {
				fmt.Printf("  %s\n", d.Label)
			}
		}
		return list
	}
	list := show("your devices:")
	examplePost(laptop, srv.URL+"/devices/end", url.Values{"handle": {list[1].Handle}})
	show("after ending the iPhone:")
	examplePost(laptop, srv.URL+"/devices/others", nil)
	show("after logging out the others:")
	// Output:
	// your devices:
	//   Chrome on Windows
	//   Safari on iPhone
	//   Firefox on Linux (this device)
	// after ending the iPhone:
	//   Chrome on Windows
	//   Firefox on Linux (this device)
	// after logging out the others:
	//   Firefox on Linux (this device)
}

// examplePost sends a form and checks the answer.
func examplePost(c *http.Client, u string, form url.Values) {
	res, err := c.PostForm(u, form)
	if err != nil {
		log.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		log.Fatalf("POST %s: %s", u, res.Status)
	}
}
