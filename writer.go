package session

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// responseWriter commits the session before the response's first byte. It
// never buffers: every write goes straight through once the commit is done.
type responseWriter struct {
	http.ResponseWriter
	s        *Session
	started  bool
	hijacked bool
	// last marks the commit finish makes for the middleware that loaded
	// the session (not a nested writer): it closes the session under the
	// same hold of its lock, so that no change can slip in after it unsaved.
	last bool
	// nested marks a Locked route's writer inside Handler: its commit
	// saves under the lock, but the response starts only with the outer
	// writer's, so it leaves the session's cookie to be set until then.
	nested bool
	err    error // the commit failure that replaced the response
}

// begin commits the session as the response starts and reports whether
// the handler's response may proceed.
func (w *responseWriter) begin() bool {
	if w.started {
		return w.err == nil
	}
	w.started = true
	s := w.s
	late, err := s.commit(w.Header(), w.last, !w.nested)
	if err == nil {
		return true
	}
	if late {
		if !errors.Is(err, ErrResponseStarted) {
			err = fmt.Errorf("%w: %w", ErrResponseStarted, err)
		}
		s.m.onError(w.ResponseWriter, s.r, err)
		return true
	}
	w.err = err
	// The handler's headers belong to the response that is being replaced.
	h := w.Header()
	vary := h.Values("Vary")
	clear(h)
	if len(vary) > 0 {
		h["Vary"] = vary
	}
	s.m.onError(w.ResponseWriter, s.r, err)
	return false
}

// finish runs when the handler returns: the commit if the handler never
// wrote, or a late commit of changes made after the first byte. For the
// middleware that loaded the session (not a Locked route's nested writer,
// whose outer middleware finishes later) it is the last commit. After a
// failed commit replaced the response there is nothing to do: that
// commit closed the session.
func (w *responseWriter) finish() {
	w.last = !w.nested
	if !w.started {
		w.begin()
		return
	}
	if w.err != nil {
		return
	}
	s := w.s
	if _, err := s.commit(w.Header(), w.last, !w.nested); err != nil {
		if !errors.Is(err, ErrResponseStarted) {
			err = fmt.Errorf("%w: %w", ErrResponseStarted, err)
		}
		if w.hijacked {
			s.m.onError(discardWriter{}, s.r, err)
			return
		}
		s.m.onError(w.ResponseWriter, s.r, err)
	}
}

// errReplaced is what a handler's writes return after a failed commit
// replaced its response with the ErrorHandler's.
func (w *responseWriter) errReplaced() error {
	return fmt.Errorf("session: response replaced by the error handler: %w", w.err)
}

// WriteHeader commits the session, then sends the status. Informational
// (1xx) statuses pass through without committing.
func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.begin() {
		w.ResponseWriter.WriteHeader(code)
	}
}

// Write commits the session, then writes b.
func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.begin() {
		return 0, w.errReplaced()
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom commits the session, then copies from src, keeping the
// underlying writer's fast path (sendfile) when it has one.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.begin() {
		return 0, w.errReplaced()
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, src)
}

// Flush commits the session, then flushes.
func (w *responseWriter) Flush() {
	_ = w.FlushError()
}

// FlushError is Flush that reports failure, as http.ResponseController
// expects.
func (w *responseWriter) FlushError() error {
	if !w.begin() {
		return w.errReplaced()
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack commits the session to the store, then hands over the connection.
// A cookie cannot travel on a hijacked connection, so a new session's
// cookie is the hijacker's to write.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.begin() {
		return nil, nil, w.errReplaced()
	}
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the underlying writer, for
// deadlines and full duplex.
func (w *responseWriter) Unwrap() http.ResponseWriter {
	return w.ResponseWriter
}

// addVary makes sure h's Vary lists field.
func addVary(h http.Header, field string) {
	for _, v := range h["Vary"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, field) {
				return
			}
		}
	}
	h.Add("Vary", field)
}

type writerOnly struct{ io.Writer }

// discardWriter lets the ErrorHandler run, for its logging, once the
// connection is no longer the server's.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}
