--[[
  Creates a job in one step: checks the tenant's quota of queued + running jobs, reserves the
  output checkpoint name, gives the job its place in the fair schedule, adds it to the BullMQ
  queue, and writes the queued record and its indexes. One script, so two submissions naming one
  output can never both be accepted, a tenant can never exceed its quota, however many API
  processes submit at once, and a job is never recorded without its queue entry.
  KEYS: 1..23 as lib.lua, 24.. BullMQ's keys for its insert (src/jobs/bull-insert.ts).
  ARGV: 1 id, 2 type, 3 createdAt, 4 spec JSON, 5 record key prefix, 6 upload holder prefix,
        7 tenant, 8 default maxActiveJobs (0 = unlimited), 9 highest BullMQ priority,
        10 '0' for a job that writes no checkpoint (nothing reserved),
        11 audit stream key ('' = none), 12 its MINID,
        13..15 BullMQ's insert arguments (13 = '' to record without enqueueing: tests of the
        record alone), 16.. the audit entry's field/value pairs
  Returns {1, seq, priority}, {0, 'reserved', holder}, {0, 'quota', used, limit}, {0, 'exists'}
  or {0, 'enqueue', BullMQ's error code}.

  Fair scheduling (start-time fair queuing): the job's tag is max(clock, the tenant's last tag) + 1
  and is its BullMQ priority (lower runs first; FIFO among equal ones). The clock is the tag of the
  latest started job (start.lua). A tenant with a backlog has tags far ahead of the clock; a tenant
  that submits now gets clock + 1, so the next free worker takes it after at most one job of each
  other tenant. The clock restarts when nothing is queued or running, so tags stay small.
]]
local id = ARGV[1]
local tenant = ARGV[7]
local reserves = ARGV[10] ~= '0'
local holder = reserves and redis.call('GET', KEYS[K_OUTPUT])
if holder and holder ~= id then
  -- An upload installing this name holds it for a bounded time (the key has a TTL).
  if string.sub(holder, 1, #ARGV[6]) == ARGV[6] then return {0, 'reserved', holder} end
  local status = redis.call('HGET', ARGV[5] .. holder, 'status')
  if status == 'queued' or status == 'running' then return {0, 'reserved', holder} end
  -- Otherwise the holder ended without releasing (a crash) or its record expired: take over.
end
if redis.call('EXISTS', KEYS[K_RECORD]) == 1 then return {0, 'exists'} end
local limit = quota('maxActiveJobs', ARGV[8])
if limit > 0 then
  local used = redis.call('ZCARD', KEYS[TENANT_STATUS_INDEX.queued]) + redis.call('ZCARD', KEYS[TENANT_STATUS_INDEX.running])
  if used >= limit then return {0, 'quota', used, limit} end
end

if redis.call('ZCARD', KEYS[STATUS_INDEX.queued]) == 0 and redis.call('ZCARD', KEYS[STATUS_INDEX.running]) == 0 then
  redis.call('DEL', KEYS[K_FAIR])
end
local fair = redis.call('HMGET', KEYS[K_FAIR], 'now', 't:' .. tenant)
local clock = tonumber(fair[1]) or 0
local last = tonumber(fair[2]) or 0
local tag = math.max(clock, last) + 1
redis.call('HSET', KEYS[K_FAIR], 't:' .. tenant, tag)
-- Past BullMQ's highest priority (millions of starts without an idle moment) order degrades to FIFO.
local priority = math.min(tag, tonumber(ARGV[9]))

if ARGV[13] ~= '' then
  -- BullMQ's own insert, first of the writes, so that its refusal leaves nothing behind but the
  -- tag. Its msgpacked arguments arrive as JSON (bull-insert.ts says why); the tag becomes the
  -- job's priority (the captured options carry a placeholder).
  local opts = cjson.decode(ARGV[15])
  opts['priority'] = priority
  local result = bull_insert({ unpack(KEYS, 24, 23 + BULL_INSERT_KEYS) }, { cmsgpack.pack(cjson.decode(ARGV[13])), ARGV[14], cmsgpack.pack(opts) })
  if type(result) == 'number' and result < 0 then return {0, 'enqueue', result} end
end
if reserves then redis.call('SET', KEYS[K_OUTPUT], id) end
local seq = redis.call('INCR', KEYS[K_SEQ])
redis.call('HSET', KEYS[K_RECORD], 'status', 'queued', 'type', ARGV[2], 'createdAt', ARGV[3], 'attempts', 0, 'seq', seq, 'spec', ARGV[4], 'tenant', tenant, 'priority', priority)
redis.call('ZADD', KEYS[K_ALL], seq, id)
redis.call('ZADD', KEYS[STATUS_INDEX.queued], seq, id)
redis.call('ZADD', KEYS[K_TENANT_ALL], seq, id)
redis.call('ZADD', KEYS[TENANT_STATUS_INDEX.queued], seq, id)
-- No journal entry: its first event, "Job queued.", is made from the record (QUEUED_EVENT_ID in
-- src/jobs/job-events.ts); a stream's first entry costs 4.7 KB per queued job.
-- Who created it, in the same step: a job never exists without its audit entry.
if ARGV[11] ~= '' then redis.call('XADD', ARGV[11], 'MINID', '~', ARGV[12], '*', unpack(ARGV, 16)) end
return {1, seq, priority}
