--[[
  An attempt starts (the processor holds BullMQ's lock with `token`): a job cancelled meanwhile
  ends here; a job whose tenant already runs as many jobs as it may (maxConcurrentJobs) waits
  (`throttled`: the attempt puts it back without spending an attempt); otherwise it becomes
  running, one more attempt, and the fair-scheduling clock advances to its tag (create.lua).
  The tenant's running index is the count of its slots: every path that ends or requeues a job
  moves it out of that index in the same script, and the reconciler settles a crashed one.
  ARGV: 1 id, 2 token, 3 worker, 4 now (ISO), 5 retention seconds, 6 default maxConcurrentJobs
  Returns the status that decides what the attempt does: running | throttled | cancelled | lost |
  missing | a terminal status (nothing to do).
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
local limit = quota('maxConcurrentJobs', ARGV[6])
if limit > 0 then
  local running = redis.call('ZCARD', KEYS[TENANT_STATUS_INDEX.running])
  -- A job still `running` from a crashed attempt holds its own slot: it may take it again.
  if redis.call('ZSCORE', KEYS[TENANT_STATUS_INDEX.running], id) then running = running - 1 end
  if running >= limit then
    -- Said once per job in its journal (a throttled job is put back and retaken many times).
    if redis.call('HSETNX', KEYS[K_RECORD], 'throttled', '1') == 1 then
      append_event('info', 'message', 'Waiting: the tenant already runs ' .. running .. ' job(s), its limit (maxConcurrentJobs); the job starts when one ends.', cjson.encode({ throttled = { running = running, limit = limit } }))
    end
    return 'throttled'
  end
end
local tag = tonumber(redis.call('HGET', KEYS[K_RECORD], 'priority'))
if tag and tag > (tonumber(redis.call('HGET', KEYS[K_FAIR], 'now')) or 0) then redis.call('HSET', KEYS[K_FAIR], 'now', tag) end
if not redis.call('HGET', KEYS[K_RECORD], 'startedAt') then redis.call('HSET', KEYS[K_RECORD], 'startedAt', ARGV[4]) end
redis.call('HINCRBY', KEYS[K_RECORD], 'attempts', 1)
redis.call('HDEL', KEYS[K_RECORD], 'error')
redis.call('HSET', KEYS[K_RECORD], 'worker', ARGV[3])
move_status(id, status, 'running')
status_event('info', 'Job running.', cjson.encode({ status = 'running', worker = ARGV[3] }), status)
return 'running'
