// Package session gives net/http servers server-side sessions: the browser
// holds only a random id in a cookie (SESSION_ID by default), and the values
// live in a [Store] — in memory by default, or in a MySQL table that several
// app servers share.
//
// # Quick start
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
//		s := session.FromContext(r.Context())
//		s.Regenerate()          // a new id at every privilege change
//		s.SetOwner("user-42")   // so Revoke can end all of this user's sessions
//		s.Set("user", "ann")
//		http.Redirect(w, r, "/", http.StatusSeeOther) // saved before this byte
//	})
//	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
//		s := session.FromContext(r.Context())
//		s.Set("visits", s.GetInt("visits")+1)
//		json.NewEncoder(w).Encode(s) // {"user":"ann","visits":3}
//	})
//	http.ListenAndServe(":3000", session.Middleware(session.Options{})(mux))
//
// # Guarantees
//
// Each is proven by a test through real HTTP.
//
//   - Nothing is lost. Changes are saved before the response's first byte,
//     so a redirect after login finds the user logged in. Concurrent
//     requests of one session that change different keys both persist: a
//     commit writes only this request's changes onto the freshest stored
//     state (compare-and-swap with retry). A destroyed or regenerated
//     session is never brought back by a slower request.
//   - Strict ids. Ids are 256 random bits from crypto/rand. An id the
//     server did not issue is never adopted; a malformed one costs no store
//     call. Stores see only the SHA-256 of an id, so a leaked table logs no
//     one in.
//   - Cheap. No store call without a well-formed cookie, at most one read
//     per request, no write and no Set-Cookie when nothing changed (the
//     idle expiry is refreshed at most once per tenth of IdleTimeout), and
//     no response buffering: Flush, Hijack and http.ResponseController
//     work through the middleware. Values stay JSON until read, so a
//     request decodes only the keys it reads.
//   - Secure cookies. HttpOnly, SameSite=Lax, Path=/, host-only, and Secure
//     when the request came over TLS; `__Host-` and `__Secure-` names are
//     checked when the middleware is built. Responses that set the cookie
//     carry Cache-Control: no-store; responses to requests that carried it
//     carry Vary: Cookie.
//   - Loud errors. A store failure goes to Options.ErrorHandler (500 by
//     default) and the client's cookie is left alone, so the session is
//     intact once the store is back.
//   - Server-side timeouts. IdleTimeout and the absolute Lifetime are
//     checked on every read, whatever the cookie or the store's cleanup say.
//
// # Values
//
// Values are stored as JSON: anything encoding/json can encode. Read them
// back with the typed getters ([Session.GetInt], [Session.GetString], ...),
// which give the right type after a round trip through any store, or with
// [Session.Decode] for structs.
//
// # Remember me and your devices
//
// A login handler can give one session a persistent cookie and a longer
// idle timeout and lifetime ([Session.Remember]), or a browser-session
// cookie ([Session.ForgetOnClose]); the server enforces the choice, and
// Regenerate keeps it. With a store that implements [DeviceStore] (memory,
// MySQL), [Session.Devices] lists the owner's live sessions with the labels
// the app gave them ([Session.SetLabel]) and [Session.EndDevice] ends one by
// a random handle, which is not an id and logs no one in.
package session
