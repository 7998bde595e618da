package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts below are what makes each write one atomic step. Every
// script names only keys that share one hash tag (a record and its lock),
// so Redis Cluster runs it on one node, and go-redis's Script sends it by
// EVALSHA, falling back to EVAL on the node that has not seen it yet.
//
// A record is a hash. Its values are the fields "v:<key>", each holding
// the value's JSON; the other fields hold the record's metadata:
//
//	created, expires, deadline  microseconds since 1970 (deadline and
//	                            created are absent when zero)
//	owner                       Record.Owner, absent when ""
//	indexed                     the score under which the owner index
//	                            lists this record (see owner.go)
//	version                     Record.Version, 1 at Create, +1 per Update
//	size                        the values' encoded size, see weight
//	nulls                       present when Create stored a value that is
//	                            JSON null, which the next Update drops
//	idle, persist               Record.IdleTimeout (ns) and Record.Persist,
//	                            absent when 0
//	label, handle               Record.Label and Record.Handle, absent
//	                            when ""
//
// Times in a script are compared as Lua numbers (doubles), exact for
// microsecond times until the year 2255.

// common is prepended to every write script. locked reports whether the
// caller may write: always when it holds no lease (ARGV[1] is ""), else
// only while the lock key (KEYS[2]) still holds its token.
const common = `
local function locked()
  if ARGV[1] == '' then return true end
  return redis.call('GET', KEYS[2]) == ARGV[1]
end
-- hset and hdel write fields in batches, so that a session with thousands
-- of values stays within Lua's limit on unpack.
local function hset(key, kv)
  for i = 1, #kv, 200 do
    redis.call('HSET', key, unpack(kv, i, math.min(i + 199, #kv)))
  end
end
local function hdel(key, fields)
  for i = 1, #fields, 200 do
    redis.call('HDEL', key, unpack(fields, i, math.min(i + 199, #fields)))
  end
end
`

// createScript stores a new record unless a live one is there.
//
//	KEYS[1] record, KEYS[2] lock (only with a token)
//	ARGV[1] token, ARGV[2] now (µs), ARGV[3] PEXPIREAT (ms), ARGV[4...] fields
var createScript = redis.NewScript(common + `
if not locked() then return 'LOCKLOST' end
local exp = redis.call('HGET', KEYS[1], 'expires')
if exp and tonumber(exp) > tonumber(ARGV[2]) then return 'EXISTS' end
redis.call('DEL', KEYS[1])
local kv = {}
for i = 4, #ARGV do kv[#kv + 1] = ARGV[i] end
hset(KEYS[1], kv)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 'OK'
`)

// updateScript applies a batch of session.Changes to a live record, one
// after the other, each as Change.Apply does. It answers the record's
// fields as they were (HGETALL) followed by one result per change:
// {'OK', patch} with the fields the change set, as name, value pairs (an
// empty value for a field it deleted), which the caller applies to the
// record the changes before left; {'EMPTY', fields} with the record's fields when no
// values are left and the record is deleted (the changes after it then
// find no record); or {code, ...} for NOTFOUND, LOCKLOST, CORRUPT, NOTINT
// (key, stored value[, 'overflow']) and TOOLARGE (size), that change
// leaving the record as it was for the next. A change that answers
// NEEDINDEX (owner, score) ends the batch: it and the changes after it are
// not applied, and the caller sends them again once it has indexed the
// record.
//
// The script reads the record once (HGETALL), applies the changes to it
// in memory and writes what they changed once at the end: a batch costs
// Redis about one command per change less than its changes one by one.
//
// Compare-and-swap: a single change may come with the fields its caller
// computed with Change.Apply from the record it read (Change.Base), when
// the change keeps the owner. When the stored record is still that one
// (same version, created and expires, so no Update, Touch or new record
// came in between) and the owner index already covers it, the script
// writes those fields and answers {{}, {'CAS', version}}, without reading
// the record or applying the change itself; otherwise it goes on as above.
//
//	KEYS[1] record, KEYS[2] lock (only with a token)
//	ARGV[1] token           ARGV[2] now (µs)
//	ARGV[3] the number of changes
//	ARGV[4] k, the number of compare-and-swap arguments, then those, from c:
//	  c     the version read   c+1 its created (µs) or ''
//	  c+2   its expires (µs)   c+3 for an owned record, the latest it can
//	                           be live after the change (µs), else ''
//	  c+4   PEXPIREAT (ms) or '', c+5 n sets, c+6 n deletes, then
//	    n sets of     field, value
//	    n deletes     field
//	then for each change, from its first argument a:
//	  a     '1' to clear       a+1 new expires (µs) or ''
//	  a+2   PEXPIREAT (ms)     a+3 '1' to set the owner, a+4 to
//	  a+5   MaxSize or '0'     a+6, a+7 owner and score the caller has
//	                           just indexed the record under, or ''
//	  a+8   '1' to set the label, a+9 to
//	  a+10  '1' to set the lifetime: a+11 idle timeout (ns), a+12 deadline
//	        (µs) or '', a+13 cookie persistence
//	  a+14 n sets, a+15 n deletes, a+16 n adds, then
//	    n sets of   field, weight, value
//	    n deletes   field, weight
//	    n adds      field, weight, delta as hi, lo (see intMath)
//
// A value's weight is what it adds to the encoded object beside its
// value's bytes: its quoted key, the colon and a comma (see weight in
// record.go). The record's size field is the sum of weight + len(value)
// over its values, so the object encodes to size + 1 bytes (2 when empty):
// the script keeps it exact without having to quote keys itself.
var updateScript = redis.NewScript(updateSource)

const updateSource = common + `
if not locked() then return {{}, {'LOCKLOST'}} end
local rec = KEYS[1]
local now = tonumber(ARGV[2])
local k = tonumber(ARGV[4])
if k > 0 then
  local c = 5
  local m = redis.call('HMGET', rec, 'version', 'created', 'expires', 'indexed')
  local score = ARGV[c + 3]
  if m[1] == ARGV[c] and (m[2] or '') == ARGV[c + 1] and m[3] == ARGV[c + 2] and tonumber(m[3]) > now and
    (score == '' or (m[4] and tonumber(m[4]) >= tonumber(score))) then
    local version = string.format('%.0f', tonumber(m[1]) + 1)
    local sets, dels = {'version', version}, {}
    local i = c + 7
    for _ = 1, tonumber(ARGV[c + 5]) do sets[#sets + 1] = ARGV[i]; sets[#sets + 1] = ARGV[i + 1]; i = i + 2 end
    for _ = 1, tonumber(ARGV[c + 6]) do dels[#dels + 1] = ARGV[i]; i = i + 1 end
    hdel(rec, dels)
    hset(rec, sets)
    if ARGV[c + 4] ~= '' then redis.call('PEXPIREAT', rec, ARGV[c + 4]) end
    return {{}, {'CAS', version}}
  end
end
` + intMath + `
-- h is the record as the changes so far leave it, dirty the fields they
-- changed, pexpire the last PEXPIREAT asked for; gone once a change left
-- no values; patch the fields the change being applied sets, as field,
-- value pairs ('' for a field it deletes: no field ever holds '').
local h, dirty, pexpire, gone, patch = {}, {}, false, false, {}
local all = redis.call('HGETALL', rec)
for j = 1, #all, 2 do h[all[j]] = all[j + 1] end
local function set(f, v)
  h[f] = v
  dirty[f] = true
  patch[#patch + 1] = f
  patch[#patch + 1] = v or ''
end
-- The change being applied: its plan (field -> new value, or false for
-- none), whether it clears, and the size its values would have.
local plan, clear, size
local function get(f)
  local v = plan[f]
  if v ~= nil then return v end
  if clear then return false end
  return h[f] or false
end
local function put(f, w, v)
  local old = get(f)
  if old then size = size - tonumber(w) - #old end
  if v then size = size + tonumber(w) + #v end
  plan[f] = v
end
-- setopt sets f to v, or deletes it when v is '' or '0'.
local function setopt(f, v)
  if v ~= '' and v ~= '0' then set(f, v) elseif h[f] then set(f, nil) end
end
local function apply(a)
  if gone or not h.expires or tonumber(h.expires) <= now then return {'NOTFOUND'} end
  if not h.size then return {'CORRUPT'} end
  clear = ARGV[a] == '1'
  size = 0
  if not clear then size = tonumber(h.size) or 0 end
  plan = {}
  -- Values stored as JSON null (by Create, as given) are absent: they
  -- count for nothing and the change drops them, as Change.Apply does.
  if h.nulls and not clear then
    for f, v in pairs(h) do
      if v == 'null' and string.sub(f, 1, 2) == 'v:' then plan[f] = false end
    end
  end
  local nset, ndel, nadd = tonumber(ARGV[a + 14]), tonumber(ARGV[a + 15]), tonumber(ARGV[a + 16])
  local i = a + 17
  for _ = 1, nset do put(ARGV[i], ARGV[i + 1], ARGV[i + 2]); i = i + 3 end
  for _ = 1, ndel do put(ARGV[i], ARGV[i + 1], false); i = i + 2 end
  for _ = 1, nadd do
    local f, w = ARGV[i], ARGV[i + 1]
    local old = get(f)
    local hi, lo = 0, 0
    if old then
      hi, lo = toint(old)
      if not hi then return {'NOTINT', f, old} end
    end
    local sh, sl = addint(hi, lo, tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]))
    if not sh then return {'NOTINT', f, old or '0', 'overflow'} end
    put(f, w, fmtint(sh, sl))
    i = i + 4
  end
  local owner = h.owner or ''
  if ARGV[a + 3] == '1' then owner = ARGV[a + 4] end
  local life = ARGV[a + 10] == '1'
  local deadline = h.deadline
  if life then deadline = ARGV[a + 12] end
  local expires = h.expires
  if ARGV[a + 1] ~= '' then expires = ARGV[a + 1] end
  local maxsize = tonumber(ARGV[a + 5])
  if maxsize > 0 then
    local total = 2
    if size > 0 then total = size + 1 end
    if total > maxsize then return {'TOOLARGE', string.format('%.0f', total)} end
  end
  local version = string.format('%.0f', (tonumber(h.version) or 0) + 1)
  if size <= 0 then
    gone = true
    local out = {'expires', expires, 'version', version}
    local function add(f, v) if v and v ~= '' then out[#out + 1] = f; out[#out + 1] = v end end
    add('created', h.created)
    add('deadline', deadline)
    add('owner', owner)
    add('handle', h.handle)
    if ARGV[a + 8] == '1' then add('label', ARGV[a + 9]) else add('label', h.label) end
    if life then
      add('idle', ARGV[a + 11])
      add('persist', ARGV[a + 13])
    else
      add('idle', h.idle)
      add('persist', h.persist)
    end
    return {'EMPTY', out}
  end
  -- The owner index must list the record, under a score no earlier than
  -- its end, before the record names the owner (see owner.go).
  local indexed = false
  if owner ~= '' then
    local score = tonumber(expires)
    if deadline and deadline ~= '' and tonumber(deadline) > score then score = tonumber(deadline) end
    local ok = owner == (h.owner or '') and h.indexed and tonumber(h.indexed) >= score
    if not ok then
      if ARGV[a + 6] == owner and tonumber(ARGV[a + 7]) >= score then
        indexed = ARGV[a + 7]
      else
        return {'NEEDINDEX', owner, string.format('%.0f', score)}
      end
    end
  end
  if clear then
    for f in pairs(h) do
      if string.sub(f, 1, 2) == 'v:' and plan[f] == nil then plan[f] = false end
    end
  end
  patch = {}
  for f, v in pairs(plan) do set(f, v or nil) end
  set('size', string.format('%.0f', size))
  set('version', version)
  set('expires', expires)
  if owner ~= '' then
    set('owner', owner)
    if indexed then set('indexed', indexed) end
  else
    if h.owner then set('owner', nil) end
    if h.indexed then set('indexed', nil) end
  end
  if ARGV[a + 8] == '1' then setopt('label', ARGV[a + 9]) end
  if life then
    setopt('idle', ARGV[a + 11])
    setopt('deadline', ARGV[a + 12])
    setopt('persist', ARGV[a + 13])
  end
  if h.nulls then set('nulls', nil) end
  if ARGV[a + 1] ~= '' then pexpire = ARGV[a + 2] end
  return {'OK', patch}
end
local out = {all}
local a = 5 + k
for n = 1, tonumber(ARGV[3]) do
  local res = apply(a)
  out[n + 1] = res
  if res[1] == 'NEEDINDEX' then break end
  a = a + 17 + 3 * tonumber(ARGV[a + 14]) + 2 * tonumber(ARGV[a + 15]) + 4 * tonumber(ARGV[a + 16])
end
if gone then
  redis.call('DEL', rec)
elseif next(dirty) then
  local sets, dels = {}, {}
  for f in pairs(dirty) do
    if h[f] then sets[#sets + 1] = f; sets[#sets + 1] = h[f] else dels[#dels + 1] = f end
  end
  hdel(rec, dels)
  hset(rec, sets)
  if pexpire then redis.call('PEXPIREAT', rec, pexpire) end
end
return out
`

// intMath is the integer arithmetic of Change.Add, in Lua, whose numbers
// are doubles: an int64 n is carried as hi, lo with n = hi*1e9 + lo and
// 0 <= lo < 1e9, both exact in a double. toint accepts exactly what the
// session package's decodeInt accepts: up to 19 digits with an optional
// minus sign, or any JSON number with an integral value in the int64
// range (3.0, 3e2), read as a double as Go reads it.
const intMath = `
local E9 = 1000000000
local MAXHI, MAXLO = 9223372036, 854775807
local MINHI, MINLO = -9223372037, 145224192
local function inrange(hi, lo)
  if hi > MAXHI or (hi == MAXHI and lo > MAXLO) then return false end
  if hi < MINHI or (hi == MINHI and lo < MINLO) then return false end
  return true
end
local function digits(s)
  local neg = string.sub(s, 1, 1) == '-'
  local d = s
  if neg then d = string.sub(s, 2) end
  if #d == 0 or #d > 19 or string.find(d, '%D') then return nil end
  local hi, lo = 0, tonumber(d)
  if #d > 9 then
    hi = tonumber(string.sub(d, 1, #d - 9))
    lo = tonumber(string.sub(d, #d - 8))
  end
  if neg then
    hi, lo = -hi, -lo
    if lo < 0 then lo = lo + E9; hi = hi - 1 end
  end
  hi, lo = hi + 0, lo + 0 -- no negative zero
  if not inrange(hi, lo) then return nil end
  return hi, lo
end
local function jsonnumber(s)
  local p = string.match(s, '^%-?0()') or string.match(s, '^%-?[1-9]%d*()')
  if not p then return false end
  local q = string.match(s, '^%.%d+()', p)
  if q then p = q end
  q = string.match(s, '^[eE][%+%-]?%d+()', p)
  if q then p = q end
  return p == #s + 1
end
local function toint(raw)
  if #raw > 0 and #raw < 10 and not string.find(raw, '%D') then return 0, tonumber(raw) end
  local hi, lo = digits(raw)
  if hi then return hi, lo end
  local s = string.gsub(raw, '[ \t\r\n]+$', '')
  if not jsonnumber(s) then return nil end
  local f = tonumber(s)
  if not f or f ~= math.floor(f) or f < -9223372036854775808 or f >= 9223372036854775807 then return nil end
  return digits(string.format('%.0f', f))
end
local function addint(h1, l1, h2, l2)
  local hi, lo = h1 + h2, l1 + l2
  if lo >= E9 then lo = lo - E9; hi = hi + 1 end
  if not inrange(hi, lo) then return nil end
  return hi, lo
end
local function fmtint(hi, lo)
  local sign = ''
  if hi < 0 then
    sign = '-'
    if lo == 0 then hi = -hi else hi, lo = -hi - 1, E9 - lo end
  end
  if hi == 0 then return sign .. string.format('%.0f', lo) end
  return sign .. string.format('%.0f%09.0f', hi, lo)
end
`

// touchScript moves a live record's expiry; answers 'OK', 'NOTFOUND',
// 'LOCKLOST' or {'NEEDINDEX', owner, score} as updateScript does.
//
//	KEYS[1] record, KEYS[2] lock (only with a token)
//	ARGV[1] token, ARGV[2] now (µs), ARGV[3] expires (µs),
//	ARGV[4] PEXPIREAT (ms), ARGV[5], ARGV[6] indexed owner and score or ''
var touchScript = redis.NewScript(common + `
if not locked() then return 'LOCKLOST' end
local m = redis.call('HMGET', KEYS[1], 'expires', 'owner', 'deadline', 'indexed')
if not m[1] or tonumber(m[1]) <= tonumber(ARGV[2]) then return 'NOTFOUND' end
if m[2] and m[2] ~= '' then
  local score = tonumber(ARGV[3])
  if m[3] and tonumber(m[3]) > score then score = tonumber(m[3]) end
  if not (m[4] and tonumber(m[4]) >= score) then
    if ARGV[5] == m[2] and tonumber(ARGV[6]) >= score then
      redis.call('HSET', KEYS[1], 'indexed', ARGV[6])
    else
      return {'NEEDINDEX', m[2], string.format('%.0f', score)}
    end
  end
end
redis.call('HSET', KEYS[1], 'expires', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 'OK'
`)

// deleteScript deletes a record, while the caller's lease holds if it has
// one, and answers "OK" and the record's owner (empty for none), or
// "LOCKLOST".
//
//	KEYS[1] record, KEYS[2] lock with a lease; ARGV[1] token, or empty
var deleteScript = redis.NewScript(common + `
if not locked() then return {'LOCKLOST', ''} end
local owner = ''
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  owner = redis.call('HGET', KEYS[1], 'owner') or ''
end
redis.call('DEL', KEYS[1])
return {'OK', owner}
`)

// indexScript lists a record (ARGV[3]) in an owner's index (KEYS[1])
// under a score no lower than ARGV[2], drops the entries whose records
// ended by ARGV[1] (µs), and lets the index expire with its last entry.
var indexScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[3])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(tonumber(top[2]) / 1000) + 1000))
return 1
`)

// deleteOwnedScript deletes a live record (KEYS[1]) if its owner is ARGV[1]
// and, unless ARGV[3] is empty, its handle is ARGV[3], and answers 1, else
// 0. ARGV[2] is now (µs). A key that is not a hash is no session of this
// store: DeleteOwner and DeleteDevice pass over it.
var deleteOwnedScript = redis.NewScript(`
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
local m = redis.call('HMGET', KEYS[1], 'owner', 'expires', 'handle')
if m[1] == ARGV[1] and m[2] and tonumber(m[2]) > tonumber(ARGV[2]) and (ARGV[3] == '' or m[3] == ARGV[3]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// renewScript extends a lock (KEYS[1]) by ARGV[2] ms if it still holds
// the token ARGV[1], answering 1, else 0.
var renewScript = redis.NewScript(renewSource)

const renewSource = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`

// releaseScript deletes a lock (KEYS[1]) if it still holds the token
// ARGV[1], answering 1, else 0.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)
