package session

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session/internal/sqltest"
)

// The MySQL statements of per-session lifetimes ("remember me") and of
// "your devices", written out in full (see store_mysql_test.go).

// mockHandle is a handle as the middleware makes them: 22 characters.
const mockHandle = "q2JvYXJkLWhhbmRsZS0xMg"

// mockRememberedRow is a row with a lifetime, a label and a handle of its
// own: 36 hours idle, a persistent cookie.
func mockRememberedRow(data string) *sqlmock.Rows {
	return sqlmock.NewRows(mockLoadCols).AddRow(data, "alice", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", "2025-03-31 11:00:00.000000", 7,
		int64(36*time.Hour/time.Millisecond), 1, "Firefox on macOS", mockHandle)
}

// mockRemembered is mockRememberedRow as a record.
func mockRemembered() *Record {
	return &Record{
		Values: sqltest.MockValues, Owner: "alice", Created: sqltest.MockCreated, Expires: sqltest.MockExpires,
		Deadline: time.Date(2025, 3, 31, 11, 0, 0, 0, time.UTC), IdleTimeout: 36 * time.Hour, Persist: CookiePersistent,
		Label: "Firefox on macOS", Handle: mockHandle, Version: 7,
	}
}

func TestMySQLUpgradeTableSQL(t *testing.T) {
	s, _ := newMockStore(t, MySQLOptions{NoCreateTable: true})
	if got := s.UpgradeTableSQL(); got != sqlUpgrade {
		t.Errorf("UpgradeTableSQL =\n%s\nwant\n%s", got, sqlUpgrade)
	}
	s2, _ := newMockStore(t, MySQLOptions{NoCreateTable: true, Table: "app_Sessions2"})
	if got, want := s2.UpgradeTableSQL(), strings.Replace(sqlUpgrade, "`sessions`", "`app_Sessions2`", 1); got != want {
		t.Errorf("UpgradeTableSQL for app_Sessions2 =\n%s\nwant\n%s", got, want)
	}
}

// TestMySQLUpgradesOlderTable: unless NoCreateTable is set, the
// constructor finds a table of an earlier version by its missing columns
// and adds them, as it creates a missing table; another server that
// added them first is no failure, and any other failure is the
// constructor's.
func TestMySQLUpgradesOlderTable(t *testing.T) {
	missing := &mysql.MySQLError{Number: 1054, Message: "Unknown column 'handle' in 'field list'"}
	for _, tc := range []struct {
		name  string
		alter error
		want  string
	}{
		{"upgraded", nil, ""},
		{"upgraded by another server first", &mysql.MySQLError{Number: 1060, Message: "Duplicate column name 'handle'"}, ""},
		{"not allowed", &mysql.MySQLError{Number: 1142, Message: "ALTER command denied"}, "session: mysql: upgrade table: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, mock := sqltest.NewMock(t)
			mock.ExpectExec(sqlCreateSessions).WillReturnResult(sqlmock.NewResult(0, 0))
			mock.ExpectQuery(sqlHasColumns).WithoutArgs().WillReturnError(missing)
			alter := mock.ExpectExec(sqlUpgrade).WithoutArgs()
			if tc.alter != nil {
				alter.WillReturnError(tc.alter)
			} else {
				alter.WillReturnResult(sqlmock.NewResult(0, 0))
			}
			s, err := NewMySQLStore(db, MySQLOptions{CleanupInterval: -1})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("NewMySQLStore = %v", err)
			case tc.want == "":
				s.Close()
			case err == nil || !strings.HasPrefix(err.Error(), tc.want) || !errors.Is(err, tc.alter):
				t.Fatalf("NewMySQLStore = %v, want %q wrapping %v", err, tc.want, tc.alter)
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestMySQLMissingColumnNamesUpgrade: a table of an earlier version fails
// every statement on the columns it lacks, and the error says what to run.
func TestMySQLMissingColumnNamesUpgrade(t *testing.T) {
	s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
	mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).
		WillReturnError(&mysql.MySQLError{Number: 1054, Message: "Unknown column 'idle_ms' in 'field list'"})
	_, err := s.Load(context.Background(), mockKey)
	if err == nil || !strings.Contains(err.Error(), "MySQLStore.UpgradeTableSQL") || !errors.Is(err, &mysql.MySQLError{Number: 1054}) {
		t.Fatalf("Load on a table without the new columns = %v; want the 1054 and a hint naming MySQLStore.UpgradeTableSQL", err)
	}
}

func TestMySQLRememberedRoundTrip(t *testing.T) {
	t.Run("create", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectExec(sqlInsert).
			WithArgs(mockKey, sqltest.MockValuesSQL, "alice", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", "2025-03-31 11:00:00.000000", 1,
				int64(129_600_000), 1, "Firefox on macOS", mockHandle).
			WillReturnResult(sqlmock.NewResult(0, 1))
		rec := mockRemembered()
		if err := s.Create(context.Background(), mockKey, rec); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("load", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectQuery(sqlLoad).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockRememberedRow(sqltest.MockValuesSQL))
		rec, err := s.Load(context.Background(), mockKey)
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, rec, mockRemembered())
	})
}

// TestMySQLUpdateLifetimeLabel: an Update writes deadline_at, idle_ms,
// persist and label only when the change moves them; otherwise it sends
// the same statements as before they existed, and the record it returns
// keeps what is stored.
func TestMySQLUpdateLifetimeLabel(t *testing.T) {
	label := "Safari on iOS"
	life := &Lifetime{IdleTimeout: 90*time.Minute + 500*time.Microsecond, Deadline: time.Date(2025, 3, 8, 11, 0, 0, 7000, time.UTC), Persist: CookieBrowserSession}
	want := func(values string, version int64) *Record {
		rec := mockRemembered()
		rec.Values = map[string]json.RawMessage{}
		if err := json.Unmarshal([]byte(values), &rec.Values); err != nil {
			t.Fatal(err)
		}
		rec.Version = version
		return rec
	}
	t.Run("in the transaction", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectBegin()
		mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockRememberedRow(sqltest.MockValuesSQL))
		mock.ExpectExec(sqlUpdateMeta).
			WithArgs(`{"count":2,"user_id":"k3j2"}`, "alice", "2025-03-01 12:30:00.000000", "2025-03-08 11:00:00.000007", int64(5_400_000), 2, label, mockKey).
			WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectCommit()
		rec, err := s.Update(context.Background(), mockKey, &Change{Add: map[string]int64{"count": 1}, Label: &label, Lifetime: life})
		if err != nil {
			t.Fatal(err)
		}
		w := want(`{"count":2,"user_id":"k3j2"}`, 8)
		w.Label, w.IdleTimeout, w.Deadline, w.Persist = label, 90*time.Minute, life.Deadline, CookieBrowserSession
		checkRecord(t, rec, w)
	})
	t.Run("swapped", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectExec(sqlSwapMeta).
			WithArgs(`{"count":1,"user_id":"k3j2"}`, "alice", "2025-03-01 12:30:00.000000", "2025-03-31 11:00:00.000000", int64(129_600_000), 1, label,
				mockKey, int64(7), mockNowSQL).
			WillReturnResult(sqlmock.NewResult(0, 1))
		rec, err := s.Update(context.Background(), mockKey, &Change{Label: &label, Base: mockRemembered()})
		if err != nil {
			t.Fatal(err)
		}
		w := want(sqltest.MockValuesSQL, 8)
		w.Label = label
		checkRecord(t, rec, w)
	})
	t.Run("left as stored", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		mock.ExpectBegin()
		mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockRememberedRow(sqltest.MockValuesSQL))
		mock.ExpectExec(sqlUpdate).WithArgs(`{"count":2,"user_id":"k3j2"}`, "alice", "2025-03-01 12:30:00.000000", mockKey).
			WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectCommit()
		rec, err := s.Update(context.Background(), mockKey, &Change{Add: map[string]int64{"count": 1}})
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, rec, want(`{"count":2,"user_id":"k3j2"}`, 8))
	})
	t.Run("renamed", func(t *testing.T) {
		s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
		const newKey = "k2"
		mock.ExpectBegin()
		mock.ExpectQuery(sqlLockRow).WithArgs(mockKey, mockNowSQL).WillReturnRows(mockRememberedRow(sqltest.MockValuesSQL))
		mock.ExpectExec(sqlInsert).
			WithArgs(newKey, sqltest.MockValuesSQL, "alice", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", "2025-03-31 11:00:00.000000", 1,
				int64(129_600_000), 1, "Firefox on macOS", mockHandle).
			WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectExec(sqlDelete).WithArgs(mockKey).WillReturnResult(sqlmock.NewResult(0, 1))
		mock.ExpectCommit()
		rec, err := s.Rename(context.Background(), mockKey, newKey, &Change{})
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, rec, want(sqltest.MockValuesSQL, 1))
	})
}

func TestMySQLDevices(t *testing.T) {
	cols := []string{"handle", "label", "created_at", "expires_at", "idle_ms"}
	s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
	mock.ExpectQuery(sqlDevices).WithArgs("alice", 5, mockNowSQL, 100).WillReturnRows(sqlmock.NewRows(cols).
		AddRow(mockHandle, "Firefox on macOS", "2025-03-01 11:00:00.000005", "2025-03-01 12:30:00.000000", int64(129_600_000)).
		AddRow("", "", "2025-02-28 10:00:00.000000", "2025-03-01 12:00:00.500000", 0))
	got, err := s.Devices(context.Background(), "alice", 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []DeviceRecord{
		{Handle: mockHandle, Label: "Firefox on macOS", Created: sqltest.MockCreated, Expires: sqltest.MockExpires, IdleTimeout: 36 * time.Hour},
		{Created: time.Date(2025, 2, 28, 10, 0, 0, 0, time.UTC), Expires: time.Date(2025, 3, 1, 12, 0, 0, 500_000_000, time.UTC)},
	}
	if len(got) != len(want) {
		t.Fatalf("Devices = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Handle != w.Handle || g.Label != w.Label || !g.Created.Equal(w.Created) || !g.Expires.Equal(w.Expires) || g.IdleTimeout != w.IdleTimeout {
			t.Errorf("Devices[%d] = %+v, want %+v", i, g, w)
		}
	}
	// Nothing to ask: no statement.
	for _, tc := range []struct {
		owner string
		limit int
	}{{"", 10}, {"alice", 0}} {
		if got, err := s.Devices(context.Background(), tc.owner, tc.limit); err != nil || len(got) != 0 {
			t.Errorf("Devices(%q, %d) = %v, %v; want none", tc.owner, tc.limit, got, err)
		}
	}
}

func TestMySQLDeleteDevice(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows int64
		want bool
	}{{"deleted", 1, true}, {"none", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			s, mock := newMockStore(t, MySQLOptions{NoCreateTable: true})
			mock.ExpectExec(sqlDeleteDevice).WithArgs("alice", 5, mockHandle, 22, mockNowSQL).WillReturnResult(sqlmock.NewResult(0, tc.rows))
			if got, err := s.DeleteDevice(context.Background(), "alice", mockHandle); err != nil || got != tc.want {
				t.Fatalf("DeleteDevice = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	t.Run("nothing to match", func(t *testing.T) {
		s, _ := newMockStore(t, MySQLOptions{NoCreateTable: true})
		for _, args := range [][2]string{{"", mockHandle}, {"alice", ""}} {
			if got, err := s.DeleteDevice(context.Background(), args[0], args[1]); err != nil || got {
				t.Errorf("DeleteDevice(%q, %q) = %v, %v; want false, nil with no statement", args[0], args[1], got, err)
			}
		}
	})
}

// TestMySQLBadDeviceFields: a label, handle or idle timeout the columns
// cannot hold exactly is refused before any statement is sent.
func TestMySQLBadDeviceFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Record)
		want string
	}{
		{"label too long", func(r *Record) { r.Label = strings.Repeat("é", 256) }, "label"},
		{"label not UTF-8", func(r *Record) { r.Label = "\xff" }, "label"},
		{"handle too long", func(r *Record) { r.Handle = strings.Repeat("h", 33) }, "handle"},
		{"handle with a space", func(r *Record) { r.Handle = "abc def" }, "handle"},
		{"handle not ASCII", func(r *Record) { r.Handle = "hé" }, "handle"},
		{"negative idle timeout", func(r *Record) { r.IdleTimeout = -time.Second }, "idle timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newMockStore(t, MySQLOptions{NoCreateTable: true})
			rec := mockRemembered()
			tc.set(rec)
			if err := s.Create(context.Background(), mockKey, rec); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Create = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
