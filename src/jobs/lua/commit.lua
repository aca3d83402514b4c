--[[
  The attempt asks to write the output checkpoint: only while it still owns the job and no cancel
  is pending. From then on (sticky, across attempts) the job can no longer be cancelled, so a
  cancelled job never has a checkpoint.
  ARGV: 1 id, 2 token
  Returns ok | lost | cancelled | missing | the current status.
]]
local status = redis.call('HGET', KEYS[K_RECORD], 'status')
if not status then return 'missing' end
if status ~= 'running' then return status end
if redis.call('GET', KEYS[K_LOCK]) ~= ARGV[2] then return 'lost' end
if redis.call('EXISTS', KEYS[K_CANCEL]) == 1 then return 'cancelled' end
redis.call('HSET', KEYS[K_RECORD], 'committing', ARGV[2])
return 'ok'
