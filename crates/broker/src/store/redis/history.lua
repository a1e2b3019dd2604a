-- A session's visitor record and its newest sessions, read in one step so
-- that both are of the same moment even if a merge commits in between.
--
-- KEYS: 1 the session
-- ARGV: 1 key prefix of the site, 2 most sessions, 3 the session's id
-- Returns {} (no session) | {record JSON or false, {id, created, state,
-- end, agent name, expires, consent expires}…}.
local vis = redis.call('HGET', KEYS[1], 'vis')
if not vis then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
  return {false}
end
local p = ARGV[1]
local rec = redis.call('HGET', p .. 'v:' .. vis, 'rec')
local out = {rec or false}
local ids = redis.call('ZREVRANGE', p .. 'vs:' .. vis, 0, tonumber(ARGV[2]) - 1)
-- A record of its own keeps no list: its one session is this one.
if #ids == 0 then ids = {ARGV[3]} end
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', p .. 'sess:' .. id, 'c', 'state', 'end', 'an', 'x', 'cx')
  if f[2] then
    out[#out + 1] = {id, f[1], f[2], f[3] or '', f[4] or '', f[5], f[6] or ''}
  end
end
return out
