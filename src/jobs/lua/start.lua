--[[
  An attempt starts (the processor holds BullMQ's lock with `token`): a job cancelled meanwhile
  ends here; otherwise it becomes running, one more attempt.
  ARGV: 1 id, 2 token, 3 worker, 4 now (ISO), 5 retention seconds
  Returns the status that decides what the attempt does: running | cancelled | lost | missing |
  a terminal status (nothing to do).
]]
local id = ARGV[1]
local status = redis.call('HGET', KEYS[K_RECORD], 'status')
if not status then return 'missing' end
if TERMINAL[status] then return status end
if redis.call('GET', KEYS[K_LOCK]) ~= ARGV[2] then return 'lost' end
if redis.call('EXISTS', KEYS[K_CANCEL]) == 1 then
  finish(id, status, 'cancelled', tonumber(ARGV[5]))
  redis.call('HSET', KEYS[K_RECORD], 'finishedAt', ARGV[4])
  status_event('info', 'Job cancelled.', '{"status":"cancelled"}', status)
  return 'cancelled'
end
if not redis.call('HGET', KEYS[K_RECORD], 'startedAt') then redis.call('HSET', KEYS[K_RECORD], 'startedAt', ARGV[4]) end
redis.call('HINCRBY', KEYS[K_RECORD], 'attempts', 1)
redis.call('HDEL', KEYS[K_RECORD], 'error')
redis.call('HSET', KEYS[K_RECORD], 'worker', ARGV[3])
move_status(id, status, 'running')
status_event('info', 'Job running.', cjson.encode({ status = 'running', worker = ARGV[3] }), status)
return 'running'
