package koa

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/combine"
	"github.com/seed013449c2/session/internal/jsonobj"
	"github.com/seed013449c2/session/internal/sqltable"
)

// Options configures a [Store]. The zero value matches the Koa
// tutorial's stack: koa-session-minimal with the key SESSION_ID over
// koa-mysql-session 0.0.2.
type Options struct {
	// Table is the table the Koa app's store uses. Default
	// "_mysql_session_store", the name koa-mysql-session 0.0.2 hard-codes
	// (it has no option for it), so change it only for a Koa store that
	// lets you. It must be a plain identifier, as session.MySQLOptions.Table.
	Table string
	// Prefix goes before the id to form a row's id: koa-session-minimal's
	// key option followed by ":". Default "SESSION_ID:". It must be
	// printable ASCII without spaces, and leave room in the 255-byte id
	// column for the 32-character id. session.Options.CookieName should be the key
	// itself (SESSION_ID, the default), so both apps read one cookie.
	Prefix string
	// NoCreateTable skips the CREATE TABLE IF NOT EXISTS (see
	// [Store.CreateTableSQL]) that the constructor runs otherwise.
	// Leave it false and start the Go app first to get the stricter table;
	// koa-mysql-session's own CREATE TABLE IF NOT EXISTS then keeps it.
	NoCreateTable bool
	// CleanupInterval is how often expired rows are deleted, as in
	// session.MySQLOptions: default 5 minutes, negative for none (call
	// [Store.DeleteExpired] yourself). Koa never deletes a row, so
	// without this cleanup the table only grows.
	CleanupInterval time.Duration
	// CleanupBatch is the most rows one cleanup DELETE removes. Default
	// 1000.
	CleanupBatch int
	// Logger receives the failures no caller sees: a failed cleanup, a
	// failed RELEASE_LOCK, an expired row Load could not delete. Default
	// slog.Default().
	Logger *slog.Logger
}

// Store keeps sessions in the table of a Koa app's koa-session-minimal
// and koa-mysql-session, in Koa's own row format, so that a Koa app and a
// Go app on the same database serve the same visitors while routes move
// from one to the other. A row is
//
//	id       prefix + session id ("SESSION_ID:" + 32 base64url characters)
//	expires  BIGINT, milliseconds since 1970: when the row stops being live
//	data     the values as one JSON object, {"count":2,"user_id":"x"}
//
// and both apps read and write each other's rows. Use it with the cookie
// the Koa app sets: [session.Options].CookieName the Koa key (SESSION_ID,
// the default) and Path=/ (the default), and [session.Options].IdleTimeout
// the Koa cookie's maxAge (24 hours when maxAge is 0, the Go default too).
//
// The Go side stays strict where Koa is lax. Load treats a row whose
// expires has passed as absent and deletes it in the same call (as an
// extra, best-effort DELETE; the cleanup catches a failed one), and reports
// a NULL expires, NULL data or data that is not a JSON object as
// [session.ErrCorrupt], so the middleware starts a fresh session. It matches ids
// byte for byte even on Koa's own case-insensitive table, so a case-swapped
// or space-padded cookie reads nobody's session. The middleware never
// adopts an id that has no row and never writes an empty object: an
// emptied session deletes the row and expires the cookie, as Koa does.
//
// Create never overwrites a live row and Update never creates one. Update
// applies a request's change to the row as it is now, inside one
// transaction that holds the row lock, so concurrent Go requests that
// change different keys all persist, and none retries. Record.Version is
// the first 64 bits of the MD5 of data, for information only. Touch writes
// only expires.
//
// What Koa's own writes break is beyond any Go store: koa-mysql-session
// writes with a blind upsert (INSERT ... ON DUPLICATE KEY UPDATE), so a
// Koa request can overwrite a change Go made after Koa read the row, and
// can bring back a row Go deleted (a logout, an expiry, a Regenerate)
// while it was in flight; Go's merge and [session.Locker] bind only Go's requests.
// Koa never checks expires and adopts any id a client sends.
//
// Koa's table has no other columns, so:
//
//   - Record.Owner is not kept: Store does not implement
//     [session.OwnerStore], and Create and Update of a record with an
//     owner fail with an error wrapping errors.ErrUnsupported
//     ([session.Session.SetOwner], [session.Manager.Revoke] and
//     [session.Session.RevokeOwner] do not work in Koa mode).
//   - Record.Created and Record.Deadline are not kept: Load returns them
//     zero, so session.Options.Lifetime is not enforced on these sessions; only
//     the idle timeout is.
//   - Record.IdleTimeout, Persist, Label and Handle are not kept: a record
//     or change that sets them fails with an error wrapping
//     errors.ErrUnsupported ([session.Session.Remember],
//     [session.Session.ForgetOnClose] and [session.Session.SetLabel] do not
//     work in Koa mode), and Store does not implement
//     [session.DeviceStore].
//   - Expires is kept to the millisecond.
//
// Values are written as raw UTF-8 JSON. Koa's MySQL connection is utf8mb3,
// so a character outside the Basic Multilingual Plane (an emoji) does not
// survive a Koa write, and JavaScript numbers are doubles, so integers
// beyond 2^53 come back rounded after one.
//
// Store sends only these statements:
//
//	CREATE TABLE IF NOT EXISTS t (...)                        constructor, unless NoCreateTable
//	SELECT id, data, expires, LEFT(MD5(data), 16) ...         Load
//	DELETE FROM t WHERE id = ? AND expires <= ?               Load of an expired row; Create over one
//	INSERT INTO t (id, expires, data) VALUES (?, ?, ?)        Create
//	SELECT id, data, expires ... FOR UPDATE                   Update, in a transaction
//	UPDATE t SET data = ?, expires = ? WHERE id = ?           Update, in the same transaction
//	DELETE FROM t WHERE id = ?                                Update that leaves no values; Delete
//	SELECT ... FOR UPDATE, INSERT, DELETE FROM t WHERE id = ?  Rename, in one transaction (with the DELETE
//	                                                          of an expired row and a second INSERT when
//	                                                          the first found the key taken)
//	UPDATE t SET expires = ? WHERE id = ? AND expires > ?     Touch
//	SELECT LEFT(MD5(data), 16), expires ... WHERE id = ? ...  Touch when no row changed
//	DELETE FROM t WHERE expires <= ? LIMIT ?                  DeleteExpired, repeated
//	SELECT GET_LOCK(?, ?) and SELECT RELEASE_LOCK(?)          Lock
//
// "Now" is the Go server's clock in milliseconds, as Koa's is, so the
// servers need synchronized clocks. Statements are retried, store calls
// bounded and locks held as in [session.MySQLStore].
type Store struct {
	t      *sqltable.Table
	comb   *combine.Combiner[*session.Change, *session.Record]
	prefix string
	q      queries
}

// queries holds the statements for one table, built once.
type queries struct {
	create, load, lockRow, check, insert, deleteExpiredKey, update, touch, delete, deleteExpired string
}

const (
	defaultTable  = "_mysql_session_store"
	defaultPrefix = "SESSION_ID:"
	// idBytes is what koa-session-minimal's uid.sync(24) draws: 32
	// base64url characters.
	idBytes = 24
	idChars = 32
	// maxMillis is the last instant a JavaScript Date can hold.
	maxMillis = 8_640_000_000_000_000
)

// NewStore returns a store over the Koa app's session table in db,
// creating the table unless opts.NoCreateTable is set, and starts the
// cleanup of expired rows. [Store.Close] stops the cleanup; it never
// closes db, which stays the caller's.
func NewStore(db *sql.DB, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("session: koa: nil *sql.DB")
	}
	table, prefix := opts.Table, opts.Prefix
	if table == "" {
		table = defaultTable
	}
	if prefix == "" {
		prefix = defaultPrefix
	}
	if err := sqltable.CheckKey(prefix); err != nil || len(prefix)+idChars > 255 {
		return nil, fmt.Errorf("session: koa: Prefix %q must be printable ASCII without spaces, at most %d bytes", prefix, 255-idChars)
	}
	t, err := sqltable.New(sqltable.Config{
		DB: db, Table: table, Batch: opts.CleanupBatch, Logger: opts.Logger,
		Prefix: "session: koa", StoreType: "koa.Store", OptionsType: "koa.Options",
		Errors: sqltable.Errors{
			NotFound: session.ErrNotFound, Exists: session.ErrExists, Corrupt: session.ErrCorrupt,
			LockTimeout: session.ErrLockTimeout, LockLost: session.ErrLockLost,
		},
	})
	if err != nil {
		return nil, err
	}
	s := &Store{t: t, comb: &combine.Combiner[*session.Change, *session.Record]{}, prefix: prefix, q: buildQueries(table)}
	if !opts.NoCreateTable {
		if err := t.CreateTable(s.q.create); err != nil {
			return nil, err
		}
	}
	if ctx, every := t.CleanupEvery(opts.CleanupInterval); every > 0 {
		go t.CleanupLoop(ctx, every, s.DeleteExpired)
	}
	return s, nil
}

func buildQueries(table string) queries {
	t := "`" + table + "`"
	return queries{
		create: "CREATE TABLE IF NOT EXISTS " + t + " (\n" +
			"  id VARBINARY(255) NOT NULL,\n" +
			"  expires BIGINT NOT NULL,\n" +
			"  data MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n" +
			"  PRIMARY KEY (id),\n" +
			"  KEY expires_idx (expires)\n" +
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
		load:             "SELECT id, data, expires, LEFT(MD5(data), 16) FROM " + t + " WHERE id = ?",
		check:            "SELECT LEFT(MD5(data), 16), expires FROM " + t + " WHERE id = ? AND expires > ?",
		insert:           "INSERT INTO " + t + " (id, expires, data) VALUES (?, ?, ?)",
		deleteExpiredKey: "DELETE FROM " + t + " WHERE id = ? AND expires <= ?",
		lockRow:          "SELECT id, data, expires FROM " + t + " WHERE id = ? AND expires > ? FOR UPDATE",
		update:           "UPDATE " + t + " SET data = ?, expires = ? WHERE id = ?",
		touch:            "UPDATE " + t + " SET expires = ? WHERE id = ? AND expires > ?",
		delete:           "DELETE FROM " + t + " WHERE id = ?",
		deleteExpired:    "DELETE FROM " + t + " WHERE expires <= ? LIMIT ?",
	}
}

// CreateTableSQL returns the CREATE TABLE statement the store runs when the
// table is missing: Koa's columns in a stricter form that Koa works with
// unchanged. The id is binary, so a case-swapped or space-padded id never
// matches another visitor's row; data is utf8mb4 and holds up to 16 MB
// (Koa's TEXT holds 64 KB); expires is indexed for the cleanup.
//
// A table Koa created first keeps Koa's form (VARCHAR id with the
// database's collation, TEXT data, no index). The store works on it too,
// but consider adding the index:
//
//	ALTER TABLE _mysql_session_store ADD KEY expires_idx (expires)
func (s *Store) CreateTableSQL() string {
	return s.q.create
}

// IDBytes implements [session.KeyScheme]: ids are 24 random bytes, the 32
// base64url characters of koa-session-minimal's ids.
func (s *Store) IDBytes() int {
	return idBytes
}

// Key implements [session.KeyScheme]: the row id is the prefix and the id, as
// koa-session-minimal builds it. Store keys are the ids themselves, not hashes,
// because Koa looks rows up by id: protect the table as you would the
// cookies.
func (s *Store) Key(id string) string {
	return s.prefix + id
}

// Close stops the cleanup and waits for it to finish. It leaves the pool
// open. Calling Close again returns the first result.
func (s *Store) Close() error {
	return s.t.Close()
}

// DeleteExpired deletes the rows that expired before the call, Koa's and
// Go's alike, at most CleanupBatch rows per statement, until a statement
// deletes fewer, and reports how many it deleted. The cleanup runs it every
// CleanupInterval; call it yourself when the cleanup is disabled.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	return s.t.DeleteExpired(ctx, s.q.deleteExpired, s.t.Now().UnixMilli())
}

// Load implements [session.Store]. An expired row is deleted before Load reports
// it missing; if that DELETE fails, the failure is logged and the cleanup
// removes the row later.
func (s *Store) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := sqltable.CheckKey(key); err != nil {
		return nil, fmt.Errorf("session: koa: load: %w", err)
	}
	var (
		r    row
		hash sql.NullString
	)
	now := s.t.Now().UnixMilli()
	err := s.t.QueryRow(ctx, s.q.load, []any{key}, &r.id, &r.data, &r.expires, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("session: koa: load: %w", session.ErrNotFound)
	case err != nil:
		return nil, s.t.Fail(ctx, "load", err)
	case string(r.id) == key && r.expires.Valid && r.expires.Int64 <= now:
		if _, err := s.t.Exec(ctx, s.q.deleteExpiredKey, key, now); err != nil {
			s.t.Logger().WarnContext(ctx, "session: koa: could not delete an expired row; the cleanup will", "table", s.t.Name(), "err", err)
		}
		return nil, fmt.Errorf("session: koa: load: %w (expired)", session.ErrNotFound)
	}
	rec, err := r.record(key)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("session: koa: load: %w", session.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("session: koa: load: %w", err)
	}
	if rec.Version, err = parseVersion(hash.String); err != nil {
		return nil, fmt.Errorf("session: koa: load: %w", err)
	}
	return rec, nil
}

// row is a row's id, data and expires columns as read.
type row struct {
	id      []byte
	data    sql.NullString
	expires sql.NullInt64
}

// record checks the row read under key and decodes it. A row of another id
// is sql.ErrNoRows: Koa's own table compares ids ignoring case and trailing
// spaces.
func (r *row) record(key string) (*session.Record, error) {
	switch {
	case string(r.id) != key:
		return nil, sql.ErrNoRows
	case !r.expires.Valid:
		return nil, fmt.Errorf("%w: the row has a NULL expires", session.ErrCorrupt)
	case !r.data.Valid:
		return nil, fmt.Errorf("%w: the row has NULL data", session.ErrCorrupt)
	}
	values, err := decode(r.data.String)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", session.ErrCorrupt, err)
	}
	return &session.Record{Values: values, Expires: time.UnixMilli(r.expires.Int64).UTC()}, nil
}

// decode parses Koa's data column, which must hold a JSON object.
func decode(data string) (map[string]json.RawMessage, error) {
	if !strings.HasPrefix(strings.TrimLeft(data, " \t\r\n"), "{") {
		return nil, errors.New("stored data is not a JSON object")
	}
	return jsonobj.Decode([]byte(data))
}

// Create implements [session.Store] with a plain INSERT, and sets rec.Version to
// the hash of the data it stored. An expired row under key is replaced; a
// live one is left alone.
func (s *Store) Create(ctx context.Context, key string, rec *session.Record) error {
	data, expires, err := columns(key, rec)
	if err != nil {
		return fmt.Errorf("session: koa: create: %w", err)
	}
	if err := s.t.Insert(ctx, key, s.t.Now().UnixMilli(), s.q.insert, s.q.deleteExpiredKey, key, expires, data); err != nil {
		return err
	}
	rec.Version = version(data)
	return nil
}

// Update implements [session.Store] in one transaction, as [session.MySQLStore.Update]
// does: it reads the live row with a row lock, applies ch and writes data
// and expires back, or deletes the row when no values are left. Koa's own
// writes take no row lock, so they can still overwrite it (see above).
func (s *Store) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	if err := sqltable.CheckKey(key); err != nil {
		return nil, fmt.Errorf("session: koa: update: %w", err)
	}
	if ch == nil {
		return nil, errors.New("session: koa: update: nil change")
	}
	return sqltable.Update(ctx, s.t, s.comb, key, ch, s.tx(key))
}

// Rename implements [session.Renamer] in one transaction, as
// [session.MySQLStore.Rename] does: the row under oldKey, read with its row
// lock and changed, is inserted under newKey and the old row deleted.
func (s *Store) Rename(ctx context.Context, oldKey, newKey string, ch *session.Change) (*session.Record, error) {
	for _, k := range []string{oldKey, newKey} {
		if err := sqltable.CheckKey(k); err != nil {
			return nil, fmt.Errorf("session: koa: rename: %w", err)
		}
	}
	if ch == nil {
		return nil, errors.New("session: koa: rename: nil change")
	}
	return sqltable.Rename(ctx, s.t, oldKey, newKey, ch, s.tx(oldKey),
		func(ctx context.Context, tx *sql.Tx, key string, rec *session.Record) error {
			data, expires := encode(rec) // tx.Check accepted rec
			rec.Version = version(data)
			rec.Expires = time.UnixMilli(expires).UTC()
			return s.t.TxInsert(ctx, tx, key, s.t.Now().UnixMilli(), s.q.insert, s.q.deleteExpiredKey, key, expires, data)
		})
}

// tx is Update's and Rename's transaction over the row under key.
func (s *Store) tx(key string) sqltable.Tx[*session.Change, *session.Record] {
	return sqltable.Tx[*session.Change, *session.Record]{
		Lock: func(ctx context.Context, tx *sql.Tx) (*session.Record, error) {
			var r row
			if err := s.t.TxQueryRow(ctx, tx, s.q.lockRow, []any{key, s.t.Now().UnixMilli()}, &r.id, &r.data, &r.expires); err != nil {
				return nil, err
			}
			return r.record(key)
		},
		Empty: func(rec *session.Record) bool { return rec == nil || len(rec.Values) == 0 },
		Check: func(rec *session.Record) error { return check(key, rec) },
		Write: func(ctx context.Context, tx *sql.Tx, old, rec *session.Record) error {
			data, expires := encode(rec) // Check accepted rec
			rec.Version = version(data)
			rec.Expires = time.UnixMilli(expires).UTC()
			_, err := s.t.TxExec(ctx, tx, s.q.update, data, expires, key)
			return err
		},
		Delete:  s.q.delete,
		Queries: []string{s.q.lockRow, s.q.update, s.q.delete},
	}
}

// Touch implements [session.Store]. It writes only expires.
func (s *Store) Touch(ctx context.Context, key string, expires time.Time) error {
	if err := sqltable.CheckKey(key); err != nil {
		return fmt.Errorf("session: koa: touch: %w", err)
	}
	exp, err := millis(expires)
	if err != nil {
		return fmt.Errorf("session: koa: touch: %w", err)
	}
	var hash sql.NullString // NULL when Koa's table holds NULL data
	var storedExpires int64
	return s.t.TouchRow(ctx, key, exp, s.t.Now().UnixMilli(), s.q.touch, s.q.check, &hash, &storedExpires)
}

// Delete implements [session.Store].
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.t.DeleteKey(ctx, key, s.q.delete)
}

// errOwner explains why owners are refused.
var errOwner = fmt.Errorf("%w: a Koa session table has no owner column, so SetOwner, Revoke and RevokeOwner do not work in Koa mode", errors.ErrUnsupported)

// errLifetime and errLabel explain why a session's own lifetime and its
// label are refused.
var (
	errLifetime = fmt.Errorf("%w: a Koa session table has no column for a session's own lifetime, so Remember and ForgetOnClose do not work in Koa mode", errors.ErrUnsupported)
	errLabel    = fmt.Errorf("%w: a Koa session table has no label or handle column, so SetLabel and Devices do not work in Koa mode", errors.ErrUnsupported)
)

// Lock implements [session.Locker] with GET_LOCK, exactly as
// [session.MySQLStore.Lock]. It serializes the Go app's requests of a
// session; Koa's requests never take it.
func (s *Store) Lock(ctx context.Context, key string) (session.Lease, error) {
	l, err := sqltable.Lock(ctx, s.t, key, func(t *sqltable.Table) session.Store {
		bound := *s
		bound.t = t
		return &bound
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// columns checks rec and returns its data and expires columns.
func columns(key string, rec *session.Record) (data string, expires int64, err error) {
	if err := check(key, rec); err != nil {
		return "", 0, err
	}
	data, expires = encode(rec)
	return data, expires, nil
}

// check refuses a record that a Koa row cannot hold. An Update checks each
// change's result once and encodes only what it writes (see encode).
func check(key string, rec *session.Record) error {
	if err := sqltable.CheckKey(key); err != nil {
		return err
	}
	if rec == nil {
		return errors.New("nil record")
	}
	if rec.Owner != "" {
		return errOwner
	}
	if rec.IdleTimeout != 0 || rec.Persist != session.CookieDefault {
		return errLifetime
	}
	if rec.Label != "" || rec.Handle != "" {
		return errLabel
	}
	if err := sqltable.CheckValues(maps.All(rec.Values)); err != nil {
		return err
	}
	if !hasValue(rec.Values) {
		// Koa would read an empty object as a new visitor's session; the
		// middleware deletes an emptied session instead of saving it.
		return errors.New("refusing to store a session with no values")
	}
	_, err := millis(rec.Expires)
	return err
}

// hasValue reports whether values hold one that encode writes.
func hasValue(values map[string]json.RawMessage) bool {
	for _, v := range values {
		if len(v) > 0 {
			return true
		}
	}
	return false
}

// encode returns the data and expires columns of a record check accepted.
func encode(rec *session.Record) (data string, expires int64) {
	return string(jsonobj.Encode(rec.Values)), rec.Expires.UnixMilli()
}

// millis converts t to the expires column: milliseconds since 1970,
// within what a JavaScript Date holds.
func millis(t time.Time) (int64, error) {
	ms := t.UnixMilli()
	if t.IsZero() || ms <= 0 || ms > maxMillis {
		return 0, fmt.Errorf("expires time %v is outside what a Koa row holds (1970 to the year 275760)", t)
	}
	return ms, nil
}

// version is the version of a row holding data: the first 64 bits of
// its MD5, which is what the SQL's LEFT(MD5(data), 16) shows in hex.
func version(data string) int64 {
	sum := md5.Sum([]byte(data))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// parseVersion reads LEFT(MD5(data), 16) as the server computed it.
func parseVersion(h string) (int64, error) {
	if len(h) != 16 {
		return 0, fmt.Errorf("the data's MD5 came back as %q, not 16 hex digits", h)
	}
	v, err := strconv.ParseUint(h, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("the data's MD5 came back as %q: %w", h, err)
	}
	return int64(v), nil
}
