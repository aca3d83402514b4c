import type { Redis } from 'ioredis';
import type { JobKeys } from '../jobs/keys';

/**
 * Bytes that uploads in flight have been granted and not yet installed, per tenant, in Redis so
 * every API process sees them. Without them the storage quota was soft: two concurrent uploads
 * each measured the tenant's folders before the other's bytes were in place, and both passed.
 *
 * A grant is one script: it refuses if another upload was installed since the caller measured
 * (the tenant's generation moved: measure again), adds the live holds to the measured usage, and
 * records the new hold only if everything fits. Releasing (after the install, or on failure)
 * removes the hold and moves the generation, so a measurement taken before an install can never be
 * combined with holds read after it. A hold outlives a crashed API process by at most `holdMs`.
 */
const GRANT = `
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return {-1, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local bytes, expires = string.match(all[i + 1], '^(%d+):(%d+)$')
  if tonumber(expires) <= now then redis.call('HDEL', KEYS[1], all[i]) else held = held + tonumber(bytes) end
end
if tonumber(ARGV[4]) + held + tonumber(ARGV[3]) > tonumber(ARGV[5]) then return {0, held} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3] .. ':' .. (now + tonumber(ARGV[6])))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {1, held}`;

const RELEASE = `
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('INCR', KEYS[2])`;

/** `heldByOthers`: the live holds of other uploads the grant counted; `stale`: measure again. */
export type GrantResult = { granted: boolean; heldByOthers: number } | { stale: true };

export class StorageHolds {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Pick<JobKeys, 'tenantStorageHolds' | 'tenantStorageGeneration'>,
    /** Longest an upload may hold bytes between its grant and its install (a crashed process's hold lapses after it). */
    private readonly holdMs: number,
  ) {}

  /** The tenant's generation: read it before measuring the tenant's folders, hand it to grant(). */
  async generation(tenant: string): Promise<string> {
    return (await this.redis.get(this.keys.tenantStorageGeneration(tenant))) ?? '0';
  }

  /**
   * Holds `bytes` for `holdId` if `measured` (the tenant's folders, measured at `generation`) plus
   * the live holds plus `bytes` fit in `limit`; `stale` if an upload was installed since.
   */
  async grant(tenant: string, generation: string, holdId: string, bytes: number, measured: number, limit: number): Promise<GrantResult> {
    const [status, held] = (await this.redis.eval(GRANT, 2, this.keys.tenantStorageHolds(tenant), this.keys.tenantStorageGeneration(tenant), generation, holdId, bytes, measured, limit, this.holdMs)) as [number, number];
    if (status < 0) return { stale: true };
    return { granted: status === 1, heldByOthers: held };
  }

  /** Drops the hold (installed or abandoned) and moves the tenant's generation. */
  async release(tenant: string, holdId: string): Promise<void> {
    await this.redis.eval(RELEASE, 2, this.keys.tenantStorageHolds(tenant), this.keys.tenantStorageGeneration(tenant), holdId);
  }
}
