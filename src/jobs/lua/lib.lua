--[[
  Shared by every job script (prepended to each one when it is loaded, see src/jobs/scripts.ts).
  Every script receives the same KEYS, built by JobKeys.scriptKeys (src/jobs/keys.ts):
    1 record  2 all-jobs index  3..7 status indexes (queued running succeeded failed cancelled)
    8 cancel flag  9 events stream  10 output reservation  11 BullMQ lock  12 expiries
    13 BullMQ job hash  14 BullMQ failed set  15 submission counter
    16 the tenant's jobs  17..21 the tenant's status indexes  22 the tenant's quota overrides
    23 the fair-scheduling clock
]]
local K_RECORD, K_ALL, K_CANCEL, K_EVENTS, K_OUTPUT, K_LOCK, K_EXPIRIES, K_BULLJOB, K_BULLFAILED, K_SEQ = 1, 2, 8, 9, 10, 11, 12, 13, 14, 15
local K_TENANT_ALL, K_QUOTAS, K_FAIR = 16, 22, 23
local STATUS_INDEX = { queued = 3, running = 4, succeeded = 5, failed = 6, cancelled = 7 }
local TENANT_STATUS_INDEX = { queued = 17, running = 18, succeeded = 19, failed = 20, cancelled = 21 }
-- Records written before tenants have no `tenant` field: they belong to this one (src/auth/principal.ts).
local DEFAULT_TENANT = 'default'
local TERMINAL = { succeeded = true, failed = true, cancelled = true }
-- Events kept per job; old ones are trimmed first (a job has one metrics event per epoch).
local MAX_EVENTS = 10000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The journal lives exactly as long as the record: once the record has a TTL, so does the stream.
local function append_event(level, etype, message, data)
  redis.call('XADD', KEYS[K_EVENTS], 'MAXLEN', '~', MAX_EVENTS, '*', 'level', level, 'type', etype, 'message', message, 'data', data)
  local ttl = redis.call('PTTL', KEYS[K_RECORD])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[K_EVENTS], ttl) end
end

-- A status event: `data` is a JSON object to which the previous status is added.
local function status_event(level, message, data, previous)
  local tag = '"previous":"' .. previous .. '"'
  if data == '{}' or data == '' then data = '{' .. tag .. '}' else data = '{' .. tag .. ',' .. string.sub(data, 2) end
  append_event(level, 'message', message, data)
end

-- Flat list of field, value; the value "\0" deletes the field.
local function set_fields(fields, from)
  for i = from, #fields, 2 do
    if fields[i + 1] == '\0' then redis.call('HDEL', KEYS[K_RECORD], fields[i]) else redis.call('HSET', KEYS[K_RECORD], fields[i], fields[i + 1]) end
  end
end

local function move_status(id, from, to)
  if from == to then return end
  local seq = redis.call('HGET', KEYS[K_RECORD], 'seq')
  redis.call('ZREM', KEYS[STATUS_INDEX[from]], id)
  redis.call('ZADD', KEYS[STATUS_INDEX[to]], seq, id)
  redis.call('ZREM', KEYS[TENANT_STATUS_INDEX[from]], id)
  redis.call('ZADD', KEYS[TENANT_STATUS_INDEX[to]], seq, id)
  redis.call('HSET', KEYS[K_RECORD], 'status', to)
end

-- A quota of the job's tenant: the admin's override if there is one, else the configured default.
local function quota(name, default)
  local v = tonumber(redis.call('HGET', KEYS[K_QUOTAS], name))
  if v then return v end
  return tonumber(default)
end

-- The expiry index names a job with its tenant (the sweeper needs it once the record is gone);
-- jobs of the default tenant by id alone, as before tenants.
local function expiry_member(id)
  local tenant = redis.call('HGET', KEYS[K_RECORD], 'tenant')
  if not tenant or tenant == DEFAULT_TENANT then return id end
  return tenant .. '/' .. id
end

local function release_output(id)
  if redis.call('GET', KEYS[K_OUTPUT]) == id then redis.call('DEL', KEYS[K_OUTPUT]) end
end

-- Ends a job in one step: status and indexes, the retention clock of record and journal, the
-- reservation, the cancel flag, and the expiry index the retention sweeper reads.
local function finish(id, from, to, retention)
  move_status(id, from, to)
  redis.call('EXPIRE', KEYS[K_RECORD], retention)
  redis.call('EXPIRE', KEYS[K_EVENTS], retention)
  redis.call('DEL', KEYS[K_CANCEL])
  release_output(id)
  redis.call('ZADD', KEYS[K_EXPIRIES], now_ms() + retention * 1000, expiry_member(id))
end

-- What a caller must still be true for its write to count (fencing).
local function guard_holds(kind, value, id)
  if kind == 'token' then return redis.call('GET', KEYS[K_LOCK]) == value end
  if kind == 'bull-missing' then return redis.call('EXISTS', KEYS[K_BULLJOB]) == 0 end
  -- Nobody holds the job's lock (waiting, delayed, or its worker died): no attempt is live.
  if kind == 'bull-unlocked' then return redis.call('EXISTS', KEYS[K_LOCK]) == 0 end
  if kind == 'bull-failed' then return redis.call('ZSCORE', KEYS[K_BULLFAILED], id) ~= false end
  if kind == 'none' then return true end
  return false
end
