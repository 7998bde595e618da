// Package koa is a migration bridge: a session store over the session
// table of a running Koa app, so that the Koa app and a Go app built on
// package session serve the same visitors from the same MySQL table while
// routes move from one to the other. A visitor logged in on a Koa route
// stays logged in on a Go route, and back.
//
// It speaks the Koa2 tutorial's session stack (koa-session-minimal 3.x over
// koa-mysql-session 0.0.2): Koa's table, row ids and JSON, exactly as Koa
// writes them, and the Koa app needs no change. The test in the module's
// interop directory proves it against the real Koa app run with Node.
//
//	db, err := sql.Open("mysql", "user:pass@tcp(db:3306)/app") // the Koa app's database
//	store, err := koa.NewStore(db, koa.Options{})
//	defer store.Close() // stops the cleanup; db stays yours
//	m, err := session.New(session.Options{
//		Store:       store,
//		CookieName:  "SESSION_ID",   // Koa's key (the default here too)
//		IdleTimeout: 24 * time.Hour, // Koa's cookie maxAge; 0 there means one day
//	})
//
// # What the bridge gives up
//
// Sharing Koa's table weakens guarantees that package session keeps with
// its own stores: the table holds the session ids themselves, not hashes
// (Koa looks rows up by id), ids are 192 bits as Koa draws them, there is
// no owner column (no Revoke), no absolute Lifetime, and Koa's own writes
// (a blind upsert, no lock) can overwrite Go's or bring back a session Go
// ended. [Store] says what is kept and what is not; README.md in this
// directory is the migration guide: both sides' setup, the table, what
// changes for visitors, and when both apps write one row.
//
// # End of life
//
// The bridge is meant to be removed. Once no route is served by Koa any
// more, switch the Go app to [session.MySQLStore] (or any other store) and
// drop the Koa table: ids and store keys differ, so the sessions in Koa's
// table end then, and visitors start fresh ones (the logged-in log in
// again). The weakened guarantees end with the bridge.
package koa
