-- Records a new pending session, atomically with the creation limits, the
-- choice of its code and its visitor record (see `RedisStore::create_session`).
-- Every key is under the site's hash tag, so the script runs on one slot.
--
-- KEYS: 1 session, 2 event log, 3 site live codes, 4 site deadlines,
--   5 site session count, 6 visitor record, 7 its sessions, 8 its live
--   codes, 9 its recent codes, 10 address live codes, 11 address recent
--   codes, 12 merged record, 13 its sessions, 14 its live codes, 15 its
--   recent codes, 16 visitor-id index, 17 user-id index, 18.. candidate codes
-- ARGV: 1 now, 2 session id, 3 expires_at, 4 visitor_live,
--   5 visitor_per_minute, 6 address_live, 7 address_per_minute, 8 site_live,
--   9 has address (1/0), 10 record version read ("" = none),
--   11 merged record version read ("" = no merge), 12 record JSON,
--   13 visitor-id index value ("" = leave, "-" = delete), 14 user-id index
--   value ("" = leave), 15 first event JSON, 16 retention ms,
--   17 session prefix (for holders' records), 18 visitor-id index read
--   ("" = none), 19 user-id index read, 20 the record can be found again
--   (it has a visitor or user id: 1/0), 21 field count, 22.. fields
-- Returns {"ok", code index, merged} | {"taken"} | {"limited", scope, until}
-- | {"retry"} (a visitor record changed since it was read).
local now = tonumber(ARGV[1])
local sid = ARGV[2]
local expires = tonumber(ARGV[3])
local minute = 60000

local function over(live_key, rate_key, live_max, rate_max)
  if live_max > 0 then
    redis.call('ZREMRANGEBYSCORE', live_key, '-inf', now)
    if redis.call('ZCARD', live_key) >= live_max then
      local first = redis.call('ZRANGE', live_key, 0, 0, 'WITHSCORES')
      return 'live', tonumber(first[2])
    end
  end
  if rate_max > 0 then
    redis.call('ZREMRANGEBYSCORE', rate_key, '-inf', now - minute)
    if redis.call('ZCARD', rate_key) >= rate_max then
      local first = redis.call('ZRANGE', rate_key, 0, 0, 'WITHSCORES')
      return 'rate', tonumber(first[2]) + minute
    end
  end
  return nil
end

-- Versions first: nothing is counted for a record someone else is changing.
local function version(key)
  local v = redis.call('HGET', key, 'ver')
  if v then return v end
  return ''
end
local function index(key)
  return redis.call('GET', key) or ''
end
if version(KEYS[6]) ~= ARGV[10] then return {'retry'} end
if index(KEYS[16]) ~= ARGV[18] or index(KEYS[17]) ~= ARGV[19] then return {'retry'} end
local merging = ARGV[11] ~= ''
if merging and version(KEYS[12]) ~= ARGV[11] then return {'retry'} end

local kind, until_ms = over(KEYS[8], KEYS[9], tonumber(ARGV[4]), tonumber(ARGV[5]))
if kind then return {'limited', 'visitor_' .. kind, until_ms} end
if ARGV[9] == '1' then
  kind, until_ms = over(KEYS[10], KEYS[11], tonumber(ARGV[6]), tonumber(ARGV[7]))
  if kind then return {'limited', 'address_' .. kind, until_ms} end
end
local site_live = tonumber(ARGV[8])
if site_live > 0 then
  -- Expired members stay until the sweep ends their sessions.
  if redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf') >= site_live then
    return {'limited', 'site_live', now + minute}
  end
end

-- The first candidate nobody holds; else the first whose holder is no
-- longer live (it left `pending`, or its code expired unnoticed).
local chosen = nil
for i = 18, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then chosen = i break end
end
if not chosen then
  for i = 18, #KEYS do
    local holder = redis.call('GET', KEYS[i])
    local f = redis.call('HMGET', ARGV[17] .. holder, 'state', 'x')
    if f[1] ~= 'pending' or tonumber(f[2]) <= now then chosen = i break end
  end
end
if not chosen then return {'taken'} end

local retain = tonumber(ARGV[16])
local function keep(key) redis.call('PEXPIRE', key, retain) end

-- The visitor record, and the merge of an anonymous one into it.
local merged = 0
redis.call('HSET', KEYS[6], 'ver', tostring(tonumber(ARGV[10] ~= '' and ARGV[10] or '0') + 1), 'rec', ARGV[12])
keep(KEYS[6])
local rid = string.match(KEYS[6], 'v:(%x+)$')
if merging then
  local moved = redis.call('ZRANGE', KEYS[13], 0, -1)
  for _, other in ipairs(moved) do
    redis.call('HSET', ARGV[17] .. other, 'vis', rid)
  end
  merged = #moved
  redis.call('ZUNIONSTORE', KEYS[7], 2, KEYS[7], KEYS[13])
  redis.call('ZUNIONSTORE', KEYS[8], 2, KEYS[8], KEYS[14])
  redis.call('ZUNIONSTORE', KEYS[9], 2, KEYS[9], KEYS[15])
  redis.call('DEL', KEYS[12], KEYS[13], KEYS[14], KEYS[15])
end
if ARGV[13] == '-' then
  redis.call('DEL', KEYS[16])
elseif ARGV[13] ~= '' then
  redis.call('SET', KEYS[16], ARGV[13], 'PX', retain)
end
if ARGV[14] ~= '' then redis.call('SET', KEYS[17], ARGV[14], 'PX', retain) end

-- The session, its code, its first event and the indexes that count it.
local fields = {}
for i = 22, 21 + tonumber(ARGV[21]) do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'code'
fields[#fields + 1] = string.match(KEYS[chosen], 'code:(%x+)$')
redis.call('HSET', KEYS[1], unpack(fields))
keep(KEYS[1])
local created = now
local ttl = math.max(expires - now, 0) + minute
redis.call('SET', KEYS[chosen], sid, 'PX', ttl)
-- The site's live codes, by expiry: also what the sweep reads for codes
-- that run out.
redis.call('ZADD', KEYS[3], expires, sid)
-- A record of its own (no visitor or user id) is never found again: its
-- history is this session, and no limit counts it.
if ARGV[20] == '1' then
  redis.call('ZADD', KEYS[7], created, sid)
  keep(KEYS[7])
  redis.call('ZADD', KEYS[8], expires, sid)
  redis.call('ZADD', KEYS[9], created, sid)
  redis.call('PEXPIRE', KEYS[8], ttl)
  redis.call('PEXPIRE', KEYS[9], ttl)
end
if ARGV[9] == '1' then
  redis.call('ZADD', KEYS[10], expires, sid)
  redis.call('ZADD', KEYS[11], created, sid)
  redis.call('PEXPIRE', KEYS[10], ttl)
  redis.call('PEXPIRE', KEYS[11], ttl)
end
redis.call('INCR', KEYS[5])
redis.call('RPUSH', KEYS[2], ARGV[15])
keep(KEYS[2])
return {'ok', chosen - 17, merged}
