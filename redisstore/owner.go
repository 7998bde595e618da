package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// The owner index lets DeleteOwner, Devices and DeleteDevice (devices.go)
// find an owner's sessions without scanning: a sorted set per owner,
// "{Prefix}owner:{<SHA-256 of the owner>}", of store keys scored by the latest time (µs) at which each
// record can still be live (its Deadline, or Expires if later). The owner
// is hashed so that any string makes a short key and never a hash tag of
// its own.
//
// It never grows without bound: every write to the index first drops the
// entries whose time has passed, and the set expires with its last entry;
// Delete, DeleteOwner and DeleteDevice remove the entries of the records
// they delete. Entries of records that changed owner, or that Delete could
// not unlist, stay until their time passes, and DeleteOwner checks each
// record's owner before deleting it.
//
// In Redis Cluster the index and the records live in different slots, so
// no script can write both. The order makes that safe: a record names an
// owner only once the index lists it under that owner with a score no
// earlier than the record's end. Create indexes the record first; Update
// and Touch scripts check the record's "indexed" field and, when the
// index would not cover the record after the change, answer NEEDINDEX
// without changing anything, and the store indexes the record and runs
// the script again. With the middleware's sessions (Deadline set, Expires
// never past it) that happens only when the owner changes: at login.

// ownerKey is the Redis key of owner's index.
func (s *Store) ownerKey(owner string) string {
	sum := sha256.Sum256([]byte(owner))
	return s.prefix + "owner:{" + hex.EncodeToString(sum[:16]) + "}"
}

// index lists key in owner's index with a score of at least end (µs).
func (s *Store) index(ctx context.Context, owner, key string, end int64) error {
	return indexScript.Run(ctx, s.c, []string{s.ownerKey(owner)},
		micros(time.Now()), strconv.FormatInt(end, 10), key).Err()
}

// DeleteOwner removes every live record whose owner is owner, except the
// one under exceptKey, and reports how many it removed. It reads owner's
// index (one round trip), then checks and deletes each listed record with
// a script on the record's own key, pipelined: in Cluster each record
// lives in its own slot, so no one script can take them all.
func (s *Store) DeleteOwner(ctx context.Context, owner, exceptKey string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("redisstore: delete owner: %w", err)
	}
	if owner == "" {
		return 0, nil
	}
	now := time.Now().UnixMicro()
	entries, err := s.indexed(ctx, owner, now)
	if err != nil {
		return 0, callErr(ctx, "delete owner", err)
	}
	var targets []string
	for _, z := range entries {
		if k, _ := z.Member.(string); k != exceptKey {
			targets = append(targets, k)
		}
	}
	if len(targets) == 0 {
		return 0, nil
	}
	n, err := s.deleteEach(ctx, owner, targets, deleteOwnedScript, owner, strconv.FormatInt(now, 10), "")
	if err != nil {
		return n, callErr(ctx, "delete owner", err)
	}
	return n, nil
}
