package session

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// "Your devices": the live sessions of one owner as their user sees them,
// each named by a random handle that is not its id, and ended one by one.

// Device is one live session of an owner, as [Session.Devices] lists it:
// what its user needs to recognise it, and nothing that could log anyone
// in.
type Device struct {
	// Handle names the session for [Session.EndDevice]. It is random,
	// unrelated to the session's id and store key, and logs no one in, so
	// it may be shown and sent back in a form. Empty for a session
	// created before its store kept handles.
	Handle string
	// Label is what the app called the session ([Session.SetLabel]).
	// It came from the app, often from a request header: escape it.
	Label string
	// Created is when the session was first stored.
	Created time.Time
	// LastSeen is when the session last had a request, to within a tenth
	// of its idle timeout (the expiry is refreshed that often), and
	// earlier near its absolute deadline, where the expiry stops moving.
	LastSeen time.Time
	// Current marks the session of the request that asked.
	Current bool
}

const (
	// maxDevices bounds what one Devices call reads from the store.
	maxDevices = 1000
	// maxLabel is the most characters a label keeps.
	maxLabel = 255
	// handleBytes is the randomness of a handle: 128 bits, 22 characters
	// of base64url, which no id (32 bytes, 43 characters; 24 and 32 for
	// Koa) can be mistaken for.
	handleBytes = 16
)

// newHandle returns a fresh handle. crypto/rand never fails on supported
// platforms.
func newHandle() string {
	b := make([]byte, handleBytes)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// SetLabel names the session in its owner's list of devices, for example
// "Firefox on macOS" from the User-Agent. The label is cut to 255
// characters and invalid UTF-8 is replaced, so any header may be passed;
// setting the label it already has costs nothing, so a handler may call it
// on every request. The label is kept by Regenerate. A store that cannot
// keep it (the Koa bridge) fails the commit with an error wrapping
// errors.ErrUnsupported.
func (s *Session) SetLabel(label string) {
	label = strings.ToValidUTF8(label, "\uFFFD")
	n := 0
	for i := range label { // cut at the rune maxLabel, without copying
		if n == maxLabel {
			label = label[:i]
			break
		}
		n++
	}
	s.lock()
	defer s.mu.Unlock()
	if s.closedLocked("SetLabel") != nil {
		return
	}
	if s.base != nil && s.base.Label == label {
		s.ch.Label = nil
		return
	}
	l := label // only a change takes the label's address (and a heap copy)
	s.ch.Label = &l
}

// Label returns the session's label, or "".
func (s *Session) Label() string {
	s.lock()
	defer s.mu.Unlock()
	if s.ch.Label != nil {
		return *s.ch.Label
	}
	if s.base != nil {
		return s.base.Label
	}
	return ""
}

// Devices lists the live sessions of this session's owner ([Session.SetOwner]),
// this one included and marked Current, the most recently seen first:
// what a "your devices" page shows. A session without an owner has none.
// It reads the store as it is now, so a session whose owner was set in
// this request is listed from its next one. At most 1,000 are listed.
//
// Nothing listed is an id, a store key or part of one, so the list may be
// shown to its user as it is. The store must implement [DeviceStore];
// otherwise the error wraps errors.ErrUnsupported.
func (s *Session) Devices() ([]Device, error) {
	ds, current, err := s.deviceStore()
	if err != nil {
		return nil, err
	}
	owner := s.Owner()
	if owner == "" {
		return nil, nil
	}
	var recs []DeviceRecord
	err = s.m.call(s.ctx, "Devices", func(ctx context.Context) (err error) {
		recs, err = ds.Devices(ctx, owner, maxDevices)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("session: devices: %w", err)
	}
	now := s.m.now()
	list := make([]Device, 0, len(recs))
	for _, r := range recs {
		if !now.Before(r.Expires) {
			continue // the store kept it past its time
		}
		seen := r.Expires.Add(-s.m.idleOf(r.IdleTimeout))
		if seen.Before(r.Created) {
			seen = r.Created
		}
		if seen.After(now) {
			seen = now
		}
		list = append(list, Device{
			Handle: r.Handle, Label: r.Label, Created: r.Created, LastSeen: seen,
			Current: r.Handle != "" && r.Handle == current,
		})
	}
	slices.SortFunc(list, func(a, b Device) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), b.Created.Compare(a.Created), strings.Compare(a.Handle, b.Handle))
	})
	return list, nil
}

// EndDevice ends the session that handle names among this session's
// owner's, on every server that shares the store: "log out that device".
// Ending the current session is [Session.Destroy]. It returns an error
// wrapping ErrNotFound when the owner has no live session with that
// handle, whoever else may have one: a handle ends only its owner's
// session. [Session.RevokeOwner](true) ends all but the current one.
func (s *Session) EndDevice(handle string) error {
	ds, current, err := s.deviceStore()
	if err != nil {
		return err
	}
	owner := s.Owner()
	if owner == "" || handle == "" {
		return fmt.Errorf("session: end device: %w", ErrNotFound)
	}
	if handle == current {
		s.Destroy()
		return nil
	}
	var found bool
	err = s.m.call(s.ctx, "DeleteDevice", func(ctx context.Context) (err error) {
		found, err = ds.DeleteDevice(ctx, owner, handle)
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("session: end device: %w", err)
	case !found:
		return fmt.Errorf("session: end device: %w", ErrNotFound)
	}
	if s.m.ev.Revoked != nil {
		s.m.ev.Revoked(s.ctx, owner, 1)
	}
	return nil
}

// deviceStore returns the store to list devices with (a locked request's
// lease store, so it keeps to its one connection) and the current
// session's handle.
func (s *Session) deviceStore() (DeviceStore, string, error) {
	s.lock() // panics with a clear message outside the middleware
	defer s.mu.Unlock()
	ds, ok := s.store.(DeviceStore)
	if !ok {
		ds = s.m.devices
	}
	if ds == nil {
		return nil, "", fmt.Errorf("session: devices: the store (%T) does not implement session.DeviceStore: %w", s.m.store, errors.ErrUnsupported)
	}
	current := ""
	if s.base != nil {
		current = s.base.Handle
	}
	return ds, current, nil
}
