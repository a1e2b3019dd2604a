-- Commits a session's next state and events as a compare-and-set on the
-- state (and visitor record) it was read in (see `RedisStore::commit`).
--
-- KEYS: 1 session, 2 event log, 3 site live codes, 4 site deadlines,
--   5 the session's code, 6 its visitor's live codes, 7 its address's live
--   codes
-- ARGV: 1 session id, 2 state read, 3 visitor record read, 4 leaves
--   pending (1/0), 5 next deadline ("" = none), 6 ended (1/0), 7 retention
--   ms, 8 event count, 9.. events, then field/value pairs to set
-- Returns {"ok", seq of the last event} | {"conflict"}.
local f = redis.call('HMGET', KEYS[1], 'state', 'vis')
if f[1] ~= ARGV[2] or (f[2] or '') ~= ARGV[3] then return {'conflict'} end
local sid = ARGV[1]
local n = tonumber(ARGV[8])
local fields = {}
for i = 9 + n, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[1], 'code')
  if redis.call('GET', KEYS[5]) == sid then redis.call('DEL', KEYS[5]) end
  redis.call('ZREM', KEYS[3], sid)
  redis.call('ZREM', KEYS[6], sid)
  redis.call('ZREM', KEYS[7], sid)
end
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[4], sid)
else
  redis.call('ZADD', KEYS[4], tonumber(ARGV[5]), sid)
end
local seq = 0
for i = 9, 8 + n do seq = redis.call('RPUSH', KEYS[2], ARGV[i]) end
if ARGV[6] == '1' then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]))
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[7]))
end
return {'ok', seq}
