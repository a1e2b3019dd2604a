-- Starts a redemption (see `Store::begin_redeem`): refuses while a limit
-- is in force; else looks up the live code, and records a failure for the
-- agent and the site when there is none, in one step, so concurrent
-- guesses on any replica count against each other exactly.
--
-- KEYS: 1 the site's failures, 2 the agent's failures, 3 the code
-- ARGV: 1 now, 2 session prefix, 3 how long failures are kept (ms), then
--   per limit window: whose ("a"/"s"), n, since, window ms
-- Returns {"locked", at…} | {"live", session id} | {"failed", at…}, where
-- at… is, per window, the n-th newest failure after `since` (-1 = none).
local now = tonumber(ARGV[1])

local function nth_newest()
  local out = {}
  local locked = false
  for i = 4, #ARGV, 4 do
    local key = ARGV[i] == 'a' and KEYS[2] or KEYS[1]
    local n = math.max(tonumber(ARGV[i + 1]), 1)
    local hit = redis.call('ZREVRANGEBYSCORE', key, '+inf', '(' .. ARGV[i + 2], 'WITHSCORES', 'LIMIT', n - 1, 1)
    if hit[2] then
      local at = tonumber(hit[2])
      out[#out + 1] = at
      if at + tonumber(ARGV[i + 3]) > now then locked = true end
    else
      out[#out + 1] = -1
    end
  end
  return out, locked
end

local before, locked = nth_newest()
if locked then
  table.insert(before, 1, 'locked')
  return before
end
local holder = redis.call('GET', KEYS[3])
if holder then
  local f = redis.call('HMGET', ARGV[2] .. holder, 'state', 'x')
  if f[1] == 'pending' and tonumber(f[2]) > now then return {'live', holder} end
end
local keep = tonumber(ARGV[3])
local member = now .. ':' .. redis.call('INCR', KEYS[1] .. ':n')
redis.call('PEXPIRE', KEYS[1] .. ':n', keep)
for _, key in ipairs({KEYS[1], KEYS[2]}) do
  redis.call('ZADD', key, now, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - keep)
  redis.call('PEXPIRE', key, keep)
end
local after = nth_newest()
table.insert(after, 1, 'failed')
return after
