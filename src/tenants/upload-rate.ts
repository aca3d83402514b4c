import type { Redis } from 'ioredis';
import type { JobKeys } from '../jobs/keys';
import { uploadRateExceeded } from './quota-errors';

/**
 * Uploads a tenant starts per minute, counted in Redis so every API process shares the count: a
 * fixed window per calendar minute. Checking and counting is one script, so a refused upload is
 * not counted and two processes cannot both take the last slot.
 */
const TAKE = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return -n end
n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n`;

const WINDOW_MS = 60_000;

export class UploadRate {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Pick<JobKeys, 'tenantUploads'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one upload of `tenant`, or throws 429 quota_exceeded (Retry-After: the rest of the minute). 0 = unlimited. */
  async take(tenant: string, perMinute: number): Promise<void> {
    if (perMinute <= 0) return;
    const now = this.now();
    const minute = Math.floor(now / WINDOW_MS);
    // The key outlives its minute a little so a slow clock on another process still finds it.
    const n = Number(await this.redis.eval(TAKE, 1, this.keys.tenantUploads(tenant, minute), perMinute, WINDOW_MS * 2));
    if (n < 0) throw uploadRateExceeded(tenant, -n, perMinute, Math.max(1, Math.ceil(((minute + 1) * WINDOW_MS - now) / 1000)));
  }

  /** Uploads `tenant` started this minute (GET /v1/tenants/{tenant}). */
  async used(tenant: string): Promise<number> {
    return Number((await this.redis.get(this.keys.tenantUploads(tenant, Math.floor(this.now() / WINDOW_MS)))) ?? 0);
  }
}
