package prometheus

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/seed013449c2/session"
)

// TestResultLabels: every result the godoc lists comes from the error it
// names, wrapped as the stores and the middleware wrap them.
func TestResultLabels(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("session: mysql: update: %w", err) }
	for _, c := range []struct {
		err  error
		lock string
		call string
	}{
		{nil, "acquired", "ok"},
		{wrap(session.ErrLockTimeout), "timeout", "error"},
		{wrap(context.Canceled), "canceled", "canceled"},
		{wrap(session.ErrNotFound), "error", "not_found"},
		{wrap(session.ErrExists), "error", "exists"},
		{wrap(session.ErrFull), "error", "full"},
		{wrap(context.DeadlineExceeded), "error", "timeout"},
		{errors.New("connection refused"), "error", "error"},
	} {
		if got := lockResult(c.err); got != c.lock {
			t.Errorf("lockResult(%v) = %q, want %q", c.err, got, c.lock)
		}
		if got := storeResult(c.err); got != c.call {
			t.Errorf("storeResult(%v) = %q, want %q", c.err, got, c.call)
		}
	}
}
