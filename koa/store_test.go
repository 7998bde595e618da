package koa

import (
	"context"
	"crypto/md5"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/sqltest"
)

// The Koa statements, written out in full, not built from the store's own
// strings, so that a change to the SQL fails here first.
const (
	koaMockID  = "J9vntfG6Y_CN0EwOkycxZey95Wv0NTOD"
	koaMockKey = "SESSION_ID:" + koaMockID

	sqlKoaCreate = "CREATE TABLE IF NOT EXISTS `_mysql_session_store` (\n" +
		"  id VARBINARY(255) NOT NULL,\n" +
		"  expires BIGINT NOT NULL,\n" +
		"  data MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n" +
		"  PRIMARY KEY (id),\n" +
		"  KEY expires_idx (expires)\n" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
	sqlKoaLoad          = "SELECT id, data, expires, LEFT(MD5(data), 16) FROM `_mysql_session_store` WHERE id = ?"
	sqlKoaCheck         = "SELECT LEFT(MD5(data), 16), expires FROM `_mysql_session_store` WHERE id = ? AND expires > ?"
	sqlKoaInsert        = "INSERT INTO `_mysql_session_store` (id, expires, data) VALUES (?, ?, ?)"
	sqlKoaDeleteExpKey  = "DELETE FROM `_mysql_session_store` WHERE id = ? AND expires <= ?"
	sqlKoaLockRow       = "SELECT id, data, expires FROM `_mysql_session_store` WHERE id = ? AND expires > ? FOR UPDATE"
	sqlKoaUpdate        = "UPDATE `_mysql_session_store` SET data = ?, expires = ? WHERE id = ?"
	sqlKoaTouch         = "UPDATE `_mysql_session_store` SET expires = ? WHERE id = ? AND expires > ?"
	sqlKoaDelete        = "DELETE FROM `_mysql_session_store` WHERE id = ?"
	sqlKoaDeleteExpired = "DELETE FROM `_mysql_session_store` WHERE expires <= ? LIMIT ?"

	// sqltest.MockNow and sqltest.MockExpires in milliseconds.
	koaNowMS     = int64(1740830400123)
	koaExpiresMS = int64(1740832200000)
	// koaValuesHash is LEFT(MD5(sqltest.MockValuesSQL), 16), as MariaDB
	// computes it.
	koaValuesHash = "eadec3604920e06f"
)

var koaLoadCols = []string{"id", "data", "expires", "LEFT(MD5(data), 16)"}

// sqlErrs are the sentinels the shared SQL checks test errors against.
var sqlErrs = sqltest.Errors{
	NotFound: session.ErrNotFound, Exists: session.ErrExists, Conflict: session.ErrConflict, Corrupt: session.ErrCorrupt,
	LockLost: session.ErrLockLost, TooLarge: session.ErrTooLarge, NotInteger: session.ErrNotInteger,
}

// newKoaMockStore returns a Koa store on a sqlmock pool that matches SQL
// exactly, whose clock reads sqltest.MockNow, and checks on cleanup that
// every expected statement ran.
func newKoaMockStore(t *testing.T, opts Options) (*Store, sqlmock.Sqlmock) {
	t.Helper()
	db, mock := sqltest.NewMock(t)
	if opts.CleanupInterval == 0 {
		opts.CleanupInterval = -1
	}
	if !opts.NoCreateTable {
		mock.ExpectExec(sqlKoaCreate).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
	}
	s, err := NewStore(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.t.Now = func() time.Time { return sqltest.MockNow }
	s.t.NoPrepare() // the statements' text is the point here; TestKoaPrepared covers the prepare step
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
	})
	return s, mock
}

func checkRecord(t *testing.T, got, want *session.Record) {
	t.Helper()
	sqltest.CheckRecord(t, sqltest.RecordOf(got), sqltest.RecordOf(want))
}

func TestKoaMockTimes(t *testing.T) {
	// The literals above are what the store must send for these times.
	if sqltest.MockNow.UnixMilli() != koaNowMS || sqltest.MockExpires.UnixMilli() != koaExpiresMS {
		t.Fatalf("koaNowMS, koaExpiresMS = %d, %d; want %d, %d", koaNowMS, koaExpiresMS, sqltest.MockNow.UnixMilli(), sqltest.MockExpires.UnixMilli())
	}
	sum := md5.Sum([]byte(sqltest.MockValuesSQL))
	if hex.EncodeToString(sum[:])[:16] != koaValuesHash {
		t.Fatalf("koaValuesHash is not the MD5 of %s", sqltest.MockValuesSQL)
	}
}

func TestKoaCreateTable(t *testing.T) {
	sqltest.RunCreateTable(t, []string{"", "koa_Sessions2"}, func(table string) string {
		if table == "" {
			return sqlKoaCreate
		}
		return strings.Replace(sqlKoaCreate, "`_mysql_session_store`", "`"+table+"`", 1)
	}, func(db *sql.DB, table string) (*Store, error) {
		return NewStore(db, Options{Table: table, CleanupInterval: -1})
	})
}

func TestKoaBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"table with a dash", Options{Table: "koa-sessions"}, "plain identifier"},
		{"table with a backtick", Options{Table: "s`; DROP TABLE users; --"}, "plain identifier"},
		{"qualified table", Options{Table: "db.sessions"}, "plain identifier"},
		{"prefix with a space", Options{Prefix: "SESSION ID:"}, "Prefix"},
		{"prefix not ASCII", Options{Prefix: "séssion:"}, "Prefix"},
		{"prefix with a control character", Options{Prefix: "s\x00:"}, "Prefix"},
		{"prefix too long for the id column", Options{Prefix: strings.Repeat("k", 224)}, "Prefix"},
		{"negative batch", Options{CleanupBatch: -1}, "CleanupBatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sqltest.CheckRefused(t, func(db *sql.DB) (*Store, error) { return NewStore(db, tt.opts) }, "session: koa: ", tt.want)
		})
	}
	if _, err := NewStore(nil, Options{}); err == nil {
		t.Error("NewStore(nil) gave no error")
	}
	// The longest prefix that leaves room for an id is accepted.
	s, _ := newKoaMockStore(t, Options{NoCreateTable: true, Prefix: strings.Repeat("k", 223)})
	if got := s.Key(koaMockID); len(got) != 255 {
		t.Errorf("key of %d bytes, want 255", len(got))
	}
}

func TestKoaKeyScheme(t *testing.T) {
	var _ session.KeyScheme = (*Store)(nil)
	var _ session.Locker = (*Store)(nil)
	for _, tt := range []struct{ prefix, want string }{
		{"", "SESSION_ID:" + koaMockID},
		{"koa:sess:", "koa:sess:" + koaMockID},
	} {
		s, _ := newKoaMockStore(t, Options{NoCreateTable: true, Prefix: tt.prefix})
		if got := s.Key(koaMockID); got != tt.want {
			t.Errorf("Key with prefix %q = %q, want %q", tt.prefix, got, tt.want)
		}
		if s.IDBytes() != 24 {
			t.Errorf("IDBytes = %d, want koa-session-minimal's 24", s.IDBytes())
		}
	}
}

func TestKoaVersion(t *testing.T) {
	for _, data := range []string{sqltest.MockValuesSQL, `{"a":"é 😀"}`, `{"count":null}`} {
		sum := md5.Sum([]byte(data))
		want := hex.EncodeToString(sum[:])[:16]
		v := version(data)
		if got := koaHex(v); got != want {
			t.Errorf("version(%s) = %s, want %s", data, got, want)
		}
		if back, err := parseVersion(want); err != nil || back != v {
			t.Errorf("parseVersion(%s) = %d, %v, want %d", want, back, err, v)
		}
	}
	for _, bad := range []string{"", "eadec360", "eadec3604920e06fff", "xadec3604920e06f"} {
		if _, err := parseVersion(bad); err == nil {
			t.Errorf("parseVersion(%q) gave no error", bad)
		}
	}
}

// koaHex shows a Koa version as the SQL's LEFT(MD5(data), 16) does.
func koaHex(v int64) string {
	return fmt.Sprintf("%016x", uint64(v))
}

func TestKoaLoad(t *testing.T) {
	tests := []struct {
		name string
		data string
		want map[string]json.RawMessage
	}{
		{"written by Go", sqltest.MockValuesSQL, sqltest.MockValues},
		// Koa keeps insertion order and writes NaN as null, which the
		// session reads as missing but the record keeps as stored.
		{"written by Koa", `{"user_id":"k3j2","count":null}`,
			map[string]json.RawMessage{"user_id": json.RawMessage(`"k3j2"`), "count": json.RawMessage(`null`)}},
		{"leading whitespace", " \n{\"count\":1}", map[string]json.RawMessage{"count": json.RawMessage(`1`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
			sum := md5.Sum([]byte(tt.data))
			hash := hex.EncodeToString(sum[:])[:16]
			mock.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(
				sqlmock.NewRows(koaLoadCols).AddRow([]byte(koaMockKey), tt.data, koaExpiresMS, hash))
			rec, err := s.Load(context.Background(), koaMockKey)
			if err != nil {
				t.Fatal(err)
			}
			checkRecord(t, rec, &session.Record{Values: tt.want, Expires: sqltest.MockExpires, Version: version(tt.data)})
		})
	}
}

func TestKoaLoadMissing(t *testing.T) {
	tests := []struct {
		name   string
		expect func(sqlmock.Sqlmock)
	}{
		{"no row", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(sqlmock.NewRows(koaLoadCols))
		}},
		// Koa's own table matches ids ignoring case and trailing spaces; a
		// row under another id is not this session's, and is left alone.
		{"row of a case-swapped id", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(
				sqlmock.NewRows(koaLoadCols).AddRow([]byte(strings.ToUpper(koaMockKey)), sqltest.MockValuesSQL, koaExpiresMS, koaValuesHash))
		}},
		{"row of a space-padded id", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(
				sqlmock.NewRows(koaLoadCols).AddRow([]byte(koaMockKey+" "), sqltest.MockValuesSQL, koaExpiresMS, koaValuesHash))
		}},
		{"expired a while ago: deleted", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(
				sqlmock.NewRows(koaLoadCols).AddRow([]byte(koaMockKey), sqltest.MockValuesSQL, int64(1000), koaValuesHash))
			m.ExpectExec(sqlKoaDeleteExpKey).WithArgs(koaMockKey, koaNowMS).WillReturnResult(sqlmock.NewResult(0, 1))
		}},
		{"expiring this millisecond: deleted", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(
				sqlmock.NewRows(koaLoadCols).AddRow([]byte(koaMockKey), sqltest.MockValuesSQL, koaNowMS, koaValuesHash))
			m.ExpectExec(sqlKoaDeleteExpKey).WithArgs(koaMockKey, koaNowMS).WillReturnResult(sqlmock.NewResult(0, 1))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
			tt.expect(mock)
			rec, err := s.Load(context.Background(), koaMockKey)
			if !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("Load = %+v, %v; want session.ErrNotFound", rec, err)
			}
		})
	}
}

// TestKoaLoadExpiredDeleteFails: the DELETE of an expired row is best
// effort; its failure is logged and the row still reads as missing.
func TestKoaLoadExpiredDeleteFails(t *testing.T) {
	var logs sqltest.SyncBuffer
	s, mock := newKoaMockStore(t, Options{NoCreateTable: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	mock.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(
		sqlmock.NewRows(koaLoadCols).AddRow([]byte(koaMockKey), sqltest.MockValuesSQL, int64(1000), koaValuesHash))
	mock.ExpectExec(sqlKoaDeleteExpKey).WithArgs(koaMockKey, koaNowMS).WillReturnError(errors.New("connection lost"))
	if _, err := s.Load(context.Background(), koaMockKey); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load = %v, want session.ErrNotFound", err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "expired row") || !strings.Contains(out, "connection lost") {
		t.Errorf("the failed DELETE was not logged:\n%s", out)
	}
	if strings.Contains(out, koaMockID) {
		t.Errorf("the log carries the session id:\n%s", out)
	}
}

func TestKoaLoadCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		data    driver.Value
		expires driver.Value
		want    string
	}{
		{"NULL data", nil, koaExpiresMS, "NULL data"},
		{"empty data", "", koaExpiresMS, "not a JSON object"},
		{"JSON null", "null", koaExpiresMS, "not a JSON object"},
		{"JSON string", `"hello"`, koaExpiresMS, "not a JSON object"},
		{"JSON number", "5", koaExpiresMS, "not a JSON object"},
		{"JSON array", "[1,2]", koaExpiresMS, "not a JSON object"},
		{"invalid JSON", "{not json", koaExpiresMS, "not a JSON object"},
		{"truncated object", `{"count":1,"user`, koaExpiresMS, "not a JSON object"},
		{"NULL expires", sqltest.MockValuesSQL, nil, "NULL expires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
			var hash driver.Value
			if str, ok := tt.data.(string); ok {
				sum := md5.Sum([]byte(str))
				hash = hex.EncodeToString(sum[:])[:16]
			}
			mock.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillReturnRows(
				sqlmock.NewRows(koaLoadCols).AddRow([]byte(koaMockKey), tt.data, tt.expires, hash))
			rec, err := s.Load(context.Background(), koaMockKey)
			if !errors.Is(err, session.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %+v, %v; want session.ErrCorrupt mentioning %q", rec, err, tt.want)
			}
			if errors.Is(err, session.ErrNotFound) {
				t.Errorf("a corrupt row must not read as missing: %v", err)
			}
		})
	}
}

func TestKoaCreate(t *testing.T) {
	// Values keep their bytes; keys are sorted and escaped; non-ASCII is
	// raw UTF-8, as Koa writes it.
	values := map[string]json.RawMessage{
		"z":       json.RawMessage(`{"nested":[1,2]}`),
		"count":   json.RawMessage(`1`),
		"name":    json.RawMessage(`"zoë 😀"`),
		`a"b<`:    json.RawMessage(`true`),
		"deleted": nil,
	}
	const data = `{"a\"b\u003c":true,"count":1,"name":"zoë 😀","z":{"nested":[1,2]}}`
	s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
	mock.ExpectExec(sqlKoaInsert).WithArgs(koaMockKey, koaExpiresMS, data).WillReturnResult(sqlmock.NewResult(0, 1))
	// Created, Deadline and a stale Version are not kept: Koa's table has
	// no columns for them.
	rec := &session.Record{Values: values, Created: sqltest.MockCreated, Expires: sqltest.MockExpires, Deadline: sqltest.MockDeadline, Version: 42}
	if err := s.Create(context.Background(), koaMockKey, rec); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(data))
	if got, want := koaHex(rec.Version), hex.EncodeToString(sum[:])[:16]; got != want {
		t.Errorf("rec.Version = %s after Create, want the MD5 prefix %s of the stored data", got, want)
	}
}

func TestKoaCreateTakenKey(t *testing.T) {
	sqltest.RunCreateTakenKey(t, sqlErrs, sqltest.CreateTaken{
		Prefix:        "session: koa: create",
		Insert:        sqlKoaInsert,
		InsertArgs:    []driver.Value{koaMockKey, koaExpiresMS, sqltest.MockValuesSQL},
		DeleteExpired: sqlKoaDeleteExpKey,
		DeleteArgs:    []driver.Value{koaMockKey, koaNowMS},
		Open: func(t *testing.T) (sqlmock.Sqlmock, func() error) {
			s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
			return mock, func() error {
				return s.Create(context.Background(), koaMockKey, &session.Record{Values: sqltest.MockValues, Created: sqltest.MockCreated, Expires: sqltest.MockExpires})
			}
		},
	})
}

// TestKoaBadRecord: what Koa's table cannot hold, or must never hold, is
// refused before any statement is sent.
func TestKoaBadRecord(t *testing.T) {
	good := func() *session.Record {
		return &session.Record{Values: sqltest.MockValues, Created: sqltest.MockCreated, Expires: sqltest.MockExpires}
	}
	tests := []struct {
		name string
		key  string
		rec  func() *session.Record
		want string
		is   error
	}{
		{"nil record", koaMockKey, func() *session.Record { return nil }, "nil record", nil},
		{"empty key", "", good, "invalid key", nil},
		{"key with space", koaMockKey + " ", good, "invalid key", nil},
		{"owner", koaMockKey, func() *session.Record { r := good(); r.Owner = "alice"; return r }, "no owner column", errors.ErrUnsupported},
		{"idle timeout", koaMockKey, func() *session.Record { r := good(); r.IdleTimeout = time.Hour; return r }, "Remember", errors.ErrUnsupported},
		{"persistent cookie", koaMockKey, func() *session.Record { r := good(); r.Persist = session.CookiePersistent; return r }, "Remember", errors.ErrUnsupported},
		{"label", koaMockKey, func() *session.Record { r := good(); r.Label = "Firefox"; return r }, "SetLabel", errors.ErrUnsupported},
		{"handle", koaMockKey, func() *session.Record { r := good(); r.Handle = "q2JvYXJkLWhhbmRsZS0xMg"; return r }, "Devices", errors.ErrUnsupported},
		{"no values", koaMockKey, func() *session.Record { r := good(); r.Values = nil; return r }, "no values", nil},
		{"only empty values", koaMockKey, func() *session.Record {
			r := good()
			r.Values = map[string]json.RawMessage{"a": nil}
			return r
		}, "no values", nil},
		{"value not JSON", koaMockKey, func() *session.Record {
			r := good()
			r.Values = map[string]json.RawMessage{"a": json.RawMessage(`{`)}
			return r
		}, "not valid UTF-8 JSON", nil},
		{"zero expires", koaMockKey, func() *session.Record { r := good(); r.Expires = time.Time{}; return r }, "Koa row", nil},
		{"expires before 1970", koaMockKey, func() *session.Record {
			r := good()
			r.Expires = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)
			return r
		}, "Koa row", nil},
		{"expires past JavaScript's dates", koaMockKey, func() *session.Record {
			r := good()
			r.Expires = time.Date(275761, 1, 1, 0, 0, 0, 0, time.UTC)
			return r
		}, "Koa row", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newKoaMockStore(t, Options{NoCreateTable: true})
			err := s.Create(context.Background(), tt.key, tt.rec())
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "session: koa: create") {
				t.Errorf("Create = %v, want an error mentioning %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Create = %v, want it to wrap %v", err, tt.is)
			}
		})
	}
}

// koaLockCols are the columns of Update's SELECT ... FOR UPDATE.
var koaLockCols = []string{"id", "data", "expires"}

// koaLockedRow is the row a Koa Update reads: data under koaMockKey,
// expiring at koaExpiresMS.
func koaLockedRow(data driver.Value) *sqlmock.Rows {
	return sqlmock.NewRows(koaLockCols).AddRow([]byte(koaMockKey), data, koaExpiresMS)
}

// TestKoaUpdate: as on MySQL, one transaction reads the row with its lock,
// applies the change to what Koa or Go stored last, and writes data and
// expires back (or deletes the row when no value is left). The version it
// returns is the MD5 prefix of the data it stored, as Load would read it.
func TestKoaUpdate(t *testing.T) {
	later := sqltest.MockExpires.Add(time.Hour)
	tests := []struct {
		name  string
		row   string
		ch    *session.Change
		write func(m sqlmock.Sqlmock)
		want  *session.Record
	}{
		{"merged onto the stored row", sqltest.MockValuesSQL, &session.Change{
			Values:  map[string]json.RawMessage{"user_id": nil, "name": json.RawMessage(`"zoë 😀"`)},
			Add:     map[string]int64{"count": 2},
			Expires: later,
		}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlKoaUpdate).WithArgs(`{"count":3,"name":"zoë 😀"}`, later.UnixMilli(), koaMockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		}, &session.Record{Values: map[string]json.RawMessage{"count": json.RawMessage(`3`), "name": json.RawMessage(`"zoë 😀"`)}, Expires: later, Version: version(`{"count":3,"name":"zoë 😀"}`)}},
		// Koa keeps insertion order and writes NaN as null: the change
		// applies to the values, and the null is dropped on the way back.
		{"row written by Koa", `{"user_id":"k3j2","count":null}`, &session.Change{Add: map[string]int64{"count": 1}}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlKoaUpdate).WithArgs(`{"count":1,"user_id":"k3j2"}`, koaExpiresMS, koaMockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		}, &session.Record{Values: map[string]json.RawMessage{"count": json.RawMessage(`1`), "user_id": json.RawMessage(`"k3j2"`)}, Expires: sqltest.MockExpires, Version: version(`{"count":1,"user_id":"k3j2"}`)}},
		// MySQL reports a row set to what it held as unchanged (0 rows
		// affected): writing back the same data and expiry is a success.
		{"unchanged data and expiry", sqltest.MockValuesSQL, &session.Change{Values: map[string]json.RawMessage{"count": json.RawMessage(`1`)}}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlKoaUpdate).WithArgs(sqltest.MockValuesSQL, koaExpiresMS, koaMockKey).WillReturnResult(sqlmock.NewResult(0, 0))
		}, &session.Record{Values: sqltest.MockValues, Expires: sqltest.MockExpires, Version: version(sqltest.MockValuesSQL)}},
		// An emptied session is deleted, never written as the empty
		// object Koa would read as a new visitor's session.
		{"emptied: the row is deleted", sqltest.MockValuesSQL, &session.Change{Clear: true}, func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlKoaDelete).WithArgs(koaMockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		}, &session.Record{Values: map[string]json.RawMessage{}, Expires: sqltest.MockExpires}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
			mock.ExpectBegin()
			mock.ExpectQuery(sqlKoaLockRow).WithArgs(koaMockKey, koaNowMS).WillReturnRows(koaLockedRow(tt.row))
			tt.write(mock)
			mock.ExpectCommit()
			rec, err := s.Update(context.Background(), koaMockKey, tt.ch)
			if err != nil {
				t.Fatal(err)
			}
			checkRecord(t, rec, tt.want)
		})
	}
}

// TestKoaUpdateRolledBack: a change that cannot apply to the stored row, or
// that Koa's table cannot hold, writes nothing: the transaction is rolled
// back.
func TestKoaUpdateRolledBack(t *testing.T) {
	alice := "alice"
	set := &session.Change{Values: map[string]json.RawMessage{"a": json.RawMessage(`1`)}}
	tests := []struct {
		name string
		row  *sqlmock.Rows
		ch   *session.Change
		is   error
		want string
	}{
		{"no live row", sqlmock.NewRows(koaLockCols), set, session.ErrNotFound, ""},
		// Koa's own table matches ids ignoring case and trailing spaces; a
		// row under another id is not this session's.
		{"row of a case-swapped id", sqlmock.NewRows(koaLockCols).AddRow([]byte(strings.ToUpper(koaMockKey)), sqltest.MockValuesSQL, koaExpiresMS), set, session.ErrNotFound, ""},
		{"row of a space-padded id", sqlmock.NewRows(koaLockCols).AddRow([]byte(koaMockKey+" "), sqltest.MockValuesSQL, koaExpiresMS), set, session.ErrNotFound, ""},
		// Koa's table allows NULL data.
		{"NULL data", koaLockedRow(nil), set, session.ErrCorrupt, "NULL data"},
		{"data not an object", koaLockedRow("[1,2]"), set, session.ErrCorrupt, "not a JSON object"},
		{"too large", koaLockedRow(sqltest.MockValuesSQL), &session.Change{Values: map[string]json.RawMessage{"big": json.RawMessage(`"0123456789"`)}, MaxSize: 40}, session.ErrTooLarge, "limit 40"},
		{"add to a string", koaLockedRow(sqltest.MockValuesSQL), &session.Change{Add: map[string]int64{"user_id": 1}}, session.ErrNotInteger, `"user_id"`},
		{"owner", koaLockedRow(sqltest.MockValuesSQL), &session.Change{Owner: &alice}, errors.ErrUnsupported, "no owner column"},
		{"value not JSON", koaLockedRow(sqltest.MockValuesSQL), &session.Change{Values: map[string]json.RawMessage{"a": json.RawMessage(`{`)}}, nil, "not valid UTF-8 JSON"},
		{"expires past JavaScript's dates", koaLockedRow(sqltest.MockValuesSQL), &session.Change{Expires: time.Date(275761, 1, 1, 0, 0, 0, 0, time.UTC)}, nil, "Koa row"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
			mock.ExpectBegin()
			mock.ExpectQuery(sqlKoaLockRow).WithArgs(koaMockKey, koaNowMS).WillReturnRows(tt.row)
			mock.ExpectRollback()
			rec, err := s.Update(context.Background(), koaMockKey, tt.ch)
			sqltest.CheckRefusedUpdate(t, sqlErrs, "session: koa: update", rec, err, tt.is, tt.want)
		})
	}
	for _, tt := range []struct {
		name, key string
		ch        *session.Change
		want      string
	}{
		{"empty key", "", set, "invalid key"},
		{"key with space", koaMockKey + " ", set, "invalid key"},
		{"nil change", koaMockKey, nil, "nil change"},
	} {
		t.Run(tt.name+" sends nothing", func(t *testing.T) {
			s, _ := newKoaMockStore(t, Options{NoCreateTable: true})
			rec, err := s.Update(context.Background(), tt.key, tt.ch)
			sqltest.CheckRefusedUpdate(t, sqlErrs, "session: koa: update", rec, err, nil, tt.want)
		})
	}
}

// TestKoaUpdateSteps runs the transaction into a failure at each step.
func TestKoaUpdateSteps(t *testing.T) {
	sqltest.RunUpdateSteps(t, sqlErrs, sqltest.UpdateTx[*Store, session.Record]{
		Prefix: "session: koa: update",
		Open: func(t *testing.T) (*Store, sqlmock.Sqlmock) {
			return newKoaMockStore(t, Options{NoCreateTable: true})
		},
		Lock: func(m sqlmock.Sqlmock) *sqlmock.ExpectedQuery {
			return m.ExpectQuery(sqlKoaLockRow).WithArgs(koaMockKey, koaNowMS)
		},
		Row: func() *sqlmock.Rows { return koaLockedRow(sqltest.MockValuesSQL) },
		Write: func(m sqlmock.Sqlmock) *sqlmock.ExpectedExec {
			return m.ExpectExec(sqlKoaUpdate).WithArgs(`{"count":1,"theme":"dark","user_id":"k3j2"}`, koaExpiresMS, koaMockKey)
		},
		Update: func(ctx context.Context, s *Store) (*session.Record, error) {
			return s.Update(ctx, koaMockKey, &session.Change{Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}})
		},
		Applied: func(rec *session.Record) bool { return string(rec.Values["theme"]) == `"dark"` },
	})
}

func TestKoaTouch(t *testing.T) {
	tests := []struct {
		name   string
		expect func(sqlmock.Sqlmock)
		want   error
	}{
		{"moved", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlKoaTouch).WithArgs(koaExpiresMS, koaMockKey, koaNowMS).WillReturnResult(sqlmock.NewResult(0, 1))
		}, nil},
		{"already at that expiry", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlKoaTouch).WithArgs(koaExpiresMS, koaMockKey, koaNowMS).WillReturnResult(sqlmock.NewResult(0, 0))
			m.ExpectQuery(sqlKoaCheck).WithArgs(koaMockKey, koaNowMS).WillReturnRows(
				sqlmock.NewRows([]string{"hash", "expires"}).AddRow(koaValuesHash, koaExpiresMS))
		}, nil},
		{"live row with NULL data", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlKoaTouch).WithArgs(koaExpiresMS, koaMockKey, koaNowMS).WillReturnResult(sqlmock.NewResult(0, 0))
			m.ExpectQuery(sqlKoaCheck).WithArgs(koaMockKey, koaNowMS).WillReturnRows(
				sqlmock.NewRows([]string{"hash", "expires"}).AddRow(nil, koaExpiresMS))
		}, nil},
		{"missing or expired", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlKoaTouch).WithArgs(koaExpiresMS, koaMockKey, koaNowMS).WillReturnResult(sqlmock.NewResult(0, 0))
			m.ExpectQuery(sqlKoaCheck).WithArgs(koaMockKey, koaNowMS).WillReturnRows(sqlmock.NewRows([]string{"hash", "expires"}))
		}, session.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
			tt.expect(mock)
			// Sub-millisecond parts are dropped, as Koa's column holds
			// milliseconds.
			exp := sqltest.MockExpires.Add(999 * time.Microsecond).In(time.FixedZone("+09:00", 9*3600))
			err := s.Touch(context.Background(), koaMockKey, exp)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Touch = %v, want %v", err, tt.want)
			}
		})
	}
	s, _ := newKoaMockStore(t, Options{NoCreateTable: true})
	if err := s.Touch(context.Background(), koaMockKey, time.Time{}); err == nil || !strings.Contains(err.Error(), "Koa row") {
		t.Errorf("Touch(zero time) = %v, want a range error and no statement", err)
	}
}

func TestKoaDelete(t *testing.T) {
	s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
	mock.ExpectExec(sqlKoaDelete).WithArgs(koaMockKey).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(sqlKoaDelete).WithArgs(koaMockKey).WillReturnResult(sqlmock.NewResult(0, 0))
	for range 2 { // the second finds nothing, which is no error
		if err := s.Delete(context.Background(), koaMockKey); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(context.Background(), ""); err == nil {
		t.Error("Delete of an empty key gave no error")
	}
}

func TestKoaDeleteExpiredBatches(t *testing.T) {
	sqltest.RunDeleteExpiredBatches(t, func(t *testing.T, batch int) (*Store, sqlmock.Sqlmock) {
		return newKoaMockStore(t, Options{NoCreateTable: true, CleanupBatch: batch})
	}, func(m sqlmock.Sqlmock, limit int) *sqlmock.ExpectedExec {
		return m.ExpectExec(sqlKoaDeleteExpired).WithArgs(koaNowMS, limit)
	})
}

// TestKoaLock: the lock is the MySQL store's, named after the Koa table.
func TestKoaLock(t *testing.T) {
	s, mock := newKoaMockStore(t, Options{NoCreateTable: true})
	name := sqltest.LockName("_mysql_session_store", koaMockKey)
	if got := s.t.LockName(koaMockKey); got != name {
		t.Fatalf("lockName = %q, want %q", got, name)
	}
	mock.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 3).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(1))
	mock.ExpectQuery(sqltest.SQLReleaseLock).WithArgs(name).WillReturnRows(sqlmock.NewRows([]string{"RELEASE_LOCK"}).AddRow(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	lease, err := s.Lock(ctx, koaMockKey)
	if err != nil {
		t.Fatal(err)
	}
	if ls, ok := lease.Store().(*Store); !ok || ls == s || !ls.t.Bound(s.t) || ls.prefix != s.prefix {
		t.Errorf("lease.Store() = %T, want a *Store bound to the lock's connection", lease.Store())
	}
	for range 2 {
		if err := lease.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
	mock.ExpectQuery(sqltest.SQLGetLock).WithArgs(name, 3).WillReturnRows(sqlmock.NewRows([]string{"GET_LOCK"}).AddRow(0))
	if _, err := s.Lock(ctx, koaMockKey); !errors.Is(err, session.ErrLockTimeout) || !strings.HasPrefix(err.Error(), "session: koa: lock") {
		t.Fatalf("Lock held elsewhere = %v, want session.ErrLockTimeout", err)
	}
}

// koaOps are the store's methods, each with the statement it starts with.
var koaOps = []sqltest.Op[*Store]{
	{Name: "load", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectQuery(sqlKoaLoad).WithArgs(koaMockKey).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *Store) error { _, err := s.Load(ctx, koaMockKey); return err }},
	{Name: "create", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlKoaInsert).WithArgs(koaMockKey, koaExpiresMS, sqltest.MockValuesSQL).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *Store) error {
		return s.Create(ctx, koaMockKey, &session.Record{Values: sqltest.MockValues, Expires: sqltest.MockExpires})
	}},
	{Name: "update", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectBegin()
		m.ExpectQuery(sqlKoaLockRow).WithArgs(koaMockKey, koaNowMS).WillDelayFor(d).WillReturnError(err)
		m.ExpectRollback()
	}, Call: func(ctx context.Context, s *Store) error {
		_, err := s.Update(ctx, koaMockKey, &session.Change{Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}})
		return err
	}},
	{Name: "touch", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlKoaTouch).WithArgs(koaExpiresMS, koaMockKey, koaNowMS).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *Store) error { return s.Touch(ctx, koaMockKey, sqltest.MockExpires) }},
	{Name: "delete", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlKoaDelete).WithArgs(koaMockKey).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *Store) error { return s.Delete(ctx, koaMockKey) }},
	{Name: "delete expired", Expect: func(m sqlmock.Sqlmock, d time.Duration, err error) {
		m.ExpectExec(sqlKoaDeleteExpired).WithArgs(koaNowMS, 1000).WillDelayFor(d).WillReturnError(err)
	}, Call: func(ctx context.Context, s *Store) error { _, err := s.DeleteExpired(ctx); return err }},
}

// TestKoaErrors runs every method into every kind of failure.
func TestKoaErrors(t *testing.T) {
	sqltest.RunErrors(t, sqlErrs, "session: koa: ", "test._mysql_session_store",
		[]string{"table `_mysql_session_store` does not exist", "koa.Store.CreateTableSQL", "koa.Options.NoCreateTable"},
		func(t *testing.T) (*Store, sqlmock.Sqlmock) {
			return newKoaMockStore(t, Options{NoCreateTable: true})
		}, koaOps)
}

// TestKoaRetryOnce: a deadlock costs one retry, whose result is the call's;
// a lock wait timeout none.
func TestKoaRetryOnce(t *testing.T) {
	sqltest.RunRetryOnce(t, func(t *testing.T) (*Store, sqlmock.Sqlmock) {
		return newKoaMockStore(t, Options{NoCreateTable: true})
	}, koaOps)
}

// TestKoaCleanupLogsAndCloseStops: a failing cleanup is logged and the
// loop keeps going; Close stops the goroutine and waits for it.
func TestKoaCleanupLogsAndCloseStops(t *testing.T) {
	sqltest.RunCleanupLogs(t, sqltest.Cleanup{
		Creator:       "github.com/seed013449c2/session/koa.NewStore",
		DeleteExpired: sqlKoaDeleteExpired,
		Table:         "test._mysql_session_store",
		Open: func(db *sql.DB, l *slog.Logger) (func() error, error) {
			s, err := NewStore(db, Options{NoCreateTable: true, CleanupInterval: time.Millisecond, Logger: l})
			if err != nil {
				return nil, err
			}
			return s.Close, nil
		},
		Logs: []string{"level=ERROR", "session: koa: cleanup failed", "table `_mysql_session_store` does not exist", "koa.Store.CreateTableSQL", "koa.Options.NoCreateTable"},
	})
}
