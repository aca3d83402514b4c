--[[
  Reserves the output checkpoint name and creates the queued record, in one step, so two
  submissions naming one output can never both be accepted.
  ARGV: 1 id, 2 type, 3 createdAt, 4 spec JSON, 5 record key prefix, 6 upload holder prefix,
        7 "queued" event data JSON, 8 '0' for a job that writes no checkpoint (nothing reserved)
  Returns {1, seq} or {0, holder}.
]]
local id = ARGV[1]
local reserves = ARGV[8] ~= '0'
local holder = reserves and redis.call('GET', KEYS[K_OUTPUT])
if holder and holder ~= id then
  -- An upload installing this name holds it for a bounded time (the key has a TTL).
  if string.sub(holder, 1, #ARGV[6]) == ARGV[6] then return {0, holder} end
  local status = redis.call('HGET', ARGV[5] .. holder, 'status')
  if status == 'queued' or status == 'running' then return {0, holder} end
  -- Otherwise the holder ended without releasing (a crash) or its record expired: take over.
end
if redis.call('EXISTS', KEYS[K_RECORD]) == 1 then return {0, id} end
if reserves then redis.call('SET', KEYS[K_OUTPUT], id) end
local seq = redis.call('INCR', KEYS[K_SEQ])
redis.call('HSET', KEYS[K_RECORD], 'status', 'queued', 'type', ARGV[2], 'createdAt', ARGV[3], 'attempts', 0, 'seq', seq, 'spec', ARGV[4])
redis.call('ZADD', KEYS[K_ALL], seq, id)
redis.call('ZADD', KEYS[STATUS_INDEX.queued], seq, id)
append_event('info', 'message', 'Job queued.', ARGV[7])
return {1, seq}
