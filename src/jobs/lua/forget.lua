--[[
  Retention: once a finished job's record has expired, drop what still names it — index entries,
  journal, cancel flag, and its entry in the expiry index.
  ARGV: 1 id, 2 its member of the expiry index
  Returns 1 if forgotten, 0 if the record still exists.
]]
local id = ARGV[1]
if redis.call('EXISTS', KEYS[K_RECORD]) == 1 then return 0 end
redis.call('ZREM', KEYS[K_ALL], id)
redis.call('ZREM', KEYS[K_TENANT_ALL], id)
for _, index in pairs(STATUS_INDEX) do redis.call('ZREM', KEYS[index], id) end
for _, index in pairs(TENANT_STATUS_INDEX) do redis.call('ZREM', KEYS[index], id) end
redis.call('DEL', KEYS[K_EVENTS], KEYS[K_CANCEL])
redis.call('ZREM', KEYS[K_EXPIRIES], ARGV[2])
return 1
