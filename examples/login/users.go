//go:build go1.25

package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"
)

// user is a demo account. A real app keeps users in its database with a
// slow password hash (bcrypt, scrypt or argon2id from golang.org/x/crypto)
// instead of the password itself; this demo shows its passwords on the
// login page anyway.
type user struct {
	ID       string // the session's owner: never shown, never changes
	Name     string // what the pages call the user
	Login    string // what the user types
	Password string
}

// users is the fixed demo list, by login name.
var users = map[string]user{
	"ann": {ID: "u1", Name: "Ann", Login: "ann", Password: "correct horse"},
	"bob": {ID: "u2", Name: "Bob", Login: "bob", Password: "battery staple"},
}

// userByID finds the user a session names.
func userByID(id string) (user, bool) {
	for _, u := range users {
		if u.ID == id && id != "" {
			return u, true
		}
	}
	return user{}, false
}

// demoUsers lists the demo accounts for the login page.
func demoUsers() []user {
	list := make([]user, 0, len(users))
	for _, u := range users {
		list = append(list, u)
	}
	slices.SortFunc(list, func(a, b user) int { return strings.Compare(a.Login, b.Login) })
	return list
}

// checkPassword reports whether password is login's. It compares SHA-256
// digests in constant time, so neither the time taken nor the passwords'
// lengths tell an attacker how close a guess came, and an unknown login
// costs the same as a known one.
func checkPassword(login, password string) (user, bool) {
	u, known := users[login]
	want := sha256.Sum256([]byte(u.Password)) // "" for an unknown login: same work
	got := sha256.Sum256([]byte(password))
	match := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	return u, known && match
}
