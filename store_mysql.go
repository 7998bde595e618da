package session

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/seed013449c2/session/internal/combine"
	"github.com/seed013449c2/session/internal/jsonobj"
	"github.com/seed013449c2/session/internal/sqltable"
)

// MySQLOptions configures a [MySQLStore]. The zero value is a working
// configuration.
type MySQLOptions struct {
	// Table is the table that holds the sessions, in the pool's database.
	// Default "sessions". It must be a plain identifier (ASCII letters,
	// digits and '_', at most 64 characters, not starting with a digit)
	// because it is spliced into every statement.
	Table string
	// NoCreateTable skips the CREATE TABLE IF NOT EXISTS that the
	// constructor runs otherwise, and the upgrade of a table of an earlier
	// version, for deployments that manage their schema with migrations
	// (see [MySQLStore.CreateTableSQL] and [MySQLStore.UpgradeTableSQL])
	// or whose user may not create or alter tables.
	NoCreateTable bool
	// CleanupInterval is how often expired rows are deleted. Default 5
	// minutes; a negative value disables the cleanup, for deployments where
	// one process or a cron job calls [MySQLStore.DeleteExpired] instead.
	// Expired rows are never returned either way.
	CleanupInterval time.Duration
	// CleanupBatch is the most rows one cleanup DELETE removes, so that a
	// large backlog never holds locks or fills the undo log in one
	// statement. Default 1000.
	CleanupBatch int
	// Logger receives the failures no caller sees, which are never fatal:
	// a failed cleanup, and a failed RELEASE_LOCK (whose connection is
	// closed instead). Default slog.Default().
	Logger *slog.Logger
}

// MySQLStore keeps sessions in a MySQL table, so that several servers share
// them and a restart loses nothing. It is tested on MariaDB 10.11 (see
// store_mysql_db_test.go); it sends only these statements, written for MySQL
// 5.7 and later and MariaDB 10.5 and later (no stored procedures, triggers
// or JSON functions; other MySQL-compatible databases are untested):
//
//	CREATE TABLE IF NOT EXISTS t (...)                     constructor, unless NoCreateTable
//	SELECT handle, ... FROM t LIMIT 0, ALTER TABLE t ...   constructor, unless NoCreateTable: an older table's upgrade
//	SELECT ... FROM t WHERE id = ? AND expires_at > ?      Load; Touch when no row changed
//	INSERT INTO t (...) VALUES (...)                       Create
//	DELETE FROM t WHERE id = ? AND expires_at <= ?         Create and Rename, when the INSERT found the key taken
//	UPDATE t SET data = ?, ... WHERE id = ? AND version = ? AND expires_at > ?
//	                                                       Update: one statement, when the row is still the one
//	                                                       the request read (a compare-and-swap on version)
//	SELECT ... WHERE id = ? AND ... FOR UPDATE             Update otherwise, in a transaction
//	UPDATE t SET data = ?, owner = ?, ... WHERE id = ?     Update, in the same transaction (deadline_at, idle_ms, persist
//	                                                       and label too when the change sets them)
//	DELETE FROM t WHERE id = ?                             Update that leaves no values; Delete
//	UPDATE t SET expires_at = ? WHERE id = ? AND ...       Touch
//	DELETE FROM t WHERE owner = ? AND ... id <> ?          DeleteOwner
//	SELECT handle, ... WHERE owner = ? AND ... LIMIT ?     Devices
//	DELETE FROM t WHERE owner = ? AND ... handle = ? ...   DeleteDevice
//	DELETE FROM t WHERE expires_at <= ? LIMIT ?            DeleteExpired, repeated
//	SELECT ... FOR UPDATE, INSERT, DELETE FROM t WHERE id = ?
//	                                                       Rename, in one transaction
//	SELECT GET_LOCK(?, ?) and SELECT RELEASE_LOCK(?)       Lock, Unlock
//
// Update applies a request's [Change] in one compare-and-swap UPDATE on the
// version the request read when nothing in this process can have written
// since, and otherwise inside one transaction that holds the row's lock, so
// writers of one session queue in the database and nobody retries: 128 concurrent
// writers of one session all succeed, and every different-key change and
// every [Session.Add] is kept. Commits of one session that reach one process
// while one is in flight go to the database together, in one transaction.
//
// Times are sent as UTC strings and compared on the server, so the expiry
// of a row is checked in the same query that reads it, and the DSN's
// parseTime and loc settings make no difference. "Now" is the app server's
// clock, like the expiry times the middleware computes, so the servers
// sharing a table need synchronized clocks, not the database's. A statement
// or transaction that fails with a deadlock (1213) is repeated once: InnoDB
// rolled it back. A lock wait timeout (1205) is not repeated, which would
// double a wait that already ran its course; the middleware's StoreTimeout
// bounds every call anyway.
//
// Create never overwrites a live row and Update never creates one, so a
// destroyed session cannot come back through a slower request's write-back.
//
// The statements it repeats are server-side prepared statements, prepared
// once and kept by database/sql on each connection of the pool that ran
// them (at most 16 per connection), so that each is one round trip instead
// of the driver's prepare, execute and close; a DSN with
// interpolateParams=true gains nothing more. A statement the server
// refuses to prepare (max_prepared_stmt_count is shared by every client of
// the server) is sent unprepared. On a held lock's connection statements
// are sent as they are.
//
// MySQLStore implements [OwnerStore], [DeviceStore], [Renamer] and
// [Locker]. Record.IdleTimeout is kept to the millisecond. The lock is
// GET_LOCK, which ties it to one connection. Requests of one session waiting in one process queue
// in-process without a connection; the holder runs its load and commit on
// the lock's connection, so each locked request holds one connection of the
// pool at a time. A server that dies loses its connections and with them
// its locks; a holder whose connection died gets [ErrLockLost] instead of
// saving.
type MySQLStore struct {
	t    *sqltable.Table
	comb *combine.Combiner[*Change, *Record]
	q    mysqlQueries
}

// mysqlQueries holds the statements for one table, built once.
type mysqlQueries struct {
	create, hasColumns, upgrade, load, lockRow, exists, insert, deleteExpiredKey, update, updateMeta, swap, swapExpires, swapMeta,
	touch, delete, deleteOwner, devices, deleteDevice, deleteExpired string
}

const (
	mysqlDefaultTable = "sessions"

	// The columns added for per-session lifetimes and devices, in
	// CREATE TABLE and in the ALTER TABLE that adds them to an older
	// table.
	mysqlHandleColumn  = "handle VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT ''"
	mysqlLabelColumn   = "label VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT ''"
	mysqlIdleColumn    = "idle_ms BIGINT NOT NULL DEFAULT 0"
	mysqlPersistColumn = "persist TINYINT UNSIGNED NOT NULL DEFAULT 0"

	// mysqlColumns are what Load reads, in mysqlScan's order.
	mysqlColumns = "data, owner, created_at, expires_at, deadline_at, version, idle_ms, persist, label, handle"
	// mysqlSetMeta is an Update's SET when the change sets the lifetime
	// or the label.
	mysqlSetMeta = "data = ?, owner = ?, expires_at = ?, deadline_at = ?, idle_ms = ?, persist = ?, label = ?, version = version + 1"

	// mysqlTimeLayout is how times are written: DATETIME(6) in UTC.
	mysqlTimeLayout = "2006-01-02 15:04:05.000000"
)

// NewMySQLStore returns a store that keeps sessions in a table of db,
// creating the table unless opts.NoCreateTable is set, and starts the
// cleanup of expired rows. [MySQLStore.Close] stops the cleanup; it never
// closes db, which stays the caller's.
func NewMySQLStore(db *sql.DB, opts MySQLOptions) (*MySQLStore, error) {
	if db == nil {
		return nil, errors.New("session: mysql: nil *sql.DB")
	}
	return newMySQLStore(db, false, opts)
}

// OpenMySQLStore is [NewMySQLStore] for a program that has only the
// connection settings (user, password, address, database; mysql.ParseDSN
// turns a DSN into them). It opens its own pool, which [MySQLStore.Close]
// closes.
func OpenMySQLStore(cfg *mysql.Config, opts MySQLOptions) (*MySQLStore, error) {
	if cfg == nil {
		return nil, errors.New("session: mysql: nil *mysql.Config")
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("session: mysql: %w", err)
	}
	db := sql.OpenDB(connector)
	s, err := newMySQLStore(db, true, opts)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func newMySQLStore(db *sql.DB, ownDB bool, opts MySQLOptions) (*MySQLStore, error) {
	table := opts.Table
	if table == "" {
		table = mysqlDefaultTable
	}
	t, err := sqltable.New(sqltable.Config{
		DB: db, OwnDB: ownDB, Table: table, Batch: opts.CleanupBatch, Logger: opts.Logger,
		Prefix: "session: mysql", StoreType: "MySQLStore", OptionsType: "MySQLOptions",
		Upgrade: "it was created by an earlier version of package session; open the store once without MySQLOptions.NoCreateTable, or run MySQLStore.UpgradeTableSQL",
		Errors:  sqlErrors,
	})
	if err != nil {
		return nil, err
	}
	s := &MySQLStore{t: t, comb: &combine.Combiner[*Change, *Record]{}, q: buildMySQLQueries(table)}
	if !opts.NoCreateTable {
		if err := t.CreateTable(s.q.create); err != nil {
			return nil, err
		}
		if err := t.Upgrade(s.q.hasColumns, s.q.upgrade); err != nil {
			return nil, err
		}
	}
	if ctx, every := t.CleanupEvery(opts.CleanupInterval); every > 0 {
		go t.CleanupLoop(ctx, every, s.DeleteExpired)
	}
	return s, nil
}

// sqlErrors are the sentinels the SQL table helpers wrap.
var sqlErrors = sqltable.Errors{
	NotFound: ErrNotFound, Exists: ErrExists, Corrupt: ErrCorrupt, LockTimeout: ErrLockTimeout, LockLost: ErrLockLost,
}

func buildMySQLQueries(table string) mysqlQueries {
	t := "`" + table + "`"
	return mysqlQueries{
		create: "CREATE TABLE IF NOT EXISTS " + t + " (\n" +
			"  id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n" +
			"  data MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n" +
			"  owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',\n" +
			"  " + mysqlHandleColumn + ",\n" +
			"  " + mysqlLabelColumn + ",\n" +
			"  created_at DATETIME(6) NOT NULL,\n" +
			"  expires_at DATETIME(6) NOT NULL,\n" +
			"  deadline_at DATETIME(6) NULL,\n" +
			"  " + mysqlIdleColumn + ",\n" +
			"  " + mysqlPersistColumn + ",\n" +
			"  version BIGINT NOT NULL,\n" +
			"  PRIMARY KEY (id),\n" +
			"  KEY owner_idx (owner, handle),\n" +
			"  KEY expires_at_idx (expires_at)\n" +
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
		hasColumns: "SELECT handle, label, idle_ms, persist FROM " + t + " LIMIT 0",
		upgrade: "ALTER TABLE " + t + "\n" +
			"  ADD COLUMN " + mysqlHandleColumn + " AFTER owner,\n" +
			"  ADD COLUMN " + mysqlLabelColumn + " AFTER handle,\n" +
			"  ADD COLUMN " + mysqlIdleColumn + " AFTER deadline_at,\n" +
			"  ADD COLUMN " + mysqlPersistColumn + " AFTER idle_ms,\n" +
			"  DROP KEY owner_idx,\n" +
			"  ADD KEY owner_idx (owner, handle)",
		load:             "SELECT " + mysqlColumns + " FROM " + t + " WHERE id = ? AND expires_at > ?",
		exists:           "SELECT version FROM " + t + " WHERE id = ? AND expires_at > ?",
		insert:           "INSERT INTO " + t + " (id, data, owner, created_at, expires_at, deadline_at, version, idle_ms, persist, label, handle) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		deleteExpiredKey: "DELETE FROM " + t + " WHERE id = ? AND expires_at <= ?",
		lockRow:          "SELECT " + mysqlColumns + " FROM " + t + " WHERE id = ? AND expires_at > ? FOR UPDATE",
		update:           "UPDATE " + t + " SET data = ?, owner = ?, expires_at = ?, version = version + 1 WHERE id = ?",
		swap:             "UPDATE " + t + " SET data = ?, owner = ?, version = version + 1 WHERE id = ? AND version = ? AND expires_at > ?",
		swapExpires:      "UPDATE " + t + " SET data = ?, owner = ?, expires_at = ?, version = version + 1 WHERE id = ? AND version = ? AND expires_at > ?",
		updateMeta:       "UPDATE " + t + " SET " + mysqlSetMeta + " WHERE id = ?",
		swapMeta:         "UPDATE " + t + " SET " + mysqlSetMeta + " WHERE id = ? AND version = ? AND expires_at > ?",
		touch:            "UPDATE " + t + " SET expires_at = ? WHERE id = ? AND expires_at > ?",
		delete:           "DELETE FROM " + t + " WHERE id = ?",
		// VARCHAR comparisons ignore trailing spaces (PAD SPACE), so the
		// length check keeps "alice " from matching "alice".
		deleteOwner:   "DELETE FROM " + t + " WHERE owner = ? AND LENGTH(owner) = ? AND id <> ?",
		devices:       "SELECT handle, label, created_at, expires_at, idle_ms FROM " + t + " WHERE owner = ? AND LENGTH(owner) = ? AND expires_at > ? ORDER BY expires_at DESC LIMIT ?",
		deleteDevice:  "DELETE FROM " + t + " WHERE owner = ? AND LENGTH(owner) = ? AND handle = ? AND LENGTH(handle) = ? AND expires_at > ?",
		deleteExpired: "DELETE FROM " + t + " WHERE expires_at <= ? LIMIT ?",
	}
}

// CreateTableSQL returns the CREATE TABLE statement for the store's table,
// for deployments that run their own migrations with NoCreateTable set.
// Store keys are ASCII and compared byte by byte; data holds the values as one
// readable JSON object of up to 16 MB; times are UTC with microseconds and
// no 2038 limit; a NULL deadline_at means no absolute deadline; handle and
// label name the session in its owner's list of devices, and idle_ms and
// persist hold what [Session.Remember] chose (0: the Options').
func (s *MySQLStore) CreateTableSQL() string {
	return s.q.create
}

// UpgradeTableSQL returns the ALTER TABLE statement that brings a table
// created by an earlier version of this package, without the handle,
// label, idle_ms and persist columns, to the form of CreateTableSQL.
// Unless NoCreateTable is set, the constructor runs it when the table
// lacks the columns (a concurrent upgrade by another server is fine);
// with NoCreateTable, run it once in a migration before the new version
// serves requests: until then every statement fails on the missing
// columns, loudly, with an error that says so. Sessions stored before it
// get no handle, so they are listed by [Session.Devices] but can be ended
// only all together ([Session.RevokeOwner]).
func (s *MySQLStore) UpgradeTableSQL() string {
	return s.q.upgrade
}

// Close stops the cleanup and waits for it to finish, then closes the pool
// if [OpenMySQLStore] opened it. Calling Close again returns the first
// result.
func (s *MySQLStore) Close() error {
	return s.t.Close()
}

// DeleteExpired deletes the rows that expired before the call, at most
// CleanupBatch rows per statement, until a statement deletes fewer, and
// reports how many it deleted. The cleanup runs it every CleanupInterval;
// call it yourself when the cleanup is disabled.
func (s *MySQLStore) DeleteExpired(ctx context.Context) (int64, error) {
	return s.t.DeleteExpired(ctx, s.q.deleteExpired, mysqlFormatTime(s.t.Now()))
}

// Load implements [Store].
func (s *MySQLStore) Load(ctx context.Context, key string) (*Record, error) {
	return s.load(ctx, key, false)
}

// loadTree is Load for the middleware: the record keeps its values in a
// tree (see record_values.go), read from the stored JSON without a map
// and written back without sorting, and knows them valid, so that a
// commit checks only what it changed.
func (s *MySQLStore) loadTree(ctx context.Context, key string) (*Record, error) {
	return s.load(ctx, key, true)
}

func (s *MySQLStore) load(ctx context.Context, key string, tree bool) (*Record, error) {
	if err := sqltable.CheckKey(key); err != nil {
		return nil, fmt.Errorf("session: mysql: load: %w", err)
	}
	rec, err := mysqlScan(tree, func(dest ...any) error {
		return s.t.QueryRow(ctx, s.q.load, []any{key, mysqlFormatTime(s.t.Now())}, dest...)
	})
	return rec, s.t.LoadErr(ctx, "load", err)
}

// mysqlScan reads one row of the load statements into a record through
// scan, a Scan of the row: with its values in a tree (nulls dropped), or
// in Values exactly as stored.
func mysqlScan(tree bool, scan func(dest ...any) error) (*Record, error) {
	var (
		data                       []byte
		rec                        Record
		created, expires, deadline mysqlTime
		idleMS                     int64
		persist                    uint8
	)
	if err := scan(&data, &rec.Owner, &created, &expires, &deadline, &rec.Version, &idleMS, &persist, &rec.Label, &rec.Handle); err != nil {
		return nil, err
	}
	if !created.valid || !expires.valid {
		return nil, fmt.Errorf("%w: stored row has a NULL time", ErrCorrupt)
	}
	rec.Created, rec.Expires, rec.Deadline = created.t, expires.t, deadline.t
	rec.IdleTimeout, rec.Persist = time.Duration(idleMS)*time.Millisecond, CookiePersistence(persist)
	var err error
	if tree {
		rec.tree, rec.sizes, err = treeFromJSON(data)
	} else {
		rec.Values, err = jsonobj.Decode(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return &rec, nil
}

// Create implements [Store]. It stores rec with version 1 and sets
// rec.Version to match. An expired row under key is replaced; a live one is
// left alone.
func (s *MySQLStore) Create(ctx context.Context, key string, rec *Record) error {
	row, err := mysqlRow(key, rec)
	if err != nil {
		return fmt.Errorf("session: mysql: create: %w", err)
	}
	const version = 1
	err = s.t.Insert(ctx, key, mysqlFormatTime(s.t.Now()), s.q.insert, s.q.deleteExpiredKey,
		key, row.data, rec.Owner, row.created, row.expires, row.deadline, version, row.idleMS, int64(rec.Persist), rec.Label, rec.Handle)
	if err != nil {
		return err
	}
	rec.Version = version
	return nil
}

// Update implements [Store] in one transaction: it reads the live row
// with a row lock (SELECT ... FOR UPDATE), applies ch in Go, and writes
// the row back, or deletes it when no values are left. Writers of one
// session in this process are combined into one transaction while an
// earlier one is in flight; writers in other processes queue on the row
// lock inside the database. Nobody retries.
func (s *MySQLStore) Update(ctx context.Context, key string, ch *Change) (*Record, error) {
	rec, err := s.updateTree(ctx, key, ch)
	return rec.flat(), err
}

// updateTree is Update for the middleware: the record it returns keeps
// its values in a tree, as loadTree's.
func (s *MySQLStore) updateTree(ctx context.Context, key string, ch *Change) (*Record, error) {
	if err := sqltable.CheckKey(key); err != nil {
		return nil, fmt.Errorf("session: mysql: update: %w", err)
	}
	if ch == nil {
		return nil, errors.New("session: mysql: update: nil change")
	}
	return sqltable.Update(ctx, s.t, s.comb, key, ch, s.tx(key))
}

// tx is Update's and Rename's transaction over the row under key.
func (s *MySQLStore) tx(key string) sqltable.Tx[*Change, *Record] {
	return sqltable.Tx[*Change, *Record]{
		Lock: func(ctx context.Context, tx *sql.Tx) (*Record, error) {
			return mysqlScan(true, func(dest ...any) error {
				return s.t.TxQueryRow(ctx, tx, s.q.lockRow, []any{key, mysqlFormatTime(s.t.Now())}, dest...)
			})
		},
		Empty: func(rec *Record) bool { return rec == nil || rec.numValues() == 0 },
		Check: func(rec *Record) error { return mysqlCheck(key, rec) },
		Write: func(ctx context.Context, tx *sql.Tx, old, rec *Record) error {
			row, err := mysqlChecked(rec)
			if err != nil {
				return err
			}
			rec.Version = old.Version + 1 // what version = version + 1 stores
			mysqlStored(rec)
			if mysqlMetaChanged(old, rec) {
				_, err = s.t.TxExec(ctx, tx, s.q.updateMeta, row.data, rec.Owner, row.expires, row.deadline, row.idleMS, int64(rec.Persist), rec.Label, key)
				return err
			}
			_, err = s.t.TxExec(ctx, tx, s.q.update, row.data, rec.Owner, row.expires, key)
			return err
		},
		Delete:  s.q.delete,
		Queries: []string{s.q.lockRow, s.q.update, s.q.updateMeta, s.q.delete},
		Base:    func(ch *Change) (*Record, bool) { return ch.Base, ch.Base != nil },
		Swap: func(ctx context.Context, base, rec *Record) (*Record, bool, error) {
			row, err := mysqlChecked(rec)
			if err != nil {
				return nil, false, nil // the transaction reports it
			}
			var n int64
			now := mysqlFormatTime(s.t.Now())
			switch {
			case mysqlMetaChanged(base, rec):
				n, err = s.t.Changed(ctx, "update", s.q.swapMeta, row.data, rec.Owner, row.expires, row.deadline, row.idleMS, int64(rec.Persist), rec.Label,
					key, base.Version, now)
			case rec.Expires.Equal(base.Expires):
				n, err = s.t.Changed(ctx, "update", s.q.swap, row.data, rec.Owner, key, base.Version, now)
			default:
				n, err = s.t.Changed(ctx, "update", s.q.swapExpires, row.data, rec.Owner, row.expires, key, base.Version, now)
			}
			if err != nil || n == 0 {
				return nil, false, err
			}
			rec.Version = base.Version + 1
			mysqlStored(rec)
			return rec, true, nil
		},
	}
}

// Rename implements [Renamer] in one transaction: it reads the live row
// under oldKey with a row lock, applies ch, inserts the result under
// newKey (replacing an expired row there, refusing a live one) and deletes
// the old row.
func (s *MySQLStore) Rename(ctx context.Context, oldKey, newKey string, ch *Change) (*Record, error) {
	rec, err := s.renameTree(ctx, oldKey, newKey, ch)
	return rec.flat(), err
}

// renameTree is Rename for the middleware: the record it returns keeps
// its values in a tree, as loadTree's.
func (s *MySQLStore) renameTree(ctx context.Context, oldKey, newKey string, ch *Change) (*Record, error) {
	for _, k := range []string{oldKey, newKey} {
		if err := sqltable.CheckKey(k); err != nil {
			return nil, fmt.Errorf("session: mysql: rename: %w", err)
		}
	}
	if ch == nil {
		return nil, errors.New("session: mysql: rename: nil change")
	}
	return sqltable.Rename(ctx, s.t, oldKey, newKey, ch, s.tx(oldKey),
		func(ctx context.Context, tx *sql.Tx, key string, rec *Record) error {
			row, err := mysqlChecked(rec) // tx.Check accepted rec
			if err != nil {
				return err
			}
			rec.Version = 1
			mysqlStored(rec)
			return s.t.TxInsert(ctx, tx, key, mysqlFormatTime(s.t.Now()), s.q.insert, s.q.deleteExpiredKey,
				key, row.data, rec.Owner, row.created, row.expires, row.deadline, rec.Version,
				row.idleMS, int64(rec.Persist), rec.Label, rec.Handle)
		})
}

// Touch implements [Store]. It writes only expires_at.
func (s *MySQLStore) Touch(ctx context.Context, key string, expires time.Time) error {
	if err := sqltable.CheckKey(key); err != nil {
		return fmt.Errorf("session: mysql: touch: %w", err)
	}
	exp, err := mysqlCheckTime("expires", expires)
	if err != nil {
		return fmt.Errorf("session: mysql: touch: %w", err)
	}
	var version int64
	return s.t.TouchRow(ctx, key, exp, mysqlFormatTime(s.t.Now()), s.q.touch, s.q.exists, &version)
}

// Delete implements [Store].
func (s *MySQLStore) Delete(ctx context.Context, key string) error {
	return s.t.DeleteKey(ctx, key, s.q.delete)
}

// DeleteOwner implements [OwnerStore]. Owners match byte for byte: case and
// trailing spaces count.
func (s *MySQLStore) DeleteOwner(ctx context.Context, owner, exceptKey string) (int, error) {
	if owner == "" {
		return 0, nil
	}
	if exceptKey != "" {
		if err := sqltable.CheckKey(exceptKey); err != nil {
			return 0, fmt.Errorf("session: mysql: delete owner: %w", err)
		}
	}
	n, err := s.t.Changed(ctx, "delete owner", s.q.deleteOwner, owner, len(owner), exceptKey)
	return int(n), err
}

// Devices implements [DeviceStore]: one SELECT on the owner index, at
// most limit rows, those that expire last.
func (s *MySQLStore) Devices(ctx context.Context, owner string, limit int) ([]DeviceRecord, error) {
	if owner == "" || limit <= 0 {
		return nil, nil
	}
	var out []DeviceRecord
	err := s.t.Query(ctx, "devices", s.q.devices, []any{owner, len(owner), mysqlFormatTime(s.t.Now()), limit}, func(rows *sql.Rows) error {
		var (
			d                DeviceRecord
			created, expires mysqlTime
			idleMS           int64
		)
		if err := rows.Scan(&d.Handle, &d.Label, &created, &expires, &idleMS); err != nil {
			return err
		}
		d.Created, d.Expires, d.IdleTimeout = created.t, expires.t, time.Duration(idleMS)*time.Millisecond
		out = append(out, d)
		return nil
	})
	return out, err
}

// DeleteDevice implements [DeviceStore]. Owners and handles match byte for
// byte: case and trailing spaces count.
func (s *MySQLStore) DeleteDevice(ctx context.Context, owner, handle string) (bool, error) {
	if owner == "" || handle == "" {
		return false, nil
	}
	n, err := s.t.Changed(ctx, "delete device", s.q.deleteDevice, owner, len(owner), handle, len(handle), mysqlFormatTime(s.t.Now()))
	return n > 0, err
}

// Lock implements [Locker] with GET_LOCK on a connection of its own, which
// it keeps until unlock. The server waits at most until ctx's deadline
// (rounded up to a second); a cancelled ctx closes the connection, which
// ends the wait. A lock not acquired by ctx's deadline gives an error
// wrapping both [ErrLockTimeout] and ctx.Err().
//
// Requests of one session that wait in this process queue in-process and
// hold no connection; the lease's store runs the holder's statements on
// the lock's connection, so a locked request needs one connection of the
// pool and db.SetMaxOpenConns(1) works. If that connection dies, the lock
// is gone and every statement of the lease's store fails with an error
// wrapping [ErrLockLost].
func (s *MySQLStore) Lock(ctx context.Context, key string) (Lease, error) {
	l, err := sqltable.Lock(ctx, s.t, key, func(t *sqltable.Table) Store {
		bound := *s
		bound.t = t
		return &bound
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// mysqlRowValues is a record in the form its columns take.
type mysqlRowValues struct {
	data                       string
	created, expires, deadline any
	idleMS                     int64
}

func mysqlRow(key string, rec *Record) (mysqlRowValues, error) {
	if err := mysqlCheck(key, rec); err != nil {
		return mysqlRowValues{}, err
	}
	return mysqlChecked(rec)
}

// mysqlCheck refuses a record the row cannot hold.
func mysqlCheck(key string, rec *Record) error {
	if err := sqltable.CheckKey(key); err != nil {
		return err
	}
	if rec == nil {
		return errors.New("nil record")
	}
	if !utf8.ValidString(rec.Owner) || utf8.RuneCountInString(rec.Owner) > 255 {
		return errors.New("owner must be valid UTF-8 of at most 255 characters")
	}
	if !utf8.ValidString(rec.Label) || utf8.RuneCountInString(rec.Label) > 255 {
		return errors.New("label must be valid UTF-8 of at most 255 characters")
	}
	if rec.Handle != "" && (len(rec.Handle) > 32 || sqltable.CheckKey(rec.Handle) != nil) {
		return errors.New("handle must be printable ASCII without spaces, at most 32 bytes")
	}
	if rec.IdleTimeout < 0 {
		return fmt.Errorf("negative idle timeout %v", rec.IdleTimeout)
	}
	if rec.checkedValues() {
		return nil // read from the table, and every change checked by Apply
	}
	if rec.tree != nil {
		return sqltable.CheckValues(rec.tree.All())
	}
	return sqltable.CheckValues(maps.All(rec.Values))
}

// mysqlChecked is mysqlRow for a record mysqlCheck accepted: an Update
// checks each change's result once and encodes only what it writes.
func mysqlChecked(rec *Record) (mysqlRowValues, error) {
	row := mysqlRowValues{data: encodeValues(rec), idleMS: rec.IdleTimeout.Milliseconds()}
	var err error
	if row.created, err = mysqlCheckTime("created", rec.Created); err != nil {
		return row, err
	}
	if row.expires, err = mysqlCheckTime("expires", rec.Expires); err != nil {
		return row, err
	}
	if !rec.Deadline.IsZero() {
		if row.deadline, err = mysqlCheckTime("deadline", rec.Deadline); err != nil {
			return row, err
		}
	}
	return row, nil
}

// mysqlStored gives rec the precision its row keeps: times in UTC to the
// microsecond, the idle timeout to the millisecond.
func mysqlStored(rec *Record) {
	rec.Expires = rec.Expires.UTC().Truncate(time.Microsecond)
	if !rec.Deadline.IsZero() {
		rec.Deadline = rec.Deadline.UTC().Truncate(time.Microsecond)
	}
	rec.IdleTimeout = rec.IdleTimeout.Truncate(time.Millisecond)
}

// mysqlMetaChanged reports whether rec's lifetime or label differ from
// old's, which the plain UPDATE leaves as stored.
func mysqlMetaChanged(old, rec *Record) bool {
	return rec.Label != old.Label || rec.IdleTimeout != old.IdleTimeout || rec.Persist != old.Persist || !rec.Deadline.Equal(old.Deadline)
}

// mysqlCheckTime formats t for a DATETIME(6) column, which holds years
// 1000 to 9999.
func mysqlCheckTime(what string, t time.Time) (string, error) {
	if y := t.UTC().Year(); y < 1000 || y > 9999 {
		return "", fmt.Errorf("%s time %v is outside the DATETIME range (years 1000 to 9999)", what, t)
	}
	return mysqlFormatTime(t), nil
}

func mysqlFormatTime(t time.Time) string {
	return t.UTC().Format(mysqlTimeLayout)
}

// mysqlTime scans a DATETIME column whatever the DSN says: parseTime=true
// gives a time.Time in the DSN's loc, whose wall clock is the stored UTC
// one; parseTime=false gives the text.
type mysqlTime struct {
	t     time.Time
	valid bool
}

func (m *mysqlTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*m = mysqlTime{}
		return nil
	case time.Time:
		m.t = time.Date(v.Year(), v.Month(), v.Day(), v.Hour(), v.Minute(), v.Second(), v.Nanosecond(), time.UTC)
	case []byte:
		return m.parse(string(v))
	case string:
		return m.parse(v)
	default:
		return fmt.Errorf("session: mysql: cannot scan %T as a time", src)
	}
	m.valid = true
	return nil
}

func (m *mysqlTime) parse(s string) error {
	t, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		return fmt.Errorf("session: mysql: stored time: %w", err)
	}
	m.t, m.valid = t, true
	return nil
}
