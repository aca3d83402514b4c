--[[
  Rolls back a submission that could not be enqueued: record, indexes, journal, reservation.
  ARGV: 1 id
]]
local id = ARGV[1]
redis.call('DEL', KEYS[K_RECORD], KEYS[K_EVENTS], KEYS[K_CANCEL])
redis.call('ZREM', KEYS[K_ALL], id)
redis.call('ZREM', KEYS[K_TENANT_ALL], id)
for _, index in pairs(STATUS_INDEX) do redis.call('ZREM', KEYS[index], id) end
for _, index in pairs(TENANT_STATUS_INDEX) do redis.call('ZREM', KEYS[index], id) end
release_output(id)
return 1
