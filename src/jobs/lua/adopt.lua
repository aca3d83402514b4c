--[[
  A record written before tenants (no `tenant` field) joins the default tenant: the field, and its
  place in that tenant's indexes. Run once over every job at the first start after the upgrade.
  ARGV: 1 id
  Returns 1 if adopted, 0 if it already had a tenant or is gone.
]]
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[K_RECORD], 'tenant') == 1 then return 0 end
local status = redis.call('HGET', KEYS[K_RECORD], 'status')
if not status then return 0 end
local seq = redis.call('HGET', KEYS[K_RECORD], 'seq') or redis.call('ZSCORE', KEYS[K_ALL], id) or 0
redis.call('HSET', KEYS[K_RECORD], 'tenant', DEFAULT_TENANT)
redis.call('ZADD', KEYS[K_TENANT_ALL], seq, id)
redis.call('ZADD', KEYS[TENANT_STATUS_INDEX[status]], seq, id)
return 1
