--[[
  Progress, written only by the attempt that owns a running job (a late report from a loser never
  overwrites the winner's, nor revives a finished job).
  ARGV: 1 id, 2 token, 3 progress JSON
]]
if redis.call('HGET', KEYS[K_RECORD], 'status') ~= 'running' then return 0 end
if redis.call('GET', KEYS[K_LOCK]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[K_RECORD], 'progress', ARGV[3])
return 1
