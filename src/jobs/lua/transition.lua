--[[
  Every other transition that ends or moves a job, under a guard (fencing): succeeded, failed,
  cancelled, or back to queued (hand-over, retry, requeue by the reconciler).
  ARGV: 1 id, 2 guard kind (token | bull-missing | bull-failed | bull-unlocked | none), 3 guard value,
        4 allowed current statuses (comma-separated), 5 target status, 6 retention seconds,
        7 event level, 8 event message, 9 event data JSON, 10.. field, value pairs ("\0" deletes)
  Returns {1, previous} or {0, current status or '', reason}.
]]
local id = ARGV[1]
local status = redis.call('HGET', KEYS[K_RECORD], 'status')
if not status then return {0, '', 'missing'} end
if not guard_holds(ARGV[2], ARGV[3], id) then return {0, status, 'guard'} end
local allowed = false
for from in string.gmatch(ARGV[4], '[^,]+') do
  if from == status then allowed = true end
end
if not allowed then return {0, status, 'status'} end
local to = ARGV[5]
if TERMINAL[to] then finish(id, status, to, tonumber(ARGV[6])) else move_status(id, status, to) end
set_fields(ARGV, 10)
status_event(ARGV[7], ARGV[8], ARGV[9], status)
return {1, status}
