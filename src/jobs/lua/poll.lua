--[[
  What a running attempt checks between batches: does it still own the job, is a cancel pending.
  ARGV: 1 id, 2 token
  Returns ok | lost | cancelled | missing | the current status.
]]
if redis.call('GET', KEYS[K_LOCK]) ~= ARGV[2] then return 'lost' end
if redis.call('EXISTS', KEYS[K_CANCEL]) == 1 then return 'cancelled' end
local status = redis.call('HGET', KEYS[K_RECORD], 'status')
if not status then return 'missing' end
if status ~= 'running' then return status end
return 'ok'
