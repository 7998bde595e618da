package koa

import (
	"context"
	"crypto/md5"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/seed013449c2/session"
)

// The store under the middleware, on sqlmock: what the middleware sends a
// Koa table for a Koa cookie, and what it does without an owner column.

// TestKoaNoOwnerStore: Koa's table has no owner column, so the store does
// not implement OwnerStore; the middleware's Revoke says so with
// ErrUnsupported and sends no statement, and the empty owner removes
// nothing, as for every store.
func TestKoaNoOwnerStore(t *testing.T) {
	s, _ := newKoaMockStore(t, Options{NoCreateTable: true})
	if _, ok := any(s).(session.OwnerStore); ok {
		t.Fatal("Store implements OwnerStore")
	}
	m, err := session.New(session.Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Revoke(context.Background(), ""); n != 0 || err != nil {
		t.Errorf("Revoke(\"\") = %d, %v, want 0, nil", n, err)
	}
	if n, err := m.Revoke(context.Background(), "alice"); n != 0 || !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "OwnerStore") {
		t.Errorf("Revoke(alice) = %d, %v, want 0 and ErrUnsupported", n, err)
	}
}

// TestKoaMiddleware drives the middleware over a Koa store on sqlmock: a
// Koa id is looked up under Koa's row id, an unknown one is not adopted,
// and an emptied session deletes its row and expires the cookie rather
// than writing an empty object Koa would read as a new visitor.
func TestKoaMiddleware(t *testing.T) {
	koaRow := func(data string) *sqlmock.Rows {
		sum := md5.Sum([]byte(data))
		// Written just now by Koa, with its one-day expiry: no refresh due.
		expires := time.Now().Add(24 * time.Hour).UnixMilli()
		return sqlmock.NewRows(koaLoadCols).AddRow([]byte(koaMockKey), data, expires, hex.EncodeToString(sum[:])[:16])
	}
	tests := []struct {
		name      string
		path      string
		expect    func(sqlmock.Sqlmock)
		body      string
		setCookie func(t *testing.T, header string)
	}{
		{"Koa's row is read", "/get", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(koaRow(`{"user_id":"u1","count":null}`))
		}, `{"user_id":"u1"}`, func(t *testing.T, h string) {
			if h != "" {
				t.Errorf("a read set a cookie: %s", h)
			}
		}},
		// The change reaches the row as it is at commit time, in one
		// transaction; with no value left, the row is deleted.
		{"emptied session is deleted", "/clear", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(koaRow(`{"count":1}`))
			m.ExpectBegin()
			m.ExpectQuery(sqlKoaLockRow).WithArgs(koaMockKey, sqlmock.AnyArg()).WillReturnRows(
				sqlmock.NewRows(koaLockCols).AddRow([]byte(koaMockKey), `{"count":1}`, time.Now().Add(24*time.Hour).UnixMilli()))
			m.ExpectExec(sqlKoaDelete).WithArgs(koaMockKey).WillReturnResult(sqlmock.NewResult(0, 1))
			m.ExpectCommit()
		}, `{}`, func(t *testing.T, h string) {
			if !strings.HasPrefix(h, "SESSION_ID=;") || !strings.Contains(h, "Path=/") || !strings.Contains(h, "Max-Age=0") {
				t.Errorf("Set-Cookie = %q, want SESSION_ID expired at Path=/", h)
			}
		}},
		{"unknown id is not adopted", "/set", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(sqlmock.NewRows(koaLoadCols))
			m.ExpectExec(sqlKoaInsert).WithArgs(koaNewKey{}, sqlmock.AnyArg(), `{"count":1}`).WillReturnResult(sqlmock.NewResult(0, 1))
		}, `{"count":1}`, func(t *testing.T, h string) {
			id, _, _ := strings.Cut(strings.TrimPrefix(h, "SESSION_ID="), ";")
			if len(id) != 32 || id == koaMockID || !strings.Contains(h, "Path=/") {
				t.Errorf("Set-Cookie = %q, want a fresh 32-character id at Path=/", h)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
			s.t.Now = time.Now
			tt.expect(mock)
			m, err := session.New(session.Options{Store: s})
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
				json.NewEncoder(w).Encode(session.FromContext(r.Context()))
			})
			mux.HandleFunc("/clear", func(w http.ResponseWriter, r *http.Request) {
				s := session.FromContext(r.Context())
				s.Delete("count")
				json.NewEncoder(w).Encode(s)
			})
			mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
				s := session.FromContext(r.Context())
				s.Set("count", 1)
				json.NewEncoder(w).Encode(s)
			})
			req := httptest.NewRequest("GET", tt.path, nil)
			req.Header.Set("Cookie", "SESSION_ID="+koaMockID)
			rec := httptest.NewRecorder()
			m.Handler(mux).ServeHTTP(rec, req)
			if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != tt.body {
				t.Fatalf("GET %s = %d %s, want 200 %s", tt.path, rec.Code, rec.Body, tt.body)
			}
			tt.setCookie(t, rec.Header().Get("Set-Cookie"))
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
		})
	}
}

// koaNewKey matches a row id for a fresh id: the prefix and 32 base64url
// characters other than the cookie's.
type koaNewKey struct{}

func (koaNewKey) Match(v driver.Value) bool {
	s, ok := v.(string)
	id, found := strings.CutPrefix(s, "SESSION_ID:")
	return ok && found && len(id) == 32 && id != koaMockID && strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}
