package sqltable

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/seed013449c2/session/internal/combine"
)

// Change is what Update needs of a change (a *session.Change): applied to
// a record, it returns a new one, or an error that refuses it.
type Change[R any] interface {
	Apply(rec R) (R, error)
}

// Tx describes one store's Update transaction over its columns.
type Tx[C, R any] struct {
	// Lock reads the live row under its row lock (SELECT ... FOR UPDATE):
	// the record, or sql.ErrNoRows.
	Lock func(ctx context.Context, tx *sql.Tx) (R, error)
	// Empty reports whether a record has no values left, in which case
	// the row is deleted; the zero R counts as empty.
	Empty func(R) bool
	// Check refuses a record with values that the row cannot hold.
	Check func(R) error
	// Write stores rec over old, which Lock read.
	Write func(ctx context.Context, tx *sql.Tx, old, rec R) error
	// Delete is the statement that deletes the row (with the key as its
	// argument).
	Delete string
	// Base, when set, returns the record a change's caller read, if it
	// says (ok false otherwise).
	Base func(C) (rec R, ok bool)
	// Swap, when set, writes rec over base in one statement that matches
	// only while the row is still base (a compare-and-swap on its
	// version), and returns rec as stored. It reports false, having
	// written nothing, when the row moved on or is gone; the transaction
	// then decides on the fresh row.
	Swap func(ctx context.Context, base, rec R) (R, bool, error)
	// Queries are the statements Lock, Write and Delete send, which the
	// table prepares on the pool before the transaction begins, so that
	// none is prepared inside it on a second connection.
	Queries []string
}

// errNothingToWrite rolls back a transaction whose every change was
// refused.
var errNothingToWrite = errors.New("nothing to write")

// Update is the stores' Update: under key's row lock it applies ch to the
// live record, checks the result with tx.Check, and stores it with
// tx.Write, or deletes the row (tx.Delete) when no values are left.
// Commits of one key that reach this process while one is in flight are
// combined by comb into one such transaction, each change applied in
// arrival order to what the previous ones left; a lease's table runs its
// single holder's change alone.
func Update[C Change[R], R any](ctx context.Context, t *Table, comb *combine.Combiner[C, R], key string, ch C, tx Tx[C, R]) (R, error) {
	wrap := func(results []combine.Result[R]) []combine.Result[R] {
		for i := range results {
			if results[i].Err != nil {
				results[i].Err = fmt.Errorf("%s: update: %w", t.prefix, results[i].Err)
			}
		}
		return results
	}
	var none R
	run := func(ctx context.Context, chs []C, last *R) ([]combine.Result[R], error) {
		// What the row should still be: what this flight's previous batch
		// stored, or, for a flight's first change, what its caller read.
		base, known := *last, false
		switch {
		case tx.Swap == nil:
		case !tx.Empty(base):
			known = true
		case len(chs) == 1 && tx.Base != nil:
			base, known = tx.Base(chs[0])
		}
		*last = none
		if known {
			if err := t.lostLock(); err != nil {
				return nil, err
			}
			results, final, gone, written := applyAll(base, chs, tx, t.emptied)
			if written && !gone {
				stored, ok, err := tx.Swap(ctx, base, final)
				switch {
				case err != nil:
					return nil, t.Fail(ctx, "update", err)
				case ok:
					*last = stored
					return wrap(results), nil
				}
			}
			// Refusals and deletions are judged on the fresh row.
		}
		if err := t.prepare(ctx, tx.Queries); err != nil {
			return nil, t.Fail(ctx, "update", err)
		}
		var results []combine.Result[R]
		err := t.inTx(ctx, func(sqlTx *sql.Tx) error {
			rec, err := tx.Lock(ctx, sqlTx)
			if err != nil {
				return err
			}
			var final R
			var gone, written bool
			results, final, gone, written = applyAll(rec, chs, tx, t.emptied)
			switch {
			case !written:
				*last = rec
				return errNothingToWrite
			case gone:
				_, err := t.TxExec(ctx, sqlTx, tx.Delete, key)
				return err
			}
			if err := tx.Write(ctx, sqlTx, rec, final); err != nil {
				return err
			}
			*last = final
			return nil
		})
		if err == nil || errors.Is(err, errNothingToWrite) {
			return wrap(results), nil
		}
		return nil, t.LoadErr(ctx, "update", err)
	}
	if t.lease != nil {
		// The lock keeps every other writer of this process and of the
		// others away: what the holder read is what is stored.
		var last R
		results, err := run(ctx, []C{ch}, &last)
		if err != nil {
			var zero R
			return zero, err
		}
		return results[0].Rec, results[0].Err
	}
	rec, err := comb.Update(ctx, key, ch, run)
	if errors.Is(err, combine.ErrWithdrawn) {
		return rec, fmt.Errorf("%s: update: %w", t.prefix, err)
	}
	return rec, err
}

// applyAll applies chs in order to rec, as a batch does: each change sees
// the record the previous ones left, a refused change leaves it as it was,
// and once a change leaves no values the record is gone for the rest (they
// get notFound). It returns one result per change, the record to store,
// gone when the row is to be deleted, and written when any change took.
func applyAll[C Change[R], R any](rec R, chs []C, tx Tx[C, R], notFound error) (results []combine.Result[R], final R, gone, written bool) {
	results = make([]combine.Result[R], len(chs))
	cur := rec
	for i, ch := range chs {
		if gone {
			results[i].Err = notFound
			continue
		}
		next, err := ch.Apply(cur)
		empty := err == nil && tx.Empty(next)
		if err == nil && !empty {
			err = tx.Check(next)
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].Rec = next
		written = true
		if empty {
			gone = true
			continue
		}
		cur = next
	}
	return results, cur, gone, written
}

// Rename is the stores' Rename: in one transaction, under oldKey's row
// lock, it applies ch to the live record and, unless that leaves no
// values, stores the result under newKey with insert (which must refuse a
// live row there with a duplicate-key error, and may first remove an
// expired one), then deletes the old row. A change the store refuses
// rolls everything back.
func Rename[C Change[R], R any](ctx context.Context, t *Table, oldKey, newKey string, ch C, tx Tx[C, R],
	insert func(ctx context.Context, sqlTx *sql.Tx, key string, rec R) error,
) (R, error) {
	var next R
	var refused error
	err := t.inTx(ctx, func(sqlTx *sql.Tx) error {
		rec, err := tx.Lock(ctx, sqlTx)
		if err != nil {
			return err
		}
		if next, refused = ch.Apply(rec); refused != nil {
			return refused
		}
		if !tx.Empty(next) {
			if refused = tx.Check(next); refused != nil {
				return refused
			}
			if err := insert(ctx, sqlTx, newKey, next); err != nil {
				return err
			}
		}
		_, err = t.TxExec(ctx, sqlTx, tx.Delete, oldKey)
		return err
	})
	var zero R
	switch {
	case err == nil:
		return next, nil
	case refused != nil:
		return zero, fmt.Errorf("%s: rename: %w", t.prefix, refused)
	case errors.Is(err, sql.ErrNoRows):
		return zero, fmt.Errorf("%s: rename: %w", t.prefix, t.errs.NotFound)
	case isMySQLError(err, errDupEntry):
		return zero, fmt.Errorf("%s: rename: %w: %w", t.prefix, t.errs.Exists, err)
	case errors.Is(err, t.errs.Corrupt):
		return zero, fmt.Errorf("%s: rename: %w", t.prefix, err)
	}
	return zero, t.Fail(ctx, "rename", err)
}
