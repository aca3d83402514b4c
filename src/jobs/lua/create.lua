--[[
  Creates a job in one step: checks the tenant's quota of queued + running jobs, reserves the
  output checkpoint name, writes the queued record and its indexes, and gives the job its place
  in the fair schedule. One script, so two submissions naming one output can never both be
  accepted and a tenant can never exceed its quota, however many API processes submit at once.
  ARGV: 1 id, 2 type, 3 createdAt, 4 spec JSON, 5 record key prefix, 6 upload holder prefix,
        7 "queued" event data JSON, 8 tenant, 9 default maxActiveJobs (0 = unlimited),
        10 highest BullMQ priority, 11 '0' for a job that writes no checkpoint (nothing reserved),
        12 audit stream key ('' = none), 13 its MINID, 14.. the audit entry's field/value pairs
  Returns {1, seq, priority}, {0, 'reserved', holder}, {0, 'quota', used, limit} or {0, 'exists'}.

  Fair scheduling (start-time fair queuing): the job's tag is max(clock, the tenant's last tag) + 1
  and is its BullMQ priority (lower runs first; FIFO among equal ones). The clock is the tag of the
  latest started job (start.lua). A tenant with a backlog has tags far ahead of the clock; a tenant
  that submits now gets clock + 1, so the next free worker takes it after at most one job of each
  other tenant. The clock restarts when nothing is queued or running, so tags stay small.
]]
local id = ARGV[1]
local tenant = ARGV[8]
local reserves = ARGV[11] ~= '0'
local holder = reserves and redis.call('GET', KEYS[K_OUTPUT])
if holder and holder ~= id then
  -- An upload installing this name holds it for a bounded time (the key has a TTL).
  if string.sub(holder, 1, #ARGV[6]) == ARGV[6] then return {0, 'reserved', holder} end
  local status = redis.call('HGET', ARGV[5] .. holder, 'status')
  if status == 'queued' or status == 'running' then return {0, 'reserved', holder} end
  -- Otherwise the holder ended without releasing (a crash) or its record expired: take over.
end
if redis.call('EXISTS', KEYS[K_RECORD]) == 1 then return {0, 'exists'} end
local limit = quota('maxActiveJobs', ARGV[9])
if limit > 0 then
  local used = redis.call('ZCARD', KEYS[TENANT_STATUS_INDEX.queued]) + redis.call('ZCARD', KEYS[TENANT_STATUS_INDEX.running])
  if used >= limit then return {0, 'quota', used, limit} end
end

if redis.call('ZCARD', KEYS[STATUS_INDEX.queued]) == 0 and redis.call('ZCARD', KEYS[STATUS_INDEX.running]) == 0 then
  redis.call('DEL', KEYS[K_FAIR])
end
local clock = tonumber(redis.call('HGET', KEYS[K_FAIR], 'now')) or 0
local last = tonumber(redis.call('HGET', KEYS[K_FAIR], 't:' .. tenant)) or 0
local tag = math.max(clock, last) + 1
redis.call('HSET', KEYS[K_FAIR], 't:' .. tenant, tag)
-- Past BullMQ's highest priority (millions of starts without an idle moment) order degrades to FIFO.
local priority = math.min(tag, tonumber(ARGV[10]))

if reserves then redis.call('SET', KEYS[K_OUTPUT], id) end
local seq = redis.call('INCR', KEYS[K_SEQ])
redis.call('HSET', KEYS[K_RECORD], 'status', 'queued', 'type', ARGV[2], 'createdAt', ARGV[3], 'attempts', 0, 'seq', seq, 'spec', ARGV[4], 'tenant', tenant, 'priority', priority)
redis.call('ZADD', KEYS[K_ALL], seq, id)
redis.call('ZADD', KEYS[STATUS_INDEX.queued], seq, id)
redis.call('ZADD', KEYS[K_TENANT_ALL], seq, id)
redis.call('ZADD', KEYS[TENANT_STATUS_INDEX.queued], seq, id)
append_event('info', 'message', 'Job queued.', ARGV[7])
-- Who created it, in the same step: a job never exists without its audit entry.
if ARGV[12] ~= '' then redis.call('XADD', ARGV[12], 'MINID', '~', ARGV[13], '*', unpack(ARGV, 14)) end
return {1, seq, priority}
