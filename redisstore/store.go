// Package redisstore keeps sessions of package session in Redis: a single
// node, a Sentinel-managed primary or a Redis Cluster, through one
// go-redis [redis.UniversalClient].
//
// Each session is a Redis hash under "{Prefix}{<store key>}", one field
// per value holding the value's JSON, so HGETALL shows a readable session.
// Redis expires the hash itself (PEXPIREAT), and every read checks the
// expiry too. Every write is one Lua script that applies the request's
// [session.Change] atomically (values set, deleted and added to, owner,
// expiry, size limit), so concurrent requests of one session never retry
// and never lose each other's changes. The braces are a hash tag: a
// session's hash and its lock key live in one Cluster slot, so a script
// can check the lock and write the session in one step.
//
// The store implements [session.OwnerStore] (see [Store.DeleteOwner]),
// [session.DeviceStore] (see [Store.Devices] and [Store.DeleteDevice]) and
// [session.Locker] (see [Store.Lock]).
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed013449c2/session"
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Prefix begins the name of every Redis key the store writes, so that
	// sessions can share a database with other data. It must not contain
	// '{' or '}', which would move the hash tag. Default "session:".
	Prefix string
	// LockTTL is how long a session lock outlives a holder that stopped
	// renewing it (a crashed process). A live holder renews it every
	// LockTTL/3. Default 10 seconds; at least 30 milliseconds.
	LockTTL time.Duration
	// LockPoll caps the interval at which a request polls for a lock held
	// by another process. The interval starts at a millisecond and
	// doubles up to LockPoll. Requests waiting in one process queue in
	// that process and do not poll: only the first of them does. Default
	// 20 milliseconds.
	LockPoll time.Duration
}

const (
	defaultPrefix   = "session:"
	defaultLockTTL  = 10 * time.Second
	minLockTTL      = 30 * time.Millisecond
	defaultLockPoll = 20 * time.Millisecond
)

// Store is a session.Store on Redis. It is safe for concurrent use. Build
// one with [New].
type Store struct {
	c        redis.UniversalClient
	prefix   string
	lockTTL  time.Duration
	lockPoll time.Duration

	mu     sync.Mutex
	queues map[string]*lockQueue // per store key, while anyone holds or waits
	leases map[*lease]struct{}   // held, for Close
	closed bool

	comb       combiner  // batches the Updates of one key
	applyPlain applyFunc // applyUpdates without a lease
	casHits    atomic.Int64
}

var (
	_ session.Store       = (*Store)(nil)
	_ session.OwnerStore  = (*Store)(nil)
	_ session.DeviceStore = (*Store)(nil)
	_ session.Locker      = (*Store)(nil)

	_ session.DeviceStore = (*leasedStore)(nil)
)

// New returns a Store that keeps sessions through client, which it does
// not close. The client must be built with ContextTimeoutEnabled set
// (redis.Options, redis.ClusterOptions, redis.FailoverOptions or
// redis.UniversalOptions): without it go-redis ignores the deadline of a
// call's context while it waits for Redis, and a hung server would hold
// requests past Options.StoreTimeout and LockTimeout.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisstore: New: client is nil")
	}
	if !contextTimeoutEnabled(client) {
		return nil, errors.New("redisstore: New: build the client with ContextTimeoutEnabled: true, so that store calls end at their context's deadline")
	}
	s := &Store{
		c:        client,
		prefix:   opts.Prefix,
		lockTTL:  opts.LockTTL,
		lockPoll: opts.LockPoll,
		queues:   make(map[string]*lockQueue),
		leases:   make(map[*lease]struct{}),
	}
	s.applyPlain = func(ctx context.Context, key string, chs []*session.Change) []updateResult {
		return s.applyUpdates(ctx, key, chs, "")
	}
	if s.prefix == "" {
		s.prefix = defaultPrefix
	}
	if strings.ContainsAny(s.prefix, "{}") {
		return nil, fmt.Errorf("redisstore: New: Prefix %q contains a brace, which would move the hash tag", s.prefix)
	}
	switch {
	case s.lockTTL == 0:
		s.lockTTL = defaultLockTTL
	case s.lockTTL < minLockTTL:
		return nil, fmt.Errorf("redisstore: New: LockTTL %v is below %v", s.lockTTL, minLockTTL)
	}
	switch {
	case s.lockPoll == 0:
		s.lockPoll = defaultLockPoll
	case s.lockPoll < 0:
		return nil, fmt.Errorf("redisstore: New: LockPoll %v is negative", s.lockPoll)
	}
	return s, nil
}

// contextTimeoutEnabled reports whether client honours context deadlines,
// as far as its options tell; a client of another type is trusted.
func contextTimeoutEnabled(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// recordKey is the Redis key of the record under key. The braces make key
// the hash tag, shared with lockKey.
func (s *Store) recordKey(key string) string {
	return s.prefix + "{" + key + "}"
}

func (s *Store) lockKey(key string) string {
	return s.prefix + "{" + key + "}:lock"
}

// Load returns the live record under key in one round trip (HGETALL).
func (s *Store) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: load: %w", err)
	}
	fields, err := s.c.HGetAll(ctx, s.recordKey(key)).Result()
	switch {
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		// Not a hash: something else wrote the key. The middleware
		// starts a fresh session rather than fail every request.
		return nil, fmt.Errorf("redisstore: load: %w: %w", session.ErrCorrupt, err)
	case err != nil:
		return nil, callErr(ctx, "load", err)
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("redisstore: load: %w", session.ErrNotFound)
	}
	rec, err := decodeRecord(fields)
	if err != nil {
		return nil, err
	}
	if !time.Now().Before(rec.Expires) {
		return nil, fmt.Errorf("redisstore: load: %w", session.ErrNotFound)
	}
	return rec, nil
}

// Create stores rec under key unless a live record is there, in one round
// trip, or two when rec has an owner (the owner index is written first).
func (s *Store) Create(ctx context.Context, key string, rec *session.Record) error {
	return s.create(ctx, key, rec, "")
}

// Update applies ch to the live record under key in one atomic step (a Lua
// script) and returns the record as stored afterwards. A change that sets
// a new owner, or moves the record's end past what the owner index knows,
// costs two more round trips, to index the record first.
//
// With ch.Base, the record its caller read, the store applies ch to it
// in Go and the script only writes the result, if the stored record is
// still that one (compare-and-swap); otherwise the script applies ch
// itself, in the same call.
//
// The Updates of one key that reach the store while one of them is in
// flight wait in the process and then go to Redis together, as one script
// call that applies each of them whole, in arrival order, and refuses
// each on its own (see combine.go).
func (s *Store) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: update: %w", err)
	}
	return s.comb.update(ctx, key, ch, s.applyPlain)
}

// Touch sets the expiry of the live record under key without changing its
// values, in one round trip.
func (s *Store) Touch(ctx context.Context, key string, expires time.Time) error {
	return s.touch(ctx, key, expires, "")
}

// Delete removes the record under key. The owner index keeps the key
// until the record's end has passed; DeleteOwner skips it meanwhile.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.delete(ctx, key, "")
}

// writeKeys returns the KEYS of a write script: the record, and its lock
// when the caller holds a lease.
func (s *Store) writeKeys(key, token string) []string {
	if token == "" {
		return []string{s.recordKey(key)}
	}
	return []string{s.recordKey(key), s.lockKey(key)}
}

func (s *Store) create(ctx context.Context, key string, rec *session.Record, token string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: create: %w", err)
	}
	end := endScore(rec)
	if rec.Owner != "" {
		if err := s.index(ctx, rec.Owner, key, end); err != nil {
			return callErr(ctx, "create", err)
		}
	}
	args := append([]any{token, micros(time.Now()), expireAt(rec.Expires)}, recordFields(rec, 1, end)...)
	res, err := createScript.Run(ctx, s.c, s.writeKeys(key, token), args...).Text()
	if err != nil {
		return callErr(ctx, "create", err)
	}
	switch res {
	case "OK":
		rec.Version = 1
		return nil
	case "EXISTS":
		return fmt.Errorf("redisstore: create: %w", session.ErrExists)
	case "LOCKLOST":
		return fmt.Errorf("redisstore: create: %w", session.ErrLockLost)
	}
	return fmt.Errorf("redisstore: create: unexpected answer %q", res)
}

// maxIndexTries bounds the rounds of indexing a record and writing it: a
// round is lost only when another write moved the record's owner or end
// in between.
const maxIndexTries = 5

// update applies ch under key with the lease's token (or none), alone.
func (s *Store) update(ctx context.Context, key string, ch *session.Change, token string) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: update: %w", err)
	}
	res := s.applyUpdates(ctx, key, []*session.Change{ch}, token)[0]
	return res.rec, res.err
}

// applyUpdates applies chs under key, in order, with the lease's token
// (or none), in one script call, and more only when a change needs the
// owner index written first: the script stops at that change, and once
// the record is indexed runs it and the changes after it again.
func (s *Store) applyUpdates(ctx context.Context, key string, chs []*session.Change, token string) []updateResult {
	results := make([]updateResult, len(chs))
	// A single change with the record its caller read may go by
	// compare-and-swap (see updateScript).
	var cas []any
	var next *session.Record
	if len(chs) == 1 {
		next, cas = casArgs(chs[0])
	}
	blocks := make([][]any, len(chs))
	n := 4 + len(cas)
	for i, ch := range chs {
		blocks[i] = changeArgs(ch)
		n += len(blocks[i])
	}
	keys := s.writeKeys(key, token)
	fail := func(from int, err error) []updateResult {
		for i := from; i < len(chs); i++ {
			results[i].err = err
		}
		return results
	}
	var tries []int // NEEDINDEX answers per change
	args := make([]any, 0, n)
	for from := 0; from < len(chs); {
		args = append(args[:0], token, micros(time.Now()), len(chs)-from, len(cas))
		args = append(args, cas...)
		for _, b := range blocks[from:] {
			args = append(args, b...)
		}
		reply, err := updateScript.Run(ctx, s.c, keys, args...).Slice()
		if err != nil {
			return fail(from, callErr(ctx, "update", err))
		}
		cas = nil // a second run, after indexing, applies the change itself
		if rec, ok := casDone(reply, next); ok {
			s.casHits.Add(1)
			results[0].rec = rec
			return results
		}
		if len(reply) < 2 || len(reply)-1 > len(chs)-from {
			return fail(from, fmt.Errorf("redisstore: update: unexpected answer %v", reply))
		}
		before, _ := reply[0].([]any)
		res := reply[1:]
		last, _ := res[len(res)-1].([]any)
		needIndex := len(last) > 0 && last[0] == "NEEDINDEX"
		applied := len(res)
		if needIndex {
			applied--
		}
		var cur *session.Record // the record as the changes so far left it
		var curErr error        // why cur could not be built
		handed := false         // cur is a caller's result already
		for j := range applied {
			list, _ := res[j].([]any)
			i := from + j
			if len(list) < 2 || list[0] != "OK" {
				results[i].rec, results[i].err = decodeUpdate(list, chs[i])
				continue
			}
			switch {
			case curErr != nil:
			case cur == nil:
				cur, curErr = decodeFlat(before)
			case handed:
				next := *cur
				next.Values = maps.Clone(cur.Values)
				cur = &next
			}
			if curErr == nil {
				patch, _ := list[1].([]any)
				curErr = applyPatch(cur, patch)
			}
			if curErr != nil {
				results[i].err = curErr
				continue
			}
			results[i].rec, handed = cur, true
		}
		from += applied
		if !needIndex {
			if from < len(chs) {
				return fail(from, fmt.Errorf("redisstore: update: unexpected answer %v", reply))
			}
			break
		}
		if tries == nil {
			tries = make([]int, len(chs))
		}
		if tries[from]++; tries[from] >= maxIndexTries {
			results[from].err = fmt.Errorf("redisstore: update: the record's owner kept changing while it was being indexed")
			from++
			continue
		}
		owner, score, err := parseNeedIndex(last)
		if err != nil {
			results[from].err = err
			from++
			continue
		}
		if err := s.index(ctx, owner, key, score); err != nil {
			return fail(from, callErr(ctx, "update", err))
		}
		blocks[from][6], blocks[from][7] = owner, strconv.FormatInt(score, 10)
	}
	return results
}

// casArgs returns the compare-and-swap arguments of updateScript for ch
// (see there) and the record they store, or nothing when ch has no Base or
// the script has to apply it itself: it fails on Base (the stored record
// may be another), empties the record, changes its owner (the owner index
// may need a new entry), or Base holds a JSON null (which the stored
// record marks).
func casArgs(ch *session.Change) (*session.Record, []any) {
	base := ch.Base
	if base == nil || base.Version <= 0 || base.Expires.IsZero() || (ch.Owner != nil && *ch.Owner != base.Owner) {
		return nil, nil
	}
	for _, v := range base.Values {
		if isNull(v) {
			return nil, nil
		}
	}
	next, err := ch.Apply(base)
	if err != nil || len(next.Values) == 0 {
		return nil, nil
	}
	created := ""
	if !base.Created.IsZero() {
		created = micros(base.Created)
	}
	pexpire := ""
	if !next.Expires.Equal(base.Expires) {
		pexpire = expireAt(next.Expires)
	}
	var sets, dels []any
	setTime := func(field string, from, to time.Time) {
		switch {
		case to.Equal(from):
		case to.IsZero():
			dels = append(dels, field)
		default:
			sets = append(sets, field, micros(to))
		}
	}
	setString := func(field, from, to string) {
		switch {
		case to == from:
		case to == "":
			dels = append(dels, field)
		default:
			sets = append(sets, field, to)
		}
	}
	size := 0
	for k, v := range next.Values {
		size += weight(k) + len(v)
		if old, ok := base.Values[k]; !ok || string(old) != string(v) {
			sets = append(sets, valuePrefix+k, []byte(v))
		}
	}
	for k := range base.Values {
		if _, ok := next.Values[k]; !ok {
			dels = append(dels, valuePrefix+k)
		}
	}
	sets = append(sets, fieldSize, strconv.Itoa(size))
	setTime(fieldExpires, base.Expires, next.Expires)
	setTime(fieldDeadline, base.Deadline, next.Deadline)
	setString(fieldLabel, base.Label, next.Label)
	setString(fieldIdle, durationField(base.IdleTimeout), durationField(next.IdleTimeout))
	setString(fieldPersist, persistField(base.Persist), persistField(next.Persist))
	score := ""
	if next.Owner != "" {
		score = strconv.FormatInt(endScore(next), 10)
	}
	args := make([]any, 0, 7+len(sets)+len(dels))
	args = append(args, strconv.FormatInt(base.Version, 10), created, micros(base.Expires),
		score, pexpire, len(sets)/2, len(dels))
	args = append(args, sets...)
	args = append(args, dels...)
	return next, args
}

func durationField(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return strconv.FormatInt(int64(d), 10)
}

func persistField(p session.CookiePersistence) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(int(p))
}

// casDone reports whether updateScript's reply says that it stored next
// by compare-and-swap, and returns next with its new version.
func casDone(reply []any, next *session.Record) (*session.Record, bool) {
	if next == nil || len(reply) != 2 {
		return nil, false
	}
	res, _ := reply[1].([]any)
	if len(res) != 2 || res[0] != "CAS" {
		return nil, false
	}
	version, _ := res[1].(string)
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil {
		return nil, false
	}
	next.Version = v
	// As a read would return them: to the microsecond, in UTC.
	next.Created, next.Expires, next.Deadline = stored(next.Created), stored(next.Expires), stored(next.Deadline)
	return next, true
}

// stored returns t as the store keeps it: to the microsecond, in UTC.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// applyPatch applies to rec the fields an update set, as name, value pairs
// ("" for a field it deleted).
func applyPatch(rec *session.Record, patch []any) error {
	for i := 0; i+1 < len(patch); i += 2 {
		k, _ := patch[i].(string)
		v, _ := patch[i+1].(string)
		if v != "" {
			if err := setField(rec, k, v); err != nil {
				return err
			}
			continue
		}
		if key, ok := strings.CutPrefix(k, valuePrefix); ok {
			delete(rec.Values, key)
			continue
		}
		switch k {
		case fieldOwner:
			rec.Owner = ""
		case fieldLabel:
			rec.Label = ""
		case fieldDeadline:
			rec.Deadline = time.Time{}
		case fieldIdle:
			rec.IdleTimeout = 0
		case fieldPersist:
			rec.Persist = 0
		}
	}
	return nil
}

// decodeUpdate reads updateScript's answer for ch when it is not OK.
func decodeUpdate(res []any, ch *session.Change) (*session.Record, error) {
	code := ""
	if len(res) > 0 {
		code, _ = res[0].(string)
	}
	switch code {
	case "EMPTY":
		var flat []any
		if len(res) > 1 {
			flat, _ = res[1].([]any)
		}
		rec, err := decodeFlat(flat)
		if err != nil {
			return nil, err
		}
		if rec.Values == nil {
			rec.Values = map[string]json.RawMessage{}
		}
		return rec, nil
	case "NOTFOUND":
		return nil, fmt.Errorf("redisstore: update: %w", session.ErrNotFound)
	case "LOCKLOST":
		return nil, fmt.Errorf("redisstore: update: %w", session.ErrLockLost)
	case "CORRUPT":
		return nil, fmt.Errorf("redisstore: update: %w: no size", session.ErrCorrupt)
	case "NOTINT":
		var field, stored string
		if len(res) > 2 {
			field, _ = res[1].(string)
			stored, _ = res[2].(string)
		}
		key := strings.TrimPrefix(field, valuePrefix)
		if len(res) > 3 {
			return nil, fmt.Errorf("redisstore: update: add to %q: %w: %s + %d overflows int64", key, session.ErrNotInteger, stored, ch.Add[key])
		}
		return nil, fmt.Errorf("redisstore: update: add to %q: %w: stored value %.40s", key, session.ErrNotInteger, stored)
	case "TOOLARGE":
		var size string
		if len(res) > 1 {
			size, _ = res[1].(string)
		}
		return nil, fmt.Errorf("redisstore: update: %w: %s bytes, limit %d", session.ErrTooLarge, size, ch.MaxSize)
	}
	return nil, fmt.Errorf("redisstore: update: unexpected answer %v", res)
}

// parseNeedIndex reads the owner and score of a NEEDINDEX answer.
func parseNeedIndex(res []any) (string, int64, error) {
	if len(res) == 3 {
		owner, _ := res[1].(string)
		score, _ := res[2].(string)
		if n, err := strconv.ParseInt(score, 10, 64); err == nil {
			return owner, n, nil
		}
	}
	return "", 0, fmt.Errorf("redisstore: unexpected answer %v", res)
}

// changeArgs returns the arguments of one change in updateScript's ARGV
// (see there); the indexed owner and score (6 and 7) are filled in once
// the record has been indexed.
func changeArgs(ch *session.Change) []any {
	nset, ndel := 0, 0
	for _, v := range ch.Values {
		if isNull(v) {
			ndel++
		} else {
			nset++
		}
	}
	args := make([]any, 17, 17+3*nset+2*ndel+4*len(ch.Add))
	args[0] = flag(ch.Clear)
	args[1], args[2] = "", ""
	if !ch.Expires.IsZero() {
		args[1], args[2] = micros(ch.Expires), expireAt(ch.Expires)
	}
	args[3], args[4] = flag(ch.Owner != nil), ""
	if ch.Owner != nil {
		args[4] = *ch.Owner
	}
	args[5] = max(ch.MaxSize, 0)
	args[6], args[7] = "", ""
	args[8], args[9] = flag(ch.Label != nil), ""
	if ch.Label != nil {
		args[9] = *ch.Label
	}
	args[10], args[11], args[12], args[13] = flag(ch.Lifetime != nil), "", "", ""
	if l := ch.Lifetime; l != nil {
		args[11] = strconv.FormatInt(int64(l.IdleTimeout), 10)
		if !l.Deadline.IsZero() {
			args[12] = micros(l.Deadline)
		}
		args[13] = strconv.Itoa(int(l.Persist))
	}
	args[14], args[15], args[16] = nset, ndel, len(ch.Add)
	for k, v := range ch.Values {
		if !isNull(v) {
			args = append(args, valuePrefix+k, weight(k), []byte(v))
		}
	}
	for k, v := range ch.Values {
		if isNull(v) {
			args = append(args, valuePrefix+k, weight(k))
		}
	}
	for k, d := range ch.Add {
		hi, lo := splitInt(d)
		args = append(args, valuePrefix+k, weight(k), hi, lo)
	}
	return args
}

// splitInt returns n as the script's integer arithmetic carries it (see
// intMath): hi, lo with n = hi*1e9 + lo and 0 <= lo < 1e9.
func splitInt(n int64) (hi, lo int64) {
	hi, lo = n/1e9, n%1e9
	if lo < 0 {
		hi, lo = hi-1, lo+1e9
	}
	return hi, lo
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return ""
}

func (s *Store) touch(ctx context.Context, key string, expires time.Time, token string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: touch: %w", err)
	}
	args := []any{token, "", micros(expires), expireAt(expires), "", ""}
	for try := 1; ; try++ {
		args[1] = micros(time.Now())
		res, err := touchScript.Run(ctx, s.c, s.writeKeys(key, token), args...).Result()
		if err != nil {
			return callErr(ctx, "touch", err)
		}
		switch res {
		case "OK":
			return nil
		case "NOTFOUND":
			return fmt.Errorf("redisstore: touch: %w", session.ErrNotFound)
		case "LOCKLOST":
			return fmt.Errorf("redisstore: touch: %w", session.ErrLockLost)
		}
		list, _ := res.([]any)
		if len(list) == 0 || list[0] != "NEEDINDEX" || try >= maxIndexTries {
			return fmt.Errorf("redisstore: touch: unexpected answer %v", res)
		}
		owner, score, err := parseNeedIndex(list)
		if err != nil {
			return err
		}
		if err := s.index(ctx, owner, key, score); err != nil {
			return callErr(ctx, "touch", err)
		}
		args[4], args[5] = owner, strconv.FormatInt(score, 10)
	}
}

func (s *Store) delete(ctx context.Context, key, token string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	res, err := deleteScript.Run(ctx, s.c, s.writeKeys(key, token), token).StringSlice()
	switch {
	case err != nil:
		return callErr(ctx, "delete", err)
	case len(res) != 2:
		return fmt.Errorf("redisstore: delete: unexpected answer %q", res)
	case res[0] == "LOCKLOST":
		return fmt.Errorf("redisstore: delete: %w", session.ErrLockLost)
	}
	if owner := res[1]; owner != "" {
		// The record is gone: its entry in the owner's index goes too,
		// so that logins and logouts in a loop do not grow the index
		// until the entries' scores pass. If this fails, that is what
		// removes the entry; the delete itself is done.
		_ = s.c.ZRem(ctx, s.ownerKey(owner), key).Err()
	}
	return nil
}

// callErr wraps the error of a Redis call, and the context's error when
// the context ended, since go-redis may report a deadline as a network
// timeout.
func callErr(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redisstore: %s: %w (%w)", op, cerr, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}
