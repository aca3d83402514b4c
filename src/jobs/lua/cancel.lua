--[[
  A cancel is state, whatever the queue says: a queued job ends cancelled now; a running one gets
  the flag (its worker stops at the next batch and ends it) and its worker is told. A job already
  writing its output checkpoint can no longer be cancelled.
  ARGV: 1 id, 2 now (ISO), 3 retention seconds, 4 cancel channel
  Returns cancelled | requested | finishing | missing | a terminal status.
]]
local id = ARGV[1]
local status = redis.call('HGET', KEYS[K_RECORD], 'status')
if not status then return 'missing' end
if TERMINAL[status] then return status end
if redis.call('HEXISTS', KEYS[K_RECORD], 'committing') == 1 then return 'finishing' end
if status == 'queued' then
  finish(id, status, 'cancelled', tonumber(ARGV[3]))
  redis.call('HSET', KEYS[K_RECORD], 'finishedAt', ARGV[2])
  status_event('info', 'Job cancelled.', '{"status":"cancelled"}', status)
  return 'cancelled'
end
redis.call('SET', KEYS[K_CANCEL], '1', 'EX', tonumber(ARGV[3]))
append_event('info', 'message', 'Cancellation requested; the worker stops at the next batch.', '{"cancelRequested":true}')
redis.call('PUBLISH', ARGV[4], id)
return 'requested'
