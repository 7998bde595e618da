package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed013449c2/session"
)

// "Your devices" ([session.DeviceStore]) reads the owner index too: the
// index names every record that can be the owner's (see owner.go), and
// each listed record is then read, or checked and deleted, on its own key,
// pipelined, since in Cluster every record is in a slot of its own.

// devicePage is how many records one pipeline of Devices reads.
const devicePage = 256

// indexed returns the keys listed in owner's index whose records can still
// be live, the latest to end first, with their scores (µs).
func (s *Store) indexed(ctx context.Context, owner string, now int64) ([]redis.Z, error) {
	return s.c.ZRevRangeByScoreWithScores(ctx, s.ownerKey(owner), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now, 10), Max: "+inf",
	}).Result()
}

// Devices implements [session.DeviceStore]: the live records of owner, at
// most limit of them (those that expire last when there are more), the
// latest to expire first. It reads owner's index (one round trip), then
// the handle, label, times and owner of each listed record (HMGET,
// pipelined, a page of records at a time) and keeps those whose owner is
// owner, byte for byte. A page ends the reading early when limit records
// are found that expire no earlier than any record not yet read can
// (the index scores a record by the latest it can be live). Values are
// not read.
func (s *Store) Devices(ctx context.Context, owner string, limit int) ([]session.DeviceRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: devices: %w", err)
	}
	if owner == "" || limit <= 0 {
		return nil, nil
	}
	now := time.Now()
	entries, err := s.indexed(ctx, owner, now.UnixMicro())
	if err != nil {
		return nil, callErr(ctx, "devices", err)
	}
	var out []session.DeviceRecord
	byExpiry := func(a, b session.DeviceRecord) int {
		return cmp.Or(b.Expires.Compare(a.Expires), b.Created.Compare(a.Created), strings.Compare(a.Handle, b.Handle))
	}
	for from := 0; from < len(entries); from += devicePage {
		page := entries[from:min(from+devicePage, len(entries))]
		if len(out) >= limit {
			// Every record not read yet expires by its score at the
			// latest: done once the limit-th found expires no earlier.
			slices.SortFunc(out, byExpiry)
			out = out[:limit]
			if out[limit-1].Expires.UnixMicro() >= int64(page[0].Score) {
				break
			}
		}
		p := s.c.Pipeline()
		cmds := make([]*redis.SliceCmd, len(page))
		for i, z := range page {
			key, _ := z.Member.(string)
			cmds[i] = p.HMGet(ctx, s.recordKey(key), fieldOwner, fieldExpires, fieldCreated, fieldHandle, fieldLabel, fieldIdle)
		}
		_, err := p.Exec(ctx)
		for _, c := range cmds {
			switch err := c.Err(); {
			case redis.HasErrorPrefix(err, "WRONGTYPE"):
				continue // not a hash: not a session of this store
			case err != nil:
				return nil, callErr(ctx, "devices", err)
			}
			if d, ok := deviceOf(c.Val(), owner, now); ok {
				out = append(out, d)
			}
		}
		if err != nil && !redis.HasErrorPrefix(err, "WRONGTYPE") {
			return nil, callErr(ctx, "devices", err)
		}
	}
	slices.SortFunc(out, byExpiry)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// deviceOf reads the fields Devices asked for (owner, expires, created,
// handle, label, idle) and reports whether they are a record of owner
// live at now.
func deviceOf(v []any, owner string, now time.Time) (session.DeviceRecord, bool) {
	str := func(i int) string {
		s, _ := v[i].(string)
		return s
	}
	if len(v) != 6 || str(0) != owner {
		return session.DeviceRecord{}, false
	}
	expires, err := strconv.ParseInt(str(1), 10, 64)
	if err != nil || expires <= now.UnixMicro() {
		return session.DeviceRecord{}, false
	}
	d := session.DeviceRecord{Handle: str(3), Label: str(4), Expires: time.UnixMicro(expires).UTC()}
	if created, err := strconv.ParseInt(str(2), 10, 64); err == nil {
		d.Created = time.UnixMicro(created).UTC()
	}
	if idle, err := strconv.ParseInt(str(5), 10, 64); err == nil {
		d.IdleTimeout = time.Duration(idle)
	}
	return d, true
}

// DeleteDevice implements [session.DeviceStore]: it deletes owner's live
// record whose handle is handle, owner and handle matched byte for byte,
// and reports whether there was one. It reads owner's index (one round
// trip), then runs on each listed record's own key a script that deletes
// it only if its owner and handle are those and it is live, pipelined
// (a second round trip). Should two live records share the handle (the
// moment of a Regenerate, whose new record keeps it), both end.
func (s *Store) DeleteDevice(ctx context.Context, owner, handle string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("redisstore: delete device: %w", err)
	}
	if owner == "" || handle == "" {
		return false, nil
	}
	now := time.Now()
	entries, err := s.indexed(ctx, owner, now.UnixMicro())
	if err != nil {
		return false, callErr(ctx, "delete device", err)
	}
	keys := make([]string, len(entries))
	for i, z := range entries {
		keys[i], _ = z.Member.(string)
	}
	n, err := s.deleteEach(ctx, owner, keys, deleteOwnedScript, owner, micros(now), handle)
	if err != nil {
		return n > 0, callErr(ctx, "delete device", err)
	}
	return n > 0, nil
}

// deleteEach runs script (which answers 1 when it deleted its record, else
// 0) on the record of each of keys, with args, pipelined, and drops the
// records it deleted from owner's index. It reports how many it deleted
// and the first error.
func (s *Store) deleteEach(ctx context.Context, owner string, keys []string, script *redis.Script, args ...any) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	cmds := make([]*redis.Cmd, len(keys))
	run := func(src bool, only []int) error {
		p := s.c.Pipeline()
		for _, i := range only {
			k := []string{s.recordKey(keys[i])}
			if src {
				cmds[i] = script.Eval(ctx, p, k, args...)
			} else {
				cmds[i] = script.EvalSha(ctx, p, k, args...)
			}
		}
		_, err := p.Exec(ctx)
		return err
	}
	all := make([]int, len(keys))
	for i := range all {
		all[i] = i
	}
	err := run(false, all)
	if err != nil {
		// A node that has not seen the script yet answers NOSCRIPT: send
		// those again with the script's source.
		var again []int
		for i, c := range cmds {
			if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
				again = append(again, i)
			}
		}
		if len(again) > 0 {
			err = run(true, again)
		}
	}
	n := 0
	var deleted []any
	var firstErr error
	for i, c := range cmds {
		v, err := c.Int()
		switch {
		case err != nil && firstErr == nil:
			firstErr = err
		case err == nil && v == 1:
			n++
			deleted = append(deleted, keys[i])
		}
	}
	if firstErr == nil && err != nil {
		firstErr = err
	}
	if len(deleted) > 0 {
		// Dropping the entries of the records just deleted keeps the index
		// short; an entry left behind by an error only costs a check.
		if zerr := s.c.ZRem(ctx, s.ownerKey(owner), deleted...).Err(); zerr != nil && firstErr == nil {
			firstErr = zerr
		}
	}
	return n, firstErr
}

// Devices is the store's: listing an owner's sessions does not depend on
// holding one session's lock.
func (ls *leasedStore) Devices(ctx context.Context, owner string, limit int) ([]session.DeviceRecord, error) {
	return ls.l.s.Devices(ctx, owner, limit)
}

// DeleteDevice is the store's, as DeleteOwner is: the middleware ends the
// lease's own session with Destroy, not by its handle.
func (ls *leasedStore) DeleteDevice(ctx context.Context, owner, handle string) (bool, error) {
	return ls.l.s.DeleteDevice(ctx, owner, handle)
}
