--[[
  Appends to a job's journal, only while its record exists (a journal never outlives its job).
  ARGV: 1 level, 2 type, 3 message, 4 data JSON
  Returns the event id, or false.
]]
if redis.call('EXISTS', KEYS[K_RECORD]) == 0 then return false end
local eid = redis.call('XADD', KEYS[K_EVENTS], 'MAXLEN', '~', MAX_EVENTS, '*', 'level', ARGV[1], 'type', ARGV[2], 'message', ARGV[3], 'data', ARGV[4])
local ttl = redis.call('PTTL', KEYS[K_RECORD])
if ttl > 0 then redis.call('PEXPIRE', KEYS[K_EVENTS], ttl) end
return eid
