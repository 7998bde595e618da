// Package bench compares github.com/seed013449c2/session with
// github.com/alexedwards/scs/v2 and github.com/gorilla/sessions on the same
// handlers. It lives in a module of its own so that the library's module
// does not depend on its peers. Everything is in the _test.go files; see
// README.md for how to run the benchmarks and what each one measures.
package bench
